// scripts/remote/bbb-recordings.sh, run for real against stub getent/groupadd/usermod (over $ROOT/etc/group and
// $ROOT/etc/passwd), NFS mount/mountpoint/umount (the share holds Scalelite's spool directory), a curl that hands
// out Scalelite's two files, and the shared apt-get, chown and systemctl stubs.
import * as fs from "fs";
import { Sandbox } from "./sandbox";
import { installStubs } from "./stubs";

const INPUTS = { NFS_SERVER: "10.20.0.5", SCALELITE_VERSION: "v1.8.5" };
const SCRIPTS = "root/usr/local/bigbluebutton/core/scripts";
const POST_PUBLISH = `${SCRIPTS}/post_publish/scalelite_post_publish.rb`;
const YML = `${SCRIPTS}/scalelite.yml`;
const RAW = "https://raw.githubusercontent.com/blindsidenetworks/scalelite";

/** The start of Scalelite's post-publish script, as v1.8.5 ships it. */
const RB = `#!/usr/bin/ruby
# frozen_string_literal: true

require "psych"
scalelite_props = Psych.load_file(File.expand_path("../scalelite.yml", __dir__)) || {}
spool_dir = scalelite_props["spool_dir"] || raise("Unable to determine spool_dir from scalelite.yml")
`;
/** Scalelite's scalelite.yml (its keys and defaults, comments shortened). */
const YML_UPSTREAM = `# Directory for temporary storage of working files
work_dir: /var/bigbluebutton/recording/scalelite
# Directory to place recording files for scalelite to import
spool_dir: /var/bigbluebutton/spool
# Extra rsync command-line options
extra_rsync_opts: []

# If recordings should be deleted locally immediately after they are transferred. Defaults to false.
delete_recording: false
`;

/**
 * getent passwd|group NAME|ID, as glibc's getent asks NSS: from the sources /etc/nsswitch.conf names for the
 * database (files when it names none), of which only files ($ROOT/etc/{passwd,group}) holds anything here; exit 2
 * when none has the key, as the real one.
 */
const GETENT = `
db=$1; key=$2; field=1
case $key in *[!0-9]*) ;; *) field=3 ;; esac
sources=$(sed -n "s/^$db:[[:space:]]*//p" "$ROOT/etc/nsswitch.conf" 2>/dev/null); sources=\${sources:-files}
case " $sources " in *" files "*) ;; *) exit 2 ;; esac
file="$ROOT/etc/$db"
[ -f "$file" ] || exit 2
awk -F: -v k="$key" -v f="$field" '$f == k { print; found = 1 } END { exit found ? 0 : 2 }' "$file"`;
const GROUPADD = `
[ -n "\${GROUPADD_FAIL:-}" ] && { echo "groupadd: cannot lock /etc/group" >&2; exit 10; }
[ "$1" = -g ] && printf '%s:x:%s:\\n' "$3" "$2" >> "$ROOT/etc/group"`;
/**
 * usermod -a -G GROUP USER: adds USER to GROUP's members. USERMOD_LOCKED=1: another tool holds /etc/group's lock
 * (e.g. a package's postinst running useradd): shadow 4.8's usermod.c, open_files, "cannot lock /etc/group; try
 * again later.", exit 10 (E_GRP_UPDATE), nothing changed.
 */
const USERMOD = `
[ -z "\${USERMOD_LOCKED:-}" ] || { echo "usermod: cannot lock /etc/group; try again later." >&2; exit 10; }
g=$3; u=$4
awk -F: -v OFS=: -v g="$g" -v u="$u" '$1 == g { $4 = ($4 == "" ? u : $4 "," u) } { print }' "$ROOT/etc/group" > "$ROOT/etc/group.new"
mv "$ROOT/etc/group.new" "$ROOT/etc/group"`;
/**
 * mount PATH: mounts the share (what /etc/fstab names for PATH is noted in $SANDBOX/nfs/source), which holds
 * Scalelite's spool directory unless SHARE_EMPTY=1. MOUNT_FAIL=1: the server does not answer.
 */
const MOUNT = `
[ -n "\${MOUNT_FAIL:-}" ] && { echo "mount.nfs: Connection timed out" >&2; exit 32; }
mkdir -p "$SANDBOX/nfs"; echo "$1" >> "$SANDBOX/nfs/mounted"
awk -v mp="\${1#"$ROOT"}" '$2 == mp { print $1 }' "$ROOT/etc/fstab" > "$SANDBOX/nfs/source"
[ -n "\${SHARE_EMPTY:-}" ] || mkdir -p "$1/spool"`;
const MOUNTPOINT = `[ "$1" = -q ] && shift; [ -f "$SANDBOX/nfs/mounted" ] && grep -qxF "$1" "$SANDBOX/nfs/mounted"`;
/**
 * umount -l PATH: the share is no longer mounted there. UMOUNT_FAIL=1: umount(2) refuses, as to a root without
 * CAP_SYS_ADMIN over the mount (a confined root, e.g. in a container): util-linux 2.37's libmount
 * (context_umount.c) words EPERM "must be superuser to unmount.", exit 32; a lazy unmount is never busy.
 */
const UMOUNT = `[ -z "\${UMOUNT_FAIL:-}" ] || { echo "umount: $2: must be superuser to unmount." >&2; exit 32; }
[ "$1" = -l ] && shift; grep -vxF "$1" "$SANDBOX/nfs/mounted" > "$SANDBOX/nfs/left" || true; mv "$SANDBOX/nfs/left" "$SANDBOX/nfs/mounted"`;
/** curl -o FILE URL: Scalelite's two files from $SANDBOX/scalelite-files/; DOWNLOAD_404=<file> answers 404 for it. */
const CURL = `
out=""; url=""; prev=""
for a in "$@"; do [ "$prev" = "-o" ] && out=$a; case $a in http*) url=$a ;; esac; prev=$a; done
name=\${url##*/}
case $url in
  ${RAW}/*/bigbluebutton/scalelite_post_publish.rb|${RAW}/*/bigbluebutton/scalelite.yml)
    [ "\${DOWNLOAD_404:-}" = "$name" ] && { echo "curl: (22) The requested URL returned error: 404" >&2; exit 22; }
    cp "$SANDBOX/scalelite-files/$name" "$out" ;;
  *) echo "curl: unexpected URL $url" >&2; exit 3 ;;
esac`;

/** A BBB server after bbb-configure: the bigbluebutton user, BBB's recording scripts, an fstab with the root disk. */
function host(): Sandbox {
    const box = new Sandbox();
    installStubs(box);
    box.stub("getent", GETENT);
    box.stub("groupadd", GROUPADD);
    box.stub("usermod", USERMOD);
    box.stub("mount", MOUNT);
    box.stub("mountpoint", MOUNTPOINT);
    box.stub("umount", UMOUNT);
    box.stub("curl", CURL);
    box.write("root/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nbigbluebutton:x:997:997::/home/bigbluebutton:/bin/false\n");
    box.write("root/etc/group", "root:x:0:\nbigbluebutton:x:997:\n");
    box.write("root/etc/fstab", "LABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1\n");
    box.write(`${SCRIPTS}/post_publish/post_publish.rb.example`, "# example\n");
    box.write("scalelite-files/scalelite_post_publish.rb", RB);
    box.write("scalelite-files/scalelite.yml", YML_UPSTREAM);
    return box;
}

let box: Sandbox;
const run = (inputs: Partial<typeof INPUTS> = {}, env: Record<string, string> = {}) => box.run("bbb-recordings", { ...INPUTS, ...inputs }, env);
const ok = (inputs: Partial<typeof INPUTS> = {}) => {
    const r = run(inputs);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    return r;
};
const read = (relative: string) => fs.readFileSync(box.file(relative), "utf8");
const mode = (relative: string) => (fs.statSync(box.file(relative)).mode & 0o777).toString(8);
const forget = () => fs.writeFileSync(box.callLog, "");
const NFS_LINE = "10.20.0.5:/var/lib/bbb-data/recordings /mnt/scalelite-recordings nfs defaults,tcp,nofail,_netdev,lookupcache=positive 0 0";
/** What changes a run made, besides reading: the calls that are not look-ups. */
const changes = () => box.calls().filter((c) => !/^(getent|mountpoint|curl|chown) /.test(c));

describe("a first run", () => {
    let first: ReturnType<typeof run>;
    beforeAll(() => {
        box = host();
        first = run();
    });
    afterAll(() => box.cleanup());

    test("succeeds quietly on stderr", () => {
        expect(first.stderr).toBe("");
        expect(first.status).toBe(0);
        expect(first.stdout).toContain("bbb-recordings: published recordings go to Scalelite through 10.20.0.5:/var/lib/bbb-data/recordings");
    });

    test("creates the group scalelite-spool with gid 2000, adds bigbluebutton, and restarts the recording worker to pick it up", () => {
        expect(box.calls("groupadd")).toEqual(["groupadd -g 2000 scalelite-spool"]);
        expect(box.calls("usermod")).toEqual(["usermod -a -G scalelite-spool bigbluebutton"]);
        expect(read("root/etc/group")).toContain("\nscalelite-spool:x:2000:bigbluebutton\n");
        expect(box.calls("systemctl")).toEqual(["systemctl try-restart bbb-rap-resque-worker.service"]);
    });

    test("installs nfs-common and rsync, adds the NFS line to /etc/fstab (keeping the others) and mounts the share", () => {
        expect(box.calls("apt-get")).toEqual(["apt-get install -y -q nfs-common rsync"]);
        expect(read("root/etc/fstab")).toBe(`LABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1\n${NFS_LINE}\n`);
        expect(mode("root/etc/fstab")).toBe("644");
        expect(box.calls("mount")).toEqual([`mount ${box.root}/mnt/scalelite-recordings`]);
        expect(read("nfs/source")).toBe("10.20.0.5:/var/lib/bbb-data/recordings\n");
    });

    test("installs Scalelite's post-publish script, pinned to the Scalelite version, as downloaded and executable", () => {
        const download = (file: string) => `curl -fsSL --retry 5 --max-time 60 -o ${box.root}/var/lib/bbb-deploy/scalelite.TMP/${file} ${RAW}/v1.8.5/bigbluebutton/${file}`;
        expect(box.calls("curl").map((c) => c.replace(/scalelite\.\w{6}\//, "scalelite.TMP/"))).toEqual([
            download("scalelite_post_publish.rb"),
            download("scalelite.yml"),
        ]);
        expect(read(POST_PUBLISH)).toBe(RB);
        expect(mode(POST_PUBLISH)).toBe("755");
        expect(box.calls("chown")).toContainEqual(expect.stringMatching(/^chown root:root .*\/post_publish\/scalelite_post_publish\.rb\.\w+$/));
        // The temporary downloads are gone, and nothing is owed to a later run.
        expect(box.files().filter((f) => f.startsWith("var/lib/bbb-deploy/"))).toEqual([]);
    });

    test("writes scalelite.yml with the share's spool, the local work dir and Scalelite's suggested rsync options, other keys kept", () => {
        const lines = read(YML).split("\n").filter((l) => l && !l.startsWith("#"));
        expect(lines).toEqual([
            "delete_recording: false",
            "work_dir: /var/bigbluebutton/recording/scalelite",
            "spool_dir: /mnt/scalelite-recordings/spool",
            'extra_rsync_opts: ["-av", "--no-owner", "--chmod=F664"]',
        ]);
        expect(read(YML).split("\n")[0]).toBe("# Managed by bbb (Pulumi, bbb-recordings step) from Scalelite v1.8.5; changes here are overwritten.");
        expect(mode(YML)).toBe("644");
    });
});

describe("bbb-recordings", () => {
    beforeEach(() => {
        box = host();
    });
    afterEach(() => box.cleanup());

    test("a second run changes nothing: no group change, no restart, no mount, the files as they were", () => {
        ok();
        const before = new Map(box.files().map((f) => [f, read(`root/${f}`)]));
        forget();
        ok();
        expect(changes()).toEqual(["apt-get install -y -q nfs-common rsync"]);
        expect(new Map(box.files().map((f) => [f, read(`root/${f}`)]))).toEqual(before);
    });

    test("a group scalelite-spool with gid 2000 that already has bigbluebutton is left alone", () => {
        fs.appendFileSync(box.file("root/etc/group"), "scalelite-spool:x:2000:bigbluebutton\n");
        expect(ok().stdout).toContain("bbb-recordings: published recordings go to Scalelite through 10.20.0.5:/var/lib/bbb-data/recordings");
        expect(box.calls("getent")).toContain("getent group scalelite-spool");
        expect(box.calls("groupadd")).toEqual([]);
        expect(box.calls("usermod")).toEqual([]);
        expect(box.calls("systemctl")).toEqual([]);
    });

    test("a new Scalelite host (NFS_SERVER) replaces the fstab line and the mount; the old share is unmounted lazily", () => {
        ok();
        forget();
        ok({ NFS_SERVER: "10.20.0.9" });
        const fstab = read("root/etc/fstab").split("\n").filter(Boolean);
        expect(fstab).toEqual(["LABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1", NFS_LINE.replace("10.20.0.5", "10.20.0.9")]);
        expect(box.calls("umount")).toEqual([`umount -l ${box.root}/mnt/scalelite-recordings`]);
        expect(box.calls("mount")).toEqual([`mount ${box.root}/mnt/scalelite-recordings`]);
        expect(read("nfs/source")).toBe("10.20.0.9:/var/lib/bbb-data/recordings\n");
    });

    test("a new SCALELITE_VERSION downloads from its tag and rewrites only what changed", () => {
        ok();
        forget();
        box.write("scalelite-files/scalelite_post_publish.rb", `${RB}# v1.8.6\n`);
        const r = ok({ SCALELITE_VERSION: "v1.8.6" });
        expect(box.calls("curl").every((c) => c.includes(`${RAW}/v1.8.6/bigbluebutton/`))).toBe(true);
        expect(read(POST_PUBLISH)).toBe(`${RB}# v1.8.6\n`);
        expect(r.stdout).toContain("installed scalelite_post_publish.rb (v1.8.6)");
        // The yml changed only in its header, which names the version.
        expect(read(YML)).toContain("from Scalelite v1.8.6;");
    });

    test("gid 2000 taken by another group, or scalelite-spool with another gid, fails naming the group; nothing installed", () => {
        fs.appendFileSync(box.file("root/etc/group"), "docker:x:2000:\n");
        const taken = run();
        expect(taken.status).toBe(1);
        expect(taken.stderr).toContain("bbb-recordings: error: gid 2000 is taken by the group docker; Scalelite's share needs it for scalelite-spool");
        box.write("root/etc/group", "root:x:0:\nscalelite-spool:x:1999:\n");
        const other = run();
        expect(other.status).toBe(1);
        expect(other.stderr).toContain("bbb-recordings: error: the group scalelite-spool has gid 1999; Scalelite's share needs gid 2000");
        expect(box.calls("groupadd")).toEqual([]);
        expect(box.calls("mount")).toEqual([]);
        expect(fs.existsSync(box.file(POST_PUBLISH))).toBe(false);
    });

    test("a failing groupadd names it", () => {
        const r = run({}, { GROUPADD_FAIL: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-recordings: error: groupadd -g 2000 scalelite-spool failed");
    });

    test("a file that cannot be written stops the step there, naming it", () => {
        box.stub("chown", "exit 1");
        const r = run();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`bbb-recordings: error: cannot chown root:root ${box.root}/etc/fstab`);
        expect(box.calls("mount")).toEqual([]);
    });

    test("a share that does not mount, or holds no spool directory, fails naming the share; no script is installed", () => {
        const down = run({}, { MOUNT_FAIL: "1" });
        expect(down.status).toBe(1);
        expect(down.stderr).toContain(
            "bbb-recordings: error: cannot mount 10.20.0.5:/var/lib/bbb-data/recordings at /mnt/scalelite-recordings (has scalelite-setup exported it",
        );
        const empty = run({}, { SHARE_EMPTY: "1" });
        expect(empty.status).toBe(1);
        expect(empty.stderr).toContain("bbb-recordings: error: the share 10.20.0.5:/var/lib/bbb-data/recordings has no spool directory");
        expect(fs.existsSync(box.file(POST_PUBLISH))).toBe(false);
        expect(fs.existsSync(box.file(YML))).toBe(false);
    });

    test("a download that fails, or is not what it should be, is refused; nothing is installed", () => {
        const missing = run({}, { DOWNLOAD_404: "scalelite.yml" });
        expect(missing.status).toBe(1);
        expect(missing.stderr).toContain(`bbb-recordings: error: cannot download ${RAW}/v1.8.5/bigbluebutton/scalelite.yml`);
        box.write("scalelite-files/scalelite_post_publish.rb", "<!DOCTYPE html><html>spool_dir</html>\n");
        const html = run();
        expect(html.status).toBe(1);
        expect(html.stderr).toContain(
            `bbb-recordings: error: ${RAW}/v1.8.5/bigbluebutton/scalelite_post_publish.rb is not Scalelite's post-publish script`,
        );
        box.write("scalelite-files/scalelite_post_publish.rb", RB);
        box.write("scalelite-files/scalelite.yml", "404: Not Found\n");
        const yml = run();
        expect(yml.status).toBe(1);
        expect(yml.stderr).toContain(`bbb-recordings: error: ${RAW}/v1.8.5/bigbluebutton/scalelite.yml is not Scalelite's scalelite.yml`);
        expect(fs.existsSync(box.file(POST_PUBLISH))).toBe(false);
        expect(fs.existsSync(box.file(YML))).toBe(false);
        expect(fs.readdirSync(box.file("root/var/lib/bbb-deploy")).filter((f) => f !== "pending")).toEqual([]);
    });

    test("a host without BigBlueButton's recording scripts fails before any group, mount or file is touched", () => {
        fs.rmSync(box.file("root/usr/local/bigbluebutton"), { recursive: true });
        const r = run();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-recordings: error: /usr/local/bigbluebutton/core/scripts is missing: bbb-install.sh has not completed on this host");
        expect(changes()).toEqual([]);
        expect(read("root/etc/group")).not.toContain("scalelite-spool");
    });

    test("a group NSS does not show after groupadd (nsswitch.conf's group line without files) stops the step before anyone joins it", () => {
        box.write("root/etc/nsswitch.conf", "passwd: files\ngroup: sss\n");
        const r = run();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-recordings: error: the group scalelite-spool is missing after groupadd");
        expect(box.calls("groupadd")).toEqual(["groupadd -g 2000 scalelite-spool"]);
        expect(box.calls("usermod")).toEqual([]);
        expect(box.calls("mount")).toEqual([]);
    });

    test("a usermod that cannot lock /etc/group (another tool holds it) stops the step; the next run adds bigbluebutton and restarts the worker", () => {
        const r = run({}, { USERMOD_LOCKED: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("usermod: cannot lock /etc/group; try again later.\nbbb-recordings: error: usermod -a -G scalelite-spool bigbluebutton failed");
        expect(read("root/etc/group")).toContain("\nscalelite-spool:x:2000:\n");
        expect(box.calls("mount")).toEqual([]);
        expect(box.calls("systemctl")).toEqual([]);
        forget();
        ok();
        expect(read("root/etc/group")).toContain("\nscalelite-spool:x:2000:bigbluebutton\n");
        expect(box.calls("systemctl")).toEqual(["systemctl try-restart bbb-rap-resque-worker.service"]);
    });

    test("a recording worker that does not restart (for the new group) fails the step, and the next run restarts it", () => {
        const r = run({}, { SYSTEMCTL_FAIL: "try-restart" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("Job for bbb-rap-resque-worker.service failed because the control process exited with error code.");
        expect(r.stderr).toContain("bbb-recordings: error: cannot restart bbb-rap-resque-worker.service (the next run restarts it again)");
        expect(r.stdout).not.toContain("published recordings go to Scalelite");
        forget();
        ok();
        expect(box.calls("systemctl")).toEqual(["systemctl try-restart bbb-rap-resque-worker.service"]);
        forget();
        ok();
        expect(box.calls("systemctl")).toEqual([]);
    });

    test("a run that stopped after bigbluebutton joined the group (the share did not mount) restarts the worker once it gets through", () => {
        expect(run({}, { MOUNT_FAIL: "1" }).status).toBe(1);
        expect(read("root/etc/group")).toContain("\nscalelite-spool:x:2000:bigbluebutton\n");
        expect(box.calls("systemctl")).toEqual([]);
        forget();
        ok();
        expect(box.calls("usermod")).toEqual([]);
        expect(box.calls("systemctl")).toEqual(["systemctl try-restart bbb-rap-resque-worker.service"]);
    });

    test("an old share that cannot be unmounted fails the step, naming it; the next run unmounts it and mounts the new one", () => {
        ok();
        forget();
        const r = run({ NFS_SERVER: "10.20.0.9" }, { UMOUNT_FAIL: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`umount: ${box.root}/mnt/scalelite-recordings: must be superuser to unmount.`);
        expect(r.stderr).toContain("bbb-recordings: error: cannot unmount the old share at /mnt/scalelite-recordings (the next run unmounts it again)");
        expect(box.calls("mount")).toEqual([]);
        expect(read("nfs/source")).toBe("10.20.0.5:/var/lib/bbb-data/recordings\n");
        forget();
        ok({ NFS_SERVER: "10.20.0.9" });
        expect(box.calls("umount")).toEqual([`umount -l ${box.root}/mnt/scalelite-recordings`]);
        expect(box.calls("mount")).toEqual([`mount ${box.root}/mnt/scalelite-recordings`]);
        expect(read("nfs/source")).toBe("10.20.0.9:/var/lib/bbb-data/recordings\n");
        forget();
        ok({ NFS_SERVER: "10.20.0.9" });
        expect(box.calls("umount")).toEqual([]);
        expect(box.calls("mount")).toEqual([]);
    });

    test("a host without BigBlueButton, or bad inputs, fail before anything changes", () => {
        box.write("root/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
        const noBbb = run();
        expect(noBbb.status).toBe(1);
        expect(noBbb.stderr).toContain("bbb-recordings: error: the user bigbluebutton is missing: bbb-install.sh has not completed on this host");
        forget();
        const cases: [Partial<typeof INPUTS>, string][] = [
            [{ NFS_SERVER: "scalelite.example.org" }, "NFS_SERVER 'scalelite.example.org' is not an IPv4 address"],
            [{ SCALELITE_VERSION: "../main" }, "SCALELITE_VERSION '../main' is not an image tag"],
        ];
        for (const [inputs, message] of cases) {
            const r = run(inputs);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`bbb-recordings: error: ${message}`);
        }
        expect(box.calls()).toEqual([]);
    });
});
