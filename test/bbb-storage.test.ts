// scripts/remote/bbb-storage.sh, run for real against an attached data volume (stub blkid, mkfs.ext4, mount,
// mountpoint) and a stub bbb-conf that notes, at --stop and --start, whether /var/bigbluebutton is a link.
import * as fs from "fs";
import * as path from "path";
import { Sandbox } from "./sandbox";
import { attachVolume, installedBbb, installStubs } from "./stubs";

const VOLUME = "5705a6e0-0000-4000-8000-0000000b0b0b";
const LINK = "root/var/bigbluebutton";
const TARGET = "root/mnt/bbb-recordings/bigbluebutton";
const RECORDINGS = {
    FQDN: "bbb-1.example.org",
    VOLUME_ID: VOLUME,
    VOLUME_SIZE: "100",
    MOUNT: "/mnt/bbb-recordings",
    DIRECTORY: "/var/bigbluebutton",
    SERVICE: "bigbluebutton",
    FORCE_RESTART: "false",
};

/**
 * bbb-conf --stop/--start: records "stop dir" / "start link" (the state of /var/bigbluebutton) in $SANDBOX/bbb;
 * --stop ends the meetings; --secret prints the secret as the shared stub does.
 */
const BBB_CONF = `
[ "\${BBB_CONF_FAIL:-}" = "$1" ] && { echo "bbb-conf: $1 failed" >&2; exit 1; }
[ "$1" = --secret ] && { printf '    Secret: %s\\n' "$(sed -n 's/^securitySalt=//p' "$ROOT/etc/bigbluebutton/bbb-web.properties")"; exit 0; }
[ "$1" = --stop ] && [ -s "$SANDBOX/meetings" ] && { cat "$SANDBOX/meetings" >> "$SANDBOX/ended-meetings"; : > "$SANDBOX/meetings"; }
if [ -L "$ROOT/var/bigbluebutton" ]; then state=link; elif [ -d "$ROOT/var/bigbluebutton" ]; then state=dir; else state=none; fi
echo "\${1#--} $state" >> "$SANDBOX/bbb"`;

/** cp that runs out of space half-way: copies one directory, then fails. */
const CP_FULL = `
dst=\${@: -1}; mkdir -p "$dst/recording"
echo "cp: error writing '$dst/published/presentation/m1/video.webm': No space left on device" >&2; exit 1`;

let box: Sandbox;
beforeEach(() => {
    box = new Sandbox();
    installStubs(box);
    installedBbb(box, "Secret0123456789abcdefghijklmnopqrstuvwxyz");
    box.stub("bbb-conf", BBB_CONF);
});
afterEach(() => box.cleanup());

const run = (env: Record<string, string> = {}, inputs: Record<string, string> = {}) => box.run("bbb-storage", { ...RECORDINGS, ...inputs }, env);
const ok = () => {
    const r = run();
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    return r;
};
const linkTarget = () => fs.readlinkSync(box.file(LINK));
const bbb = () => (fs.existsSync(box.file("bbb")) ? fs.readFileSync(box.file("bbb"), "utf8").split("\n").filter(Boolean) : []);
const read = (relative: string) => fs.readFileSync(box.file(relative), "utf8");
/** A BBB host's /var/bigbluebutton with a raw recording, a published one and a hidden file. */
function installedTree(): void {
    box.write(`${LINK}/recording/raw/m1/events.xml`, "<recording/>\n");
    box.write(`${LINK}/published/presentation/m1/metadata.xml`, "<metadata/>\n");
    box.write(`${LINK}/.hidden`, "x\n");
    fs.chmodSync(box.file(`${LINK}/published`), 0o750);
    fs.utimesSync(box.file(`${LINK}/recording/raw/m1/events.xml`), new Date("2024-01-02T03:04:05Z"), new Date("2024-01-02T03:04:05Z"));
}

test("a fresh VM: a blank volume gets a filesystem, is mounted, and /var/bigbluebutton links to an empty directory on it", () => {
    attachVolume(box, VOLUME);
    const r = ok();
    expect(box.calls("mkfs.ext4")).toEqual([`mkfs.ext4 -q -L bbb-data ${box.root}/dev/vdb`]);
    expect(read("root/etc/fstab")).toBe("UUID=1a2b3c4d-0000-4000-8000-000000000002 /mnt/bbb-recordings ext4 defaults,nofail 0 2\n");
    expect(box.calls("mount")).toEqual([`mount ${box.root}/mnt/bbb-recordings`]);
    expect(linkTarget()).toBe(box.file(TARGET));
    expect(fs.readdirSync(box.file(TARGET))).toEqual([]);
    expect(box.calls("bbb-conf")).toEqual([]);
    expect(r.stdout).toContain("bbb-storage: /var/bigbluebutton now links to /mnt/bbb-recordings/bigbluebutton");
});

test("a volume kept from a replaced VM: never formatted, its recordings kept as they are and linked", () => {
    attachVolume(box, VOLUME, true);
    box.write(`${TARGET}/published/presentation/old/metadata.xml`, "<kept/>\n");
    const r = ok();
    expect(box.calls("mkfs.ext4")).toEqual([]);
    expect(linkTarget()).toBe(box.file(TARGET));
    expect(read(`${LINK}/published/presentation/old/metadata.xml`)).toBe("<kept/>\n");
    expect(r.stdout).toContain("keeping what the data volume holds already (/mnt/bbb-recordings/bigbluebutton)");
    expect(box.calls("bbb-conf")).toEqual([]);
});

test("a second run changes nothing: no second fstab line, no mount, the link as it was", () => {
    attachVolume(box, VOLUME);
    ok();
    fs.writeFileSync(box.callLog, "");
    const r = ok();
    expect(read("root/etc/fstab").split("\n").filter(Boolean)).toHaveLength(1);
    expect(box.calls().filter((c) => !/^(blkid|mountpoint|blockdev|resize2fs) /.test(c))).toEqual([]);
    expect(linkTarget()).toBe(box.file(TARGET));
    expect(r.stdout).toContain("already links to /mnt/bbb-recordings/bigbluebutton");
});

test("an installed host: BBB stopped, /var/bigbluebutton copied (modes, times, hidden files), moved aside, linked, BBB started", () => {
    attachVolume(box, VOLUME);
    installedTree();
    const r = ok();
    expect(bbb()).toEqual(["stop dir", "start link"]);
    expect(box.calls("bbb-conf")).toEqual(["bbb-conf --secret", "bbb-conf --stop", "bbb-conf --start"]);
    expect(linkTarget()).toBe(box.file(TARGET));
    expect(read(`${TARGET}/recording/raw/m1/events.xml`)).toBe("<recording/>\n");
    expect(read(`${TARGET}/published/presentation/m1/metadata.xml`)).toBe("<metadata/>\n");
    expect(read(`${TARGET}/.hidden`)).toBe("x\n");
    expect(fs.statSync(box.file(`${TARGET}/published`)).mode & 0o777).toBe(0o750);
    expect(fs.statSync(box.file(`${TARGET}/recording/raw/m1/events.xml`)).mtime.toISOString()).toBe("2024-01-02T03:04:05.000Z");
    // The old directory is kept, whole, beside the link; no unfinished copy is left.
    expect(read("root/var/bigbluebutton.pre-volume/recording/raw/m1/events.xml")).toBe("<recording/>\n");
    expect(fs.existsSync(box.file(`${TARGET}.partial`))).toBe(false);
    expect(r.stdout).toContain("the old directory is kept at /var/bigbluebutton.pre-volume");
    // Then it is done: a second run stops nothing.
    fs.writeFileSync(box.callLog, "");
    ok();
    expect(box.calls("bbb-conf")).toEqual([]);
});

test("a copy that fails loses nothing: /var/bigbluebutton stays, only the unfinished copy goes, BBB starts again; the next run finishes", () => {
    attachVolume(box, VOLUME);
    installedTree();
    box.stub("cp", CP_FULL);
    const r = run();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
        "bbb-storage: error: copying /var/bigbluebutton to /mnt/bbb-recordings/bigbluebutton failed (is the data volume full?); /var/bigbluebutton is left as it was",
    );
    expect(fs.lstatSync(box.file(LINK)).isDirectory()).toBe(true);
    expect(read(`${LINK}/recording/raw/m1/events.xml`)).toBe("<recording/>\n");
    expect(read(`${LINK}/published/presentation/m1/metadata.xml`)).toBe("<metadata/>\n");
    expect(fs.existsSync(box.file(`${TARGET}.partial`))).toBe(false);
    expect(fs.existsSync(box.file(TARGET))).toBe(false);
    expect(bbb()).toEqual(["stop dir", "start dir"]);
    // Space freed, the real cp back: the next run moves everything.
    box.remove("cp");
    fs.symlinkSync(["/usr/bin/cp", "/bin/cp"].find((p) => fs.existsSync(p))!, path.join(box.bin, "cp"));
    ok();
    expect(linkTarget()).toBe(box.file(TARGET));
    expect(read(`${TARGET}/published/presentation/m1/metadata.xml`)).toBe("<metadata/>\n");
});

test("an unfinished copy left by an interrupted run is dropped and the copy made again", () => {
    attachVolume(box, VOLUME);
    installedTree();
    box.write(`${TARGET}.partial/recording/half`, "");
    ok();
    expect(fs.existsSync(box.file(`${TARGET}.partial`))).toBe(false);
    expect(fs.existsSync(box.file(`${TARGET}/recording/half`))).toBe(false);
    expect(read(`${TARGET}/recording/raw/m1/events.xml`)).toBe("<recording/>\n");
});

test("a directory on the host and data on the volume: refuses to merge, touches neither, stops nothing", () => {
    attachVolume(box, VOLUME, true);
    installedTree();
    box.write(`${TARGET}/published/presentation/old/metadata.xml`, "<kept/>\n");
    const r = run();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
        "bbb-storage: error: both /var/bigbluebutton (a directory) and /mnt/bbb-recordings/bigbluebutton on the data volume hold data; refusing to merge",
    );
    expect(fs.lstatSync(box.file(LINK)).isDirectory()).toBe(true);
    expect(fs.readdirSync(box.file(TARGET))).toEqual(["published"]);
    expect(box.calls("bbb-conf")).toEqual([]);
});

test("while meetings run (or when the API does not answer) BigBlueButton is not stopped and nothing moves; forceReinstall goes ahead", () => {
    attachVolume(box, VOLUME);
    installedTree();
    box.write("meetings", "lecture\n");
    const busy = run();
    expect(busy.status).toBe(1);
    expect(busy.stderr).toContain("1 meeting(s) running on bbb-1.example.org; stopping BigBlueButton to move /var/bigbluebutton onto the data volume would end them");
    expect(run({ API_DOWN: "1" }).stderr).toContain("cannot tell whether meetings run on bbb-1.example.org");
    expect(bbb()).toEqual([]);
    expect(fs.lstatSync(box.file(LINK)).isDirectory()).toBe(true);
    expect(read("meetings")).toBe("lecture\n");
    expect(run({}, { FORCE_RESTART: "true" }).status).toBe(0);
    expect(linkTarget()).toBe(box.file(TARGET));
    expect(read("ended-meetings")).toBe("lecture\n");
});

test("a failing bbb-conf --stop moves nothing, starts BBB again and says so", () => {
    attachVolume(box, VOLUME);
    installedTree();
    const r = run({ BBB_CONF_FAIL: "--stop" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("bbb-conf: --stop failed\nbbb-storage: error: stopping bigbluebutton failed; /var/bigbluebutton is left as it was");
    expect(fs.lstatSync(box.file(LINK)).isDirectory()).toBe(true);
    expect(fs.existsSync(box.file(TARGET))).toBe(false);
    expect(box.calls("bbb-conf")).toEqual(["bbb-conf --secret", "bbb-conf --stop", "bbb-conf --start"]);
});

test("without bbb-conf (BBB not installed yet) a directory is moved without stopping anything", () => {
    attachVolume(box, VOLUME);
    box.remove("bbb-conf");
    installedTree();
    ok();
    expect(linkTarget()).toBe(box.file(TARGET));
    expect(read(`${TARGET}/.hidden`)).toBe("x\n");
});

test("a /var/bigbluebutton that links elsewhere, a missing volume or a bad VOLUME_ID fail with what is wrong", () => {
    attachVolume(box, VOLUME);
    fs.mkdirSync(box.file("root/var"), { recursive: true });
    fs.symlinkSync("/data/bbb", box.file(LINK));
    const elsewhere = run();
    expect(elsewhere.status).toBe(1);
    expect(elsewhere.stderr).toContain("bbb-storage: error: /var/bigbluebutton is a link to /data/bbb, not to /mnt/bbb-recordings/bigbluebutton; refusing to change it");
    expect(linkTarget()).toBe("/data/bbb");

    const missing = run({ VOLUME_WAIT_SECONDS: "0" }, { VOLUME_ID: "0000aaaa-0000-4000-8000-000000000000" });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain("bbb-storage: error: data volume 0000aaaa-0000-4000-8000-000000000000 is not attached");

    fs.writeFileSync(box.callLog, "");
    const bad = run({}, { VOLUME_ID: "x; rm -rf /" });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain("bbb-storage: error: VOLUME_ID 'x; rm -rf /' is not an OpenStack volume id");
    for (const [inputs, message] of [
        [{ MOUNT: "/var/lib/data" }, "MOUNT '/var/lib/data' is not a directory under /mnt"],
        [{ DIRECTORY: "var/bigbluebutton" }, "DIRECTORY 'var/bigbluebutton' is not an absolute path"],
        [{ SERVICE: "nginx" }, "SERVICE must be bigbluebutton or greenlight, not nginx"],
    ] as [Record<string, string>, string][]) {
        const r = run({}, inputs);
        expect([r.status, r.stderr]).toEqual([1, expect.stringContaining(`bbb-storage: error: ${message}`)]);
    }
    expect(box.calls()).toEqual([]);
});

test("a link to the volume whose directory is gone (a wrong volume), or a path that is neither a directory nor a link, is refused", () => {
    attachVolume(box, VOLUME, true);
    fs.mkdirSync(box.file("root/var"), { recursive: true });
    fs.symlinkSync(box.file("root/mnt/bbb-recordings/bigbluebutton"), box.file(LINK));
    const gone = run();
    expect(gone.status).toBe(1);
    expect(gone.stderr).toContain("bbb-storage: error: /var/bigbluebutton links to /mnt/bbb-recordings/bigbluebutton, which is missing: is the data volume the right one?");
    fs.rmSync(box.file(LINK));
    box.write(LINK, "a file\n");
    const file = run();
    expect(file.status).toBe(1);
    expect(file.stderr).toContain("bbb-storage: error: /var/bigbluebutton is neither a directory nor a link; refusing to touch it");
});

describe("what is in the way on the host or the volume stops the step before anything moves", () => {
    test("an unfinished copy whose source is gone (/var/bigbluebutton missing, not a link): left for a hand, nothing linked or stopped", () => {
        attachVolume(box, VOLUME);
        box.write(`${TARGET}.partial/recording/half`, "");
        const r = run();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(
            "bbb-storage: error: /mnt/bbb-recordings/bigbluebutton.partial holds an unfinished copy of an earlier run and /var/bigbluebutton is gone; check /var/bigbluebutton.pre-volume* and the copy by hand",
        );
        expect(fs.existsSync(box.file(LINK))).toBe(false);
        expect(fs.existsSync(box.file(`${TARGET}.partial/recording/half`))).toBe(true);
        expect(box.calls("bbb-conf")).toEqual([]);
    });

    test("a fresh VM whose volume holds a file where the directory must go: mkdir cannot make it, nothing is linked", () => {
        attachVolume(box, VOLUME, true);
        box.write(TARGET, "not a directory\n");
        const r = run();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("mkdir: cannot create directory");
        expect(r.stderr).toContain("bbb-storage: error: cannot create /mnt/bbb-recordings/bigbluebutton");
        expect(fs.existsSync(box.file(LINK))).toBe(false);
        expect(read(TARGET)).toBe("not a directory\n");
    });

    test("an installed host whose volume holds a file where the copy must go: refused, BBB not stopped, nothing moved", () => {
        attachVolume(box, VOLUME, true);
        installedTree();
        box.write(TARGET, "not a directory\n");
        const r = run();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-storage: error: /mnt/bbb-recordings/bigbluebutton exists and is not a directory; refusing to touch it");
        expect(fs.lstatSync(box.file(LINK)).isDirectory()).toBe(true);
        expect(read(TARGET)).toBe("not a directory\n");
        expect(box.calls("bbb-conf")).toEqual([]);
    });

    // A link left dangling on the volume or beside /var/bigbluebutton (its directory removed by hand) is neither a
    // directory nor missing to mkdir and mv: they refuse to put a directory in its place.
    test("a dangling link where the copy is made: mkdir refuses; /var/bigbluebutton stays, BBB starts again", () => {
        attachVolume(box, VOLUME);
        installedTree();
        fs.mkdirSync(box.file("root/mnt/bbb-recordings"), { recursive: true });
        fs.symlinkSync("/mnt/old-volume/bigbluebutton.partial", box.file(`${TARGET}.partial`));
        const r = run();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-storage: error: cannot create /mnt/bbb-recordings/bigbluebutton.partial");
        expect(bbb()).toEqual(["stop dir", "start dir"]);
        expect(read(`${LINK}/recording/raw/m1/events.xml`)).toBe("<recording/>\n");
        expect(fs.existsSync(box.file(TARGET))).toBe(false);
    });

    test("a dangling link where the copy goes: mv refuses to rename the copy over it; /var/bigbluebutton stays, BBB starts again", () => {
        attachVolume(box, VOLUME);
        installedTree();
        fs.mkdirSync(box.file("root/mnt/bbb-recordings"), { recursive: true });
        fs.symlinkSync("/mnt/old-volume/bigbluebutton", box.file(TARGET));
        const r = run();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("mv: cannot overwrite non-directory");
        expect(r.stderr).toContain(
            "bbb-storage: error: cannot rename /mnt/bbb-recordings/bigbluebutton.partial to /mnt/bbb-recordings/bigbluebutton; /var/bigbluebutton is left as it was",
        );
        expect(fs.lstatSync(box.file(LINK)).isDirectory()).toBe(true);
        expect(read(`${LINK}/recording/raw/m1/events.xml`)).toBe("<recording/>\n");
        expect(fs.readlinkSync(box.file(TARGET))).toBe("/mnt/old-volume/bigbluebutton");
        expect(bbb()).toEqual(["stop dir", "start dir"]);
    });

    test("a dangling /var/bigbluebutton.pre-volume: the old directory cannot be moved aside; it stays in use, the copy is on the volume, BBB starts again", () => {
        attachVolume(box, VOLUME);
        installedTree();
        fs.symlinkSync("/var/bigbluebutton.removed", box.file(`${LINK}.pre-volume`));
        const r = run();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("mv: cannot overwrite non-directory");
        expect(r.stderr).toContain(
            "bbb-storage: error: cannot move /var/bigbluebutton aside to /var/bigbluebutton.pre-volume; the copy is in /mnt/bbb-recordings/bigbluebutton",
        );
        expect(fs.lstatSync(box.file(LINK)).isDirectory()).toBe(true);
        expect(read(`${LINK}/recording/raw/m1/events.xml`)).toBe("<recording/>\n");
        expect(read(`${TARGET}/recording/raw/m1/events.xml`)).toBe("<recording/>\n");
        expect(bbb()).toEqual(["stop dir", "start dir"]);
    });
});

describe("Greenlight's compose project (single topology with Greenlight)", () => {
    const GREENLIGHT = { ...RECORDINGS, MOUNT: "/mnt/bbb-greenlight", DIRECTORY: "/root/greenlight-v3", SERVICE: "greenlight" };
    const GL = "root/root/greenlight-v3";
    const GL_TARGET = "root/mnt/bbb-greenlight/greenlight-v3";
    /** docker-compose (1.x, as bbb-install.sh installs it): stop / up -d, noted with the state of the project directory. */
    const COMPOSE = `
if [ -L "$ROOT/root/greenlight-v3" ]; then state=link; else state=dir; fi
echo "\${3} $state" >> "$SANDBOX/compose"`;
    const compose = () => (fs.existsSync(box.file("compose")) ? fs.readFileSync(box.file("compose"), "utf8").split("\n").filter(Boolean) : []);

    test("a fresh VM: the project directory is a link onto the volume before bbb-install.sh -g makes it", () => {
        attachVolume(box, VOLUME);
        const r = box.run("bbb-storage", GREENLIGHT);
        expect(r.status).toBe(0);
        expect(fs.readlinkSync(box.file(GL))).toBe(box.file(GL_TARGET));
        expect(box.calls("bbb-conf")).toEqual([]);
    });

    test("an installed Greenlight: stopped (no meeting checked or ended), its database, .env and compose file moved, started again", () => {
        attachVolume(box, VOLUME);
        box.write(`${GL}/docker-compose.yml`, "services:\n  postgres:\n");
        box.write(`${GL}/.env`, "SECRET_KEY_BASE=x\n");
        box.write(`${GL}/data/postgres/14/database_data/PG_VERSION`, "14\n");
        box.write("meetings", "lecture\n");
        box.stub("docker-compose", COMPOSE);
        const r = box.run("bbb-storage", GREENLIGHT);
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(compose()).toEqual(["stop dir", "up link"]);
        expect(read(`${GL_TARGET}/data/postgres/14/database_data/PG_VERSION`)).toBe("14\n");
        expect(read(`${GL}/.env`)).toBe("SECRET_KEY_BASE=x\n");
        expect(read("meetings")).toBe("lecture\n");
        expect(box.calls("bbb-conf")).toEqual([]);
    });

    test("a replaced VM finds the project on the volume: kept as it is, linked", () => {
        attachVolume(box, VOLUME, true);
        box.write(`${GL_TARGET}/.env`, "SECRET_KEY_BASE=kept\n");
        const r = box.run("bbb-storage", GREENLIGHT);
        expect(r.status).toBe(0);
        expect(read(`${GL}/.env`)).toBe("SECRET_KEY_BASE=kept\n");
    });
});
