// Functions of scripts/remote/lib.sh that several steps share, run for real against stubs.
import * as fs from "fs";
import { Sandbox } from "./sandbox";
import { attachVolume, installStubs } from "./stubs";

const VOLUME = "4f3c2b1a-0000-4000-8000-00000000abcd";
let box: Sandbox;
beforeEach(() => {
    box = new Sandbox();
    installStubs(box);
});
afterEach(() => box.cleanup());

const lib = (code: string, env: Record<string, string> = {}) => box.runCode(code, env);

describe("mount_data_volume", () => {
    test("a blank volume gets a filesystem, an fstab line by UUID, and is mounted", () => {
        attachVolume(box, VOLUME);
        const r = lib(`mount_data_volume ${VOLUME} /var/lib/bbb-data 20`);
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(box.calls("mkfs.ext4")).toEqual([`mkfs.ext4 -q -L bbb-data ${box.root}/dev/vdb`]);
        expect(fs.readFileSync(box.file("root/etc/fstab"), "utf8")).toBe("UUID=1a2b3c4d-0000-4000-8000-000000000002 /var/lib/bbb-data ext4 defaults,nofail 0 2\n");
        expect(box.calls("mount")).toEqual([`mount ${box.root}/var/lib/bbb-data`]);
    });

    test("a volume that holds a filesystem (kept from a replaced VM) is never formatted", () => {
        attachVolume(box, VOLUME, true);
        expect(lib(`mount_data_volume ${VOLUME} /var/lib/bbb-data 20`).status).toBe(0);
        expect(box.calls("mkfs.ext4")).toEqual([]);
        expect(fs.readFileSync(box.file("root/etc/fstab"), "utf8")).toContain("UUID=0b5e55ed-0000-4000-8000-000000000001 /var/lib/bbb-data");
    });

    test("running it twice adds no second fstab line and mounts nothing twice", () => {
        attachVolume(box, VOLUME);
        expect(lib(`mount_data_volume ${VOLUME} /var/lib/bbb-data 20; mount_data_volume ${VOLUME} /var/lib/bbb-data 20`).status).toBe(0);
        expect(fs.readFileSync(box.file("root/etc/fstab"), "utf8").split("\n").filter(Boolean)).toHaveLength(1);
        expect(box.calls("mount")).toHaveLength(1);
        expect(box.calls("mkfs.ext4")).toHaveLength(1);
    });

    test("a disk blkid cannot read (or finds several signatures on) is never formatted", () => {
        attachVolume(box, VOLUME);
        box.stub("blkid", "exit 8");
        const r = lib(`mount_data_volume ${VOLUME} /var/lib/bbb-data 20`);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("blkid exit 8); refusing to format it");
        expect(box.calls("mkfs.ext4")).toEqual([]);
    });

    test("a volume grown in Cinder gets its filesystem grown, once; a filesystem that fills the disk is left alone", () => {
        attachVolume(box, VOLUME, true);
        box.write("disk/fs-size", `${20 * 2 ** 30}\n`);
        box.write("disk/size", `${50 * 2 ** 30}\n`);
        const r = lib(`mount_data_volume ${VOLUME} /var/lib/bbb-data 50`);
        expect(r.status).toBe(0);
        expect(r.stdout).toContain(`grew the filesystem of data volume ${VOLUME} to its 50 GB`);
        expect(box.calls("resize2fs")).toEqual([`resize2fs ${box.root}/dev/vdb`]);
        expect(fs.readFileSync(box.file("disk/fs-size"), "utf8").trim()).toBe(String(50 * 2 ** 30));
        const again = lib(`mount_data_volume ${VOLUME} /var/lib/bbb-data 50`);
        expect(again.status).toBe(0);
        expect(again.stdout).not.toContain("grew");
        expect(box.calls("mkfs.ext4")).toEqual([]);
    });

    test("a disk that does not show the volume's new size yet is waited for, then the step fails saying so", () => {
        attachVolume(box, VOLUME, true);
        box.write("disk/size", `${20 * 2 ** 30}\n`);
        const r = lib(`mount_data_volume ${VOLUME} /var/lib/bbb-data 50`, { VOLUME_WAIT_SECONDS: "0" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`data volume ${VOLUME} shows 20 GB on ${box.root}/dev/vdb, not the 50 GB it was given`);
        expect(box.calls("resize2fs")).toEqual([]);
    });

    test("a volume that never shows up fails with its id", () => {
        const r = lib(`mount_data_volume ${VOLUME} /var/lib/bbb-data 20`, { VOLUME_WAIT_SECONDS: "0" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`data volume ${VOLUME} is not attached`);
    });
});

describe("ensure_container", () => {
    const run = (args: string) => lib(`if ensure_container scalelite-api ${args}; then echo created; else echo kept; fi`);

    test("runs a missing container with its arguments, a spec label and a rotated log (Docker's json-file keeps it whole otherwise)", () => {
        const r = run("--network scalelite blindsidenetwks/scalelite:v1.8.5-api");
        expect(r.stdout).toContain("created");
        const call = box.calls("docker").find((c) => c.startsWith("docker run"))!;
        expect(call).toMatch(
            /^docker run -d --name scalelite-api --label bbb\.spec=[0-9a-f]{16} --restart unless-stopped --log-driver json-file --log-opt max-size=10m --log-opt max-file=5 --network scalelite blindsidenetwks\/scalelite:v1\.8\.5-api$/,
        );
    });

    test("keeps (and starts) a container whose arguments did not change", () => {
        run("--network scalelite blindsidenetwks/scalelite:v1.8.5-api");
        fs.writeFileSync(box.file("calls.log"), "");
        expect(run("--network scalelite blindsidenetwks/scalelite:v1.8.5-api").stdout).toContain("kept");
        expect(box.calls("docker").filter((c) => /^docker (run|rm)/.test(c))).toEqual([]);
        expect(box.calls("docker")).toContain("docker start scalelite-api");
    });

    test("replaces a container whose arguments changed (a new image tag)", () => {
        run("--network scalelite blindsidenetwks/scalelite:v1.8.5-api");
        fs.writeFileSync(box.file("calls.log"), "");
        expect(run("--network scalelite blindsidenetwks/scalelite:v1.8.6-api").stdout).toContain("created");
        expect(box.calls("docker")).toContain("docker rm -f scalelite-api");
    });
});

test("pull_images pulls only the images that are not here yet", () => {
    expect(lib("pull_images redis:7-alpine postgres:15-alpine; pull_images redis:7-alpine").status).toBe(0);
    expect(box.calls("docker").filter((c) => c.startsWith("docker pull"))).toEqual(["docker pull -q redis:7-alpine", "docker pull -q postgres:15-alpine"]);
});

describe("failures of the tools lib.sh runs stop the step, saying what failed", () => {
    test("apt_install: a package apt cannot install, after refreshing the lists once; a held dpkg lock; lists that cannot be refreshed", () => {
        const missing = lib("apt_install nosuchpackage", { APT_FAIL: "1" });
        expect(missing.status).toBe(1);
        expect(missing.stderr).toContain("E: Unable to locate package nosuchpackage");
        expect(missing.stderr).toContain("lib-test: error: apt-get install nosuchpackage failed");
        expect(box.calls("apt-get")).toEqual(["apt-get install -y -q nosuchpackage", "apt-get update -q", "apt-get install -y -q nosuchpackage"]);
        expect(lib("apt_install certbot", { APT_LOCKED: "1" }).stderr).toContain("Could not get lock /var/lib/dpkg/lock-frontend");
        const offline = lib("apt_install certbot", { APT_FAIL: "1", APT_UPDATE_FAIL: "1" });
        expect([offline.status, offline.stderr.trim()]).toEqual([1, "lib-test: error: apt-get update failed"]);
    });

    test("mount_data_volume: a filesystem that cannot be made, a volume that cannot be mounted; neither leaves an fstab line behind twice", () => {
        attachVolume(box, VOLUME);
        const mkfs = lib(`mount_data_volume ${VOLUME} /mnt/data 10`, { MKFS_FAIL: "1" });
        expect([mkfs.status, mkfs.stderr]).toEqual([1, expect.stringContaining("lib-test: error: mkfs.ext4 failed on")]);
        expect(box.calls("mount")).toEqual([]);
        const mount = lib(`mount_data_volume ${VOLUME} /mnt/data 10`, { MOUNT_FAIL: "1" });
        expect(mount.status).toBe(1);
        expect(mount.stderr).toContain("wrong fs type");
        expect(mount.stderr).toContain("lib-test: error: cannot mount the data volume at /mnt/data");
        expect(lib(`mount_data_volume ${VOLUME} /mnt/data 10`).status).toBe(0);
        expect(fs.readFileSync(box.file("root/etc/fstab"), "utf8").split("\n").filter(Boolean)).toHaveLength(1);
    });

    test("write_if_changed: an owner that cannot be set leaves the file as it was and no temporary file", () => {
        box.write("root/etc/x.conf", "old\n");
        const r = lib(`printf 'new\\n' | write_if_changed "$ROOT/etc/x.conf" 0600 nosuchuser:root`, { CHOWN_FAIL: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("lib-test: error: cannot chown nosuchuser:root");
        expect(fs.readFileSync(box.file("root/etc/x.conf"), "utf8")).toBe("old\n");
        expect(fs.readdirSync(box.file("root/etc"))).toEqual(["x.conf"]);
    });
});
