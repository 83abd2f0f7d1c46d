// System accounts that Debian's packages create (coturn's turnserver, postgresql's postgres), for the tests
// that run the real programs as them.
import * as fs from "fs";

export function account(name: string, creator: string): { uid: number; gid: number } {
    const line = fs.readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith(`${name}:`));
    if (!line) throw new Error(`no ${name} user: Debian's ${creator} package creates it`);
    const [, , uid, gid] = line.split(":");
    return { uid: Number(uid), gid: Number(gid) };
}
