// How the API checks a checksum, for the stand-ins of BBB's API (test/smoke.test.ts, test/stream.test.ts).
import * as crypto from "crypto";

/** bbb-web's check: the raw query without its checksum parameter, hashed by the checksum's length. */
export function checksumValid(call: string, rawQuery: string, secret: string): boolean {
    const sum = new URLSearchParams(rawQuery).get("checksum");
    if (!sum) return false;
    const q = rawQuery.replace(`&checksum=${sum}`, "").replace(`checksum=${sum}&`, "").replace(`checksum=${sum}`, "");
    const algorithm = { 40: "sha1", 64: "sha256", 96: "sha384", 128: "sha512" }[sum.length];
    return !!algorithm && crypto.createHash(algorithm).update(call + q + secret).digest("hex") === sum;
}
