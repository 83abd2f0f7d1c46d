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

    test("a volume that holds a partition table (no filesystem, no UUID) is neither formatted nor mounted", () => {
        attachVolume(box, VOLUME);
        box.write("disk/pttype", "dos\n");
        const r = lib(`mount_data_volume ${VOLUME} /var/lib/bbb-data 20; echo mounted`);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`lib-test: error: data volume ${VOLUME} (${box.root}/dev/vdb) holds something without a filesystem UUID; refusing to touch it`);
        expect(r.stdout).not.toContain("mounted");
        expect(box.calls("mkfs.ext4")).toEqual([]);
        expect(box.calls("mount")).toEqual([]);
        expect(fs.readFileSync(box.file("root/etc/fstab"), "utf8")).toBe("");
    });

    test("a grown volume whose filesystem has recorded errors (the kernel will not grow it online) stops the step with resize2fs's words", () => {
        attachVolume(box, VOLUME, true);
        box.write("disk/fs-size", `${20 * 2 ** 30}\n`);
        box.write("disk/size", `${50 * 2 ** 30}\n`);
        box.write("disk/fs-errors", "");
        const r = lib(`mount_data_volume ${VOLUME} /var/lib/bbb-data 50; echo grown`);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("resize2fs: Permission denied to resize filesystem\n");
        expect(r.stderr).toContain(`lib-test: error: cannot grow the filesystem of data volume ${VOLUME} to its 50 GB (resize2fs)`);
        expect(r.stdout).not.toContain("grew");
        expect(r.stdout).not.toContain("grown");
        expect(fs.readFileSync(box.file("disk/fs-size"), "utf8").trim()).toBe(String(20 * 2 ** 30));
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

    test("a kept container that does not start (its port held by another process) stops the step with docker's words; it is not replaced", () => {
        const nginx = (env: Record<string, string> = {}) =>
            lib("ensure_container scalelite-nginx --network scalelite -p 443:443 blindsidenetwks/scalelite:v1.8.5-nginx; echo after", env);
        expect(nginx().status).toBe(0);
        fs.writeFileSync(box.file("docker/scalelite-nginx/running"), "false\n");
        fs.writeFileSync(box.file("calls.log"), "");
        const r = nginx({ DOCKER_FAIL: "start" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("Bind for 0.0.0.0:443 failed: port is already allocated\nError: failed to start containers: scalelite-nginx\n");
        expect(r.stderr).toContain("lib-test: error: cannot start container scalelite-nginx");
        expect(r.stdout).not.toContain("after");
        expect(box.calls("docker").filter((c) => /^docker (run|rm)/.test(c))).toEqual([]);
    });

    test("a container docker cannot run (its name still taken) stops the step with docker's words and the container's name", () => {
        const r = lib("ensure_container scalelite-api --network scalelite blindsidenetwks/scalelite:v1.8.5-api; echo after", { DOCKER_FAIL: "run" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain('docker: Error response from daemon: Conflict. The container name "/scalelite-api" is already in use');
        expect(r.stderr).toContain("lib-test: error: cannot run container scalelite-api (see: docker logs scalelite-api)");
        expect(r.stdout).not.toContain("after");
    });

    test("replaces a container whose arguments changed (a new image tag)", () => {
        run("--network scalelite blindsidenetwks/scalelite:v1.8.5-api");
        fs.writeFileSync(box.file("calls.log"), "");
        expect(run("--network scalelite blindsidenetwks/scalelite:v1.8.6-api").stdout).toContain("created");
        expect(box.calls("docker")).toContain("docker rm -f scalelite-api");
    });
});

test("container_replaced: true only for a container that is there with other arguments (what ensure_container would remove)", () => {
    const replaced = (args: string) => lib(`if container_replaced scalelite-api ${args}; then echo replaced; else echo not; fi`).stdout.trim();
    expect(replaced("--network scalelite blindsidenetwks/scalelite:v1.8.5-api")).toBe("not");
    expect(lib("ensure_container scalelite-api --network scalelite blindsidenetwks/scalelite:v1.8.5-api").status).toBe(0);
    expect(replaced("--network scalelite blindsidenetwks/scalelite:v1.8.5-api")).toBe("not");
    expect(replaced("--network scalelite blindsidenetwks/scalelite:v1.8.6-api")).toBe("replaced");
    // One made by hand, without the label: ensure_container would replace it too.
    fs.writeFileSync(box.file("docker/scalelite-api/spec"), "\n");
    expect(replaced("--network scalelite blindsidenetwks/scalelite:v1.8.5-api")).toBe("replaced");
    // It only asks: the one container is ensure_container's.
    expect(box.calls("docker").filter((c) => /^docker (run|rm)/.test(c)).map((c) => c.split(" ").slice(0, 3).join(" "))).toEqual([
        "docker rm -f",
        "docker run -d",
    ]);
});

test("pull_images pulls only the images that are not here yet", () => {
    expect(lib("pull_images redis:7-alpine postgres:15-alpine; pull_images redis:7-alpine").status).toBe(0);
    expect(box.calls("docker").filter((c) => c.startsWith("docker pull"))).toEqual(["docker pull -q redis:7-alpine", "docker pull -q postgres:15-alpine"]);
});

describe("failures of the tools lib.sh runs stop the step, saying what failed", () => {
    test("pending_add: a record that cannot be written (a link left where it goes, pointing nowhere) stops the step", () => {
        fs.mkdirSync(box.file("root/var/lib/bbb-deploy/pending"), { recursive: true });
        fs.symlinkSync("/nonexistent/dir/record", box.file("root/var/lib/bbb-deploy/pending/lib-test.restart"));
        const r = lib("pending_add restart; echo after");
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`lib-test: error: cannot record pending work in ${box.root}/var/lib/bbb-deploy/pending/lib-test.restart`);
        expect(r.stdout).not.toContain("after");
    });

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

    test("write_if_changed: a file whose directory is not there (mktemp cannot make its temporary file beside it) writes nothing", () => {
        const r = lib(`printf 'x\\n' | write_if_changed "$ROOT/etc/nginx/sites-available/x.conf" 0644 root:root; echo written`);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("mktemp: failed to create file via template");
        expect(r.stderr).toContain(`lib-test: error: cannot write next to ${box.root}/etc/nginx/sites-available/x.conf`);
        expect(r.stdout).not.toContain("written");
        expect(fs.existsSync(box.file("root/etc/nginx"))).toBe(false);
        expect(box.calls("chown")).toEqual([]);
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

describe("fs_cli_ready", () => {
    const EVENT_SOCKET = "root/opt/freeswitch/conf/autoload_configs/event_socket.conf.xml";
    beforeEach(() => box.write(EVENT_SOCKET, '<param name="password" value="Esl0123456789"/>\n'));

    test("finds fs_cli and its password, and FreeSWITCH answers through a private config", () => {
        const r = lib("fs_cli_ready; fs_api reloadxml; echo asked");
        expect([r.status, r.stdout]).toEqual([0, "asked\n"]);
        expect(box.calls("fs_cli")).toEqual(["fs_cli -x reloadxml"]);
    });

    test("without fs_cli (bbb-install.sh has not completed) it stops before FreeSWITCH is asked anything", () => {
        box.remove("fs_cli");
        const r = lib("fs_cli_ready; fs_api reloadxml; echo asked");
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("lib-test: error: fs_cli is missing (/opt/freeswitch/bin/fs_cli): bbb-install.sh has not completed on this host");
        expect(r.stdout).not.toContain("asked");
    });

    test("a TMPDIR that is not there (e.g. pam_tmpdir's, removed): no private config for fs_cli, the step stops before FreeSWITCH is asked", () => {
        const r = lib("fs_cli_ready; fs_api reloadxml; echo asked", { TMPDIR: box.file("tmp-gone") });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("mktemp: failed to create directory via template");
        expect(r.stderr).toContain("lib-test: error: cannot make a temporary directory for fs_cli");
        expect(box.calls("fs_cli")).toEqual([]);
        expect(r.stdout).not.toContain("asked");
    });
});

describe("greenlight_compose", () => {
    test("a file where /usr/local/bin must be (a download saved under that name) stops it; the file is left as it was", () => {
        box.write("root/usr/local/bin", "#!/bin/sh\n");
        const r = lib("greenlight_compose v3.8.2.4; echo written");
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("mkdir: cannot create directory");
        expect(r.stderr).toContain("lib-test: error: cannot create /usr/local/bin");
        expect(r.stdout).not.toContain("written");
        expect(fs.readFileSync(box.file("root/usr/local/bin"), "utf8")).toBe("#!/bin/sh\n");
    });
});

test("cert_names: a lineage's names as certbot reports them, sorted; none once certbot deleted it, and deleting it again names the renewal file certbot looked for", () => {
    box.write("certbot/bbb.example.org", "scalelite.example.org bbb.example.org\n");
    box.write("certbot/other.example.org", "other.example.org\n");
    expect(lib("cert_names bbb.example.org").stdout).toBe("bbb.example.org scalelite.example.org\n");
    expect(lib("certbot delete --non-interactive --cert-name bbb.example.org && cert_names bbb.example.org").stdout).toBe("\n");
    const again = lib("certbot delete --non-interactive --cert-name bbb.example.org");
    expect([again.status, again.stderr]).toEqual([1, "No certificate found with name bbb.example.org (expected /etc/letsencrypt/renewal/bbb.example.org.conf).\n"]);
    expect(lib("cert_names other.example.org").stdout).toBe("other.example.org\n");
});
