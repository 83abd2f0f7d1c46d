// A small `pulumi up` for tests. The program is evaluated under Pulumi's mocks (scripts/offline.ts); what
// `pulumi up` would do going from one evaluation to the next is computed (diff(), then the force-new inputs of
// the table below: a replaced resource gets new computed values, ids and random secrets, so that what depends on
// it changes too); then it is done on a cluster of sandboxes (test/sandbox.ts), one per host, with the stubs of
// test/stubs.ts and the few more a whole host needs (defined here):
//   - every remote step (command:remote:Command) runs for real on its host, with the stdin the program built and
//     the word of its command line (create, update, or on deletion the old run's delete with the old stdin);
//     every local command (command:local:Command, node) runs for real where `pulumi up` runs (the "operator"
//     sandbox), its HTTPS requests answered by the hosts' sandboxes;
//   - cloud resources are modelled by what they do to a host: a VM created is a fresh host; replaced (a
//     force-new input, or --replace), its meetings end, then a fresh host whose data volumes come back; resized
//     (flavorName), it reboots and its meetings end; deleted, its meetings end. A data volume deleted or replaced
//     is data lost, unless protected (Pulumi refuses: the up fails). DNS records make one zone ($CLUSTER/dns),
//     which dig and getent answer from; curl reaches a host by its name.
//   - Scalelite's poller: after every operation each registered server's meetings in Scalelite's view follow
//     that BBB host's; `servers:panic` ends the server's meetings, as Scalelite's panic does.
// Order, as the engine: creations, replacements and updates in dependency order (explicit and input
// dependencies, transitively); cloud resources as soon as they may (Pulumi starts them at once), then one step
// at a time, a started chain of steps (and what it waits for) before a new one (as the pool's maintenance slot
// makes the real, parallel run do); a delete-before-replace (a VM) first deletes what is replaced with it, dependents first; the first
// failure stops the up (no new step, no deletion). Then deletions (what left the program, old halves of
// create-before-delete replacements) in reverse dependency order, in waves of what Pulumi deletes in parallel
// (a failure stops the up after its wave). Not modelled: steps that Pulumi would have running in parallel with a
// failing one (only deletions are run as such).
import { createHash } from "crypto";
import { ChildProcess, execFileSync, spawn } from "child_process";
import { Worker } from "worker_threads";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { changedInputs, CloudMock, diff, Registered, Run } from "../scripts/offline";
import { REBUILT_ON, REPLACED_ON as IMPACT_REPLACED_ON } from "../scripts/impact";
import { Sandbox, TRACE_EXECVE } from "./sandbox";
import { attachVolume, getentStub, hooksApiCurl, installStubs, swiftRestic, WEBHOOKS_REDIS_CLI } from "./stubs";

const COMMAND = "command:remote:Command";
const LOCAL_COMMAND = "command:local:Command";
const INSTANCE = "openstack:compute/instance:Instance";
const VOLUME = "openstack:blockstorage/volume:Volume";
const ATTACH = "openstack:compute/volumeAttach:VolumeAttach";
const DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord";
const RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword";

/**
 * Inputs whose change replaces a resource, as `npm run impact` has them (scripts/impact.ts); a rebuild from a new
 * image rewrites the VM's disk too, which here counts as a replacement (its meetings end).
 */
const REPLACED_ON: Record<string, string[] | "any"> = {
    ...IMPACT_REPLACED_ON,
    [INSTANCE]: [...(IMPACT_REPLACED_ON[INSTANCE] as string[]), ...REBUILT_ON],
};

function forcesReplacement(type: string, changed: string[]): boolean {
    const fields = REPLACED_ON[type];
    if (!fields || changed.length === 0) return false;
    return fields === "any" || changed.some((key) => fields.includes(key));
}

const keyOf = (r: Registered) => `${r.type}::${r.name}`;

// ---------------------------------------------------------------------------------------------------------------
// Stubs beyond test/stubs.ts (what a whole host needs; the step tests define richer ones for their own checks).

/** dig +short ... A|AAAA NAME @resolver: the cluster's zone ($CLUSTER/dns: `fqdn address...` a line). */
const DIG = `
type=""; name=""
for a in "$@"; do case $a in +*|@*) ;; A|AAAA) type=$a ;; *) name=$a ;; esac; done
awk -v n="$name" '$1 == n { for (i = 2; i <= NF; i++) print $i }' "$CLUSTER/dns" 2>/dev/null |
  if [ "$type" = AAAA ]; then grep : || true; else grep -v : || true; fi`;

/**
 * curl, as the network sees it (not a stub of its own: it does not log, the curl it hands over to does): the two
 * download sites; a call to a host of the cluster without --resolve goes to that host's sandbox and is answered
 * there as that host answers (no answer from a deleted VM); a call through --resolve NAME:443:127.0.0.1 is
 * answered by this host's role (curl-<role>).
 */
const CURL_ROUTER = `#!/bin/bash
SANDBOX=\${SANDBOX:-$(cd "$(dirname "$0")/.." && pwd)}
url=""; resolve=""; out=""; prev=""
for a in "$@"; do [ "$prev" = --resolve ] && resolve=$a; [ "$prev" = -o ] && out=$a; case $a in http*) url=$a ;; esac; prev=$a; done
host=\${url#*://}; host=\${host%%/*}
case $url in
  https://raw.githubusercontent.com/bigbluebutton/bbb-install/*|https://raw.githubusercontent.com/*/bbb-install.sh)
    exec "$SANDBOX/bin/curl-api" "$@" ;;
  https://raw.githubusercontent.com/blindsidenetworks/scalelite/*)
    printf '%s\\n' "curl $*" >> "$SANDBOX/calls.log"
    cp "$CLUSTER/files/\${url##*/}" "$out"; exit ;;
esac
if [ -z "$resolve" ] && [ -z "\${CURL_ROUTED:-}" ]; then
  target=$(awk -v h="$host" '$1 == h { print $2 }' "$CLUSTER/hosts" 2>/dev/null | tail -n1)
  [ -n "$target" ] || { echo "curl: (6) Could not resolve host: $host" >&2; exit 6; }
  [ -e "$target/gone" ] && { echo "curl: (7) Failed to connect to $host port 443: No route to host" >&2; exit 7; }
  CURL_ROUTED=1 SANDBOX=$target exec "$target/bin/curl" "$@"
fi
exec "$SANDBOX/bin/curl-$(cat "$SANDBOX/role")" "$@"`;


/** Scalelite behind its nginx (as test/scalelite-setup.test.ts models it): healthy, its API answers. */
const CURL_SCALELITE = `
url=""; for a in "$@"; do case $a in http*) url=$a ;; esac; done
case $url in
  */health_check) [ "$(cat "$SANDBOX/docker/scalelite-api/running" 2>/dev/null)" = true ] && printf success || printf 'Health Check Failure' ;;
  */bigbluebutton/api) printf '<response><returncode>SUCCESS</returncode><version>2.0</version></response>' ;;
  *) echo "curl: unexpected URL $url" >&2; exit 3 ;;
esac`;

/** Greenlight's health check through nginx (as test/greenlight-setup.test.ts models it). */
const CURL_GREENLIGHT = `
url=""; for a in "$@"; do case $a in http*) url=$a ;; esac; done
case $url in
  https://*/health_check)
    [ -f "$SANDBOX/units/nginx" ] || { printf 000; echo "curl: (7) Failed to connect" >&2; exit 7; }
    if [ "$(cat "$SANDBOX/docker/greenlight-v3/running" 2>/dev/null)" = true ]; then printf 200; else printf 502; fi ;;
  *) echo "curl: unexpected URL $url" >&2; exit 3 ;;
esac`;

const CURL_TURN = `echo "curl: unexpected call on the TURN host: $*" >&2; exit 3`;

/**
 * systemctl on a BBB server: test/stubs.ts's (systemctl-base), and bbb-webhooks loading its hooks when it starts
 * (from Redis, then the permanentURLs of its production.yml), as test/bbb-webhooks.test.ts models it.
 */
const SYSTEMCTL_BBB = `#!/bin/bash
SANDBOX=\${SANDBOX:-$(cd "$(dirname "$0")/.." && pwd)}
ROOT="$SANDBOX/root"
unit=""; for a in "\${@:2}"; do case $a in -*) ;; *) unit=$a ;; esac; done
was=false; [ -f "$SANDBOX/units/$unit" ] && was=true
"$SANDBOX/bin/systemctl-base" "$@"; rc=$?
wh="$SANDBOX/webhooks"
if [ "$rc" = 0 ] && [ "\${unit%.service}" = bbb-webhooks ] && { [ "$1" = restart ] || { [ "$1" = start ] && [ "$was" = false ]; }; }; then
  rm -rf "$wh/mem"; mkdir -p "$wh/mem" "$wh/redis"; touch "$wh/redis/set"
  while read -r id; do [ -f "$wh/redis/hook:$id" ] && cp "$wh/redis/hook:$id" "$wh/mem/$id"; done < "$wh/redis/set"
  sed -n "s/^ *- url: '\\(.*\\)'$/\\1/p" "$ROOT/etc/bigbluebutton/bbb-webhooks/production.yml" 2>/dev/null | sed "s/''/'/g" |
  while IFS= read -r url; do
    for f in "$wh/mem"/*; do [ -f "$f" ] && [ "$(head -n1 "$f")" = "$url" ] && continue 2; done
    id=p$(printf '%s' "$url" | sha1sum | cut -c1-12)
    printf '%s\\ntrue\\n' "$url" > "$wh/mem/$id"; cp "$wh/mem/$id" "$wh/redis/hook:$id"; echo "$id" >> "$wh/redis/set"
  done
fi
exit $rc`;


const GROUPADD = `[ "$1" = -g ] && printf '%s:x:%s:\\n' "$3" "$2" >> "$ROOT/etc/group"`;
const USERMOD = `
g=$3; u=$4
awk -F: -v OFS=: -v g="$g" -v u="$u" '$1 == g { $4 = ($4 == "" ? u : $4 "," u) } { print }' "$ROOT/etc/group" > "$ROOT/etc/group.new"
mv "$ROOT/etc/group.new" "$ROOT/etc/group"`;

/**
 * mount / mountpoint / umount for both kinds of mounts the steps make: an NFS share (Scalelite's recordings,
 * which holds its spool directory) and a data volume's filesystem (test/stubs.ts's attachVolume keeps its disk
 * in $SANDBOX/disk). Mounted paths are listed in $SANDBOX/mounts.
 */
const MOUNT = `
p=$1; mkdir -p "$SANDBOX/disk"; echo "$p" >> "$SANDBOX/mounts"
if awk -v mp="\${p#"$ROOT"}" '$2 == mp && $3 == "nfs" { found = 1 } END { exit !found }' "$ROOT/etc/fstab"; then mkdir -p "$p/spool"; else echo "$p" > "$SANDBOX/disk/mounted"; fi`;
const MOUNTPOINT = `[ "$1" = -q ] && shift; grep -qxF "$1" "$SANDBOX/mounts" 2>/dev/null`;
const UMOUNT = `[ "$1" = -l ] && shift; grep -vxF "$1" "$SANDBOX/mounts" > "$SANDBOX/mounts.left" || true; mv "$SANDBOX/mounts.left" "$SANDBOX/mounts"`;
/** blockdev --getsize64: the attached volume's size as Cinder last set it ($SANDBOX/disk/size, bytes). */
const BLOCKDEV = `cat "$SANDBOX/disk/size" 2>/dev/null || echo 0`;
/** resize2fs: grows the filesystem ($SANDBOX/disk/fs-size) to the disk, saying so as resize2fs does. */
const RESIZE2FS = `
have=$(cat "$SANDBOX/disk/fs-size" 2>/dev/null || echo 0); want=$(cat "$SANDBOX/disk/size" 2>/dev/null || echo 0)
if [ "$have" -lt "$want" ]; then echo "$want" > "$SANDBOX/disk/fs-size"; echo "The filesystem on $1 is now $((want / 4096)) (4k) blocks long."
else echo "The filesystem is already $((have / 4096)) (4k) blocks long.  Nothing to do!"; fi`;

/**
 * What test/stubs.ts's bbb-install.sh leaves out and later steps need: FreeSWITCH's configuration tree (with the
 * event socket password the installer randomizes), the bigbluebutton user, the recording scripts' directory.
 */
const INSTALLER_MORE = `
fs="$SANDBOX/root/opt/freeswitch/conf"
mkdir -p "$fs/sip_profiles" "$fs/dialplan" "$fs/autoload_configs" "$SANDBOX/root/usr/local/bigbluebutton/core/scripts/post_publish"
[ -f "$fs/vars.xml" ] || printf '<include>\\n  <X-PRE-PROCESS cmd="set" data="external_sip_port=5060"/>\\n</include>\\n' > "$fs/vars.xml"
[ -f "$fs/sip_profiles/external.xml" ] || printf '<profile name="external"><gateways><X-PRE-PROCESS cmd="include" data="external/*.xml"/></gateways></profile>\\n' > "$fs/sip_profiles/external.xml"
[ -f "$fs/dialplan/public.xml" ] || printf '<include><context name="public"><X-PRE-PROCESS cmd="include" data="public/*.xml"/></context></include>\\n' > "$fs/dialplan/public.xml"
[ -f "$fs/autoload_configs/event_socket.conf.xml" ] || printf '<configuration name="event_socket.conf"><settings>\\n  <param name="password" value="e5lSecret0c4f21"/>\\n</settings></configuration>\\n' > "$fs/autoload_configs/event_socket.conf.xml"
# The packages make /var/bigbluebutton (a link made before the installer is followed); -g leaves Greenlight's
# compose project in /root/greenlight-v3.
mkdir -p "$SANDBOX/root/var/bigbluebutton/published" "$SANDBOX/root/var/bigbluebutton/recording/status/published"
case " $* " in *" -g "*)
  mkdir -p "$SANDBOX/root/root/greenlight-v3/data"
  [ -f "$SANDBOX/root/root/greenlight-v3/.env" ] || printf 'SECRET_KEY_BASE=0123\nBIGBLUEBUTTON_ENDPOINT=https://bbb/\n' > "$SANDBOX/root/root/greenlight-v3/.env"
  [ -f "$SANDBOX/root/root/greenlight-v3/docker-compose.yml" ] || printf 'version: "3"\nservices: {}\n' > "$SANDBOX/root/root/greenlight-v3/docker-compose.yml" ;;
esac
grep -q '^bigbluebutton:' "$SANDBOX/root/etc/passwd" || echo 'bigbluebutton:x:997:997::/home/bigbluebutton:/bin/false' >> "$SANDBOX/root/etc/passwd"
grep -q '^bigbluebutton:' "$SANDBOX/root/etc/group" || echo 'bigbluebutton:x:997:' >> "$SANDBOX/root/etc/group"
`;

/** Scalelite's two files for the BBB servers (the start of v1.8.5's, as test/bbb-recordings.test.ts has them). */
const SCALELITE_FILES: Record<string, string> = {
    "scalelite_post_publish.rb": '#!/usr/bin/ruby\n# frozen_string_literal: true\n\nrequire "psych"\nspool_dir = scalelite_props["spool_dir"]\n',
    "scalelite.yml": "work_dir: /var/bigbluebutton/recording/scalelite\nspool_dir: /var/bigbluebutton/spool\nextra_rsync_opts: []\ndelete_recording: false\n",
};

/**
 * Preloaded into node for local commands: https.get answered through the operator's curl, so that a request to
 * https://<host>/... reaches that host's sandbox as every other call does (a deleted VM does not answer).
 */
const OPERATOR_HTTPS = `
const https = require("https");
const { execFile } = require("child_process");
const { EventEmitter } = require("events");
https.get = function (url, options, callback) {
  if (typeof options === "function") { callback = options; options = {}; }
  const request = new EventEmitter();
  request.destroy = (err) => { if (err) request.emit("error", err); return request; };
  request.setTimeout = () => request;
  const operator = process.env.OPERATOR;
  const env = { PATH: operator + "/bin", SANDBOX: operator, HOME: operator, CLUSTER: process.env.CLUSTER, LANG: "C.UTF-8" };
  execFile(operator + "/bin/curl", ["-sS", "--max-time", "20", String(url)], { env, encoding: "utf8" }, (err, stdout, stderr) => {
    if (err) return request.emit("error", new Error(String(stderr || err.message).trim()));
    const response = new EventEmitter();
    response.statusCode = 200;
    response.setEncoding = () => response;
    if (callback) callback(response);
    response.emit("data", stdout);
    response.emit("end");
  });
  return request;
};
`;

/**
 * Child processes are started by a small helper process: forking the test process itself (hundreds of MB) costs
 * about ten milliseconds a child, and there are hundreds.
 */
const SPAWNER = `
const { spawn } = require("child_process");
process.on("message", (m) => {
  const child = spawn(m.file, m.args, { env: m.env, timeout: m.timeout });
  let stdout = "", stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
  child.on("error", (e) => process.send({ id: m.id, status: null, stdout, stderr: stderr + String(e) }));
  child.on("close", (status) => process.send({ id: m.id, status, stdout, stderr }));
  child.stdin.on("error", () => undefined);
  child.stdin.end(m.input);
});
process.on("disconnect", () => process.exit(0));
`;

export interface ProcessResult {
    status: number | null;
    stdout: string;
    stderr: string;
}

let spawner: ChildProcess | undefined;
const waiting = new Map<number, (result: ProcessResult) => void>();
let lastId = 0;

/** Runs a program (through the helper); never rejects: a failure to start is a result with status null. */
export function runProcess(file: string, args: string[], options: { env: Record<string, string>; input?: string; timeout?: number }): Promise<ProcessResult> {
    if (!spawner) {
        spawner = spawn(process.execPath, ["-e", SPAWNER], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
        spawner.on("message", (m: ProcessResult & { id: number }) => {
            const done = waiting.get(m.id);
            waiting.delete(m.id);
            if (waiting.size === 0) spawner?.unref();
            done?.({ status: m.status, stdout: m.stdout, stderr: m.stderr });
        });
        spawner.on("exit", () => {
            spawner = undefined;
            for (const [id, done] of waiting) done({ status: null, stdout: "", stderr: `the spawner exited (request ${id})` });
            waiting.clear();
        });
    }
    const id = ++lastId;
    spawner.ref();
    return new Promise((resolve) => {
        waiting.set(id, resolve);
        spawner!.send({ id, file, args, env: options.env, input: options.input ?? "", timeout: options.timeout ?? 20000 });
    });
}

/** CPU seconds (user + system) the child processes started so far have used (Linux; 0 elsewhere). */
export function processesCpuSeconds(): number {
    try {
        const fields = fs.readFileSync(`/proc/${spawner?.pid}/stat`, "utf8").split(") ")[1].split(" ").map(Number);
        return (fields[11] + fields[12] + fields[13] + fields[14]) / 100;
    } catch {
        return 0;
    }
}

/** Stops the helper that starts child processes (it stops by itself when this process exits). */
export function stopProcesses(): void {
    spawner?.disconnect();
    spawner = undefined;
}

/**
 * The Pulumi CLI where `pulumi up` runs, as far as a local command asks it: `pulumi config get KEY [--stack S]`
 * prints the value the up runs with ($CLUSTER/config/KEY, written by up()), as the CLI prints it (a string as
 * is, anything else as JSON); an unset key fails as the CLI does. Without a configuration (up() was given none)
 * it fails as outside a project.
 */
const PULUMI_CLI = `
[ "$1 $2" = "config get" ] || { echo "error: pulumi $1 $2 is not modelled" >&2; exit 255; }
[ -d "$CLUSTER/config" ] || { echo "error: no Pulumi.yaml project file found" >&2; exit 255; }
[ -f "$CLUSTER/config/$3" ] || { echo "error: configuration key 'bbb:$3' not found for stack '\${5:-dev}'" >&2; exit 255; }
cat "$CLUSTER/config/$3"; echo`;

/** Runs node with these arguments where `pulumi up` runs (the cluster's operator sandbox), stdin given. */
function runOperator(cluster: Cluster, args: string[], stdin: string, env: Record<string, string>): Promise<ProcessResult> {
    const operator = path.join(cluster.dir, "operator");
    return runProcess(process.execPath, ["-r", path.join(cluster.dir, "operator-https.js"), ...args], {
        env: { PATH: path.join(operator, "bin"), HOME: operator, LANG: "C.UTF-8", CLUSTER: cluster.dir, OPERATOR: operator, ...env },
        input: stdin,
    });
}

/** Written as is (no call logging): wrappers around stubs that log themselves. */
function writeExecutable(file: string, content: string): void {
    fs.writeFileSync(file, `${content}\n`, { mode: 0o755 });
}

// ---------------------------------------------------------------------------------------------------------------
// The cluster: its hosts and what Pulumi's state holds.

export type Role = "turn" | "bbb" | "scalelite" | "greenlight";

export interface HostInfo {
    name: string;
    role: Role;
    fqdn: string;
    ipv4: string;
}

export interface Cluster {
    /** $CLUSTER: hosts' sandboxes, the DNS zone (dns), where names lead (hosts), downloads (files). */
    dir: string;
    /** What Pulumi's state holds: the last program run as applied (computed values realized). */
    state: Run;
    /** How often each resource was replaced (1: never); ids and random values follow it. */
    generations: Map<string, number>;
    /** The current host of each name (a replaced VM gets a new sandbox). */
    boxes: Map<string, Sandbox>;
    /** Sandboxes of replaced or deleted VMs (their ended meetings still count). */
    retired: Sandbox[];
    /** DNS records: fqdn -> addresses. */
    dns: Map<string, Set<string>>;
    /** Which host a data volume was last attached to. */
    volumeHolder: Map<string, string>;
    /** Each command's output of its last create or update (Pulumi keeps it in the state: stdout, stderr). */
    outputs: Map<string, { stdout: string; stderr: string }>;
    /** Where the steps' programs are traced (test/trace.ts), while set. */
    traceDir?: string;
}

const EMPTY_RUN: Run = { resources: [], outputs: {}, secretOutputs: [], logs: [] };

function hostsOf(run: Run): HostInfo[] {
    return (run.outputs.hosts as HostInfo[] | undefined) ?? [];
}

/** Clusters live in memory (tmpfs) where there is one: copying one is ten times faster than on a disk. */
const CLUSTERS_DIR = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();

function emptyCluster(): Cluster {
    const dir = fs.mkdtempSync(path.join(CLUSTERS_DIR, "bbb-cluster-"));
    fs.mkdirSync(path.join(dir, "files"));
    for (const [name, content] of Object.entries(SCALELITE_FILES)) fs.writeFileSync(path.join(dir, "files", name), content);
    const cluster: Cluster = { dir, state: EMPTY_RUN, generations: new Map(), boxes: new Map(), retired: [], dns: new Map(), volumeHolder: new Map(), outputs: new Map() };
    // Where `pulumi up` runs: local commands (node) run here; their HTTPS requests go out through its curl.
    const operator = Sandbox.makeAt(path.join(dir, "operator"));
    operator.write("role", "operator\n");
    writeExecutable(path.join(operator.bin, "curl"), CURL_ROUTER);
    operator.stub("curl-operator", 'echo "curl: unexpected local call $*" >&2; exit 3');
    operator.stub("pulumi", PULUMI_CLI);
    fs.writeFileSync(path.join(dir, "operator-https.js"), OPERATOR_HTTPS);
    writeZone(cluster);
    return cluster;
}

/**
 * A copy of a cluster (its hosts as they are now), to try a change on. The steps write paths under ROOT (the
 * sandbox's own directory) into files, links and even hashes (a container's arguments): the copy is relocated
 * as if its hosts had always been there, or else a step would see a change that a real host never sees (and,
 * e.g., restart coturn or replace Scalelite's containers).
 */
export async function copyCluster(cluster: Cluster): Promise<Cluster> {
    const dir = fs.mkdtempSync(path.join(CLUSTERS_DIR, "bbb-cluster-"));
    const relocate = [
        'cp -a "$1/." "$2"',
        // Text that names the old place (cluster names have one length and no character special to sed).
        'grep -rlF --null -e "$1" "$2" | xargs -0 -r sed -i "s|$1|$2|g"',
        'find "$2" -type l -lname "$1/*" -printf "%p\\t%l\\n"',
    ].join(" && ");
    const copied = await runProcess("/bin/sh", ["-c", relocate, "sh", cluster.dir, dir], { env: { PATH: "/usr/bin:/bin" } });
    if (copied.status !== 0) throw new Error(`cannot copy ${cluster.dir}: ${copied.stderr}`);
    for (const line of copied.stdout.split("\n").filter(Boolean)) {
        const [link, target] = line.split("\t");
        fs.rmSync(link);
        fs.symlinkSync(dir + target.slice(cluster.dir.length), link);
    }
    // A container's bbb.spec label is a hash of its arguments (lib.sh's ensure_container): of the relocated ones.
    for (const host of fs.readdirSync(dir)) {
        const containers = path.join(dir, host, "docker");
        if (!fs.existsSync(containers)) continue;
        for (const name of fs.readdirSync(containers)) {
            const args = path.join(containers, name, "args");
            if (!fs.existsSync(args)) continue;
            // `docker run -d --name NAME --label bbb.spec=SPEC --restart unless-stopped ARGS...`: the spec hashes ARGS.
            const given = fs.readFileSync(args, "utf8").split("\n").slice(0, -1);
            if (given[3] !== "--label" || !given[4]?.startsWith("bbb.spec=")) continue;
            const spec = createHash("sha256").update(given.slice(7).map((a) => `${a}\n`).join("")).digest("hex").slice(0, 16);
            fs.writeFileSync(path.join(containers, name, "spec"), `${spec}\n`);
            fs.writeFileSync(args, [...given.slice(0, 4), `bbb.spec=${spec}`, ...given.slice(5)].map((a) => `${a}\n`).join(""));
        }
    }
    const moved = (box: Sandbox) => Sandbox.at(path.join(dir, path.basename(box.dir)));
    const copy: Cluster = {
        dir,
        state: cluster.state,
        generations: new Map(cluster.generations),
        boxes: new Map([...cluster.boxes].map(([name, box]) => [name, moved(box)])),
        retired: cluster.retired.map(moved),
        dns: new Map([...cluster.dns].map(([name, addresses]) => [name, new Set(addresses)])),
        volumeHolder: new Map(cluster.volumeHolder),
        outputs: new Map(cluster.outputs),
    };
    writeRoutes(copy);
    return copy;
}

export async function removeCluster(cluster: Cluster): Promise<void> {
    await fs.promises.rm(cluster.dir, { recursive: true, force: true });
}

function writeZone(cluster: Cluster): void {
    const lines = [...cluster.dns].filter(([, a]) => a.size > 0).map(([name, addresses]) => `${name} ${[...addresses].sort().join(" ")}\n`);
    fs.writeFileSync(path.join(cluster.dir, "dns"), lines.join(""));
}

/** Where a name leads: the current sandbox of the host of that name. */
function writeRoutes(cluster: Cluster): void {
    const lines = [...cluster.boxes].map(([, box]) => `${fs.readFileSync(box.file("fqdn"), "utf8").trim()} ${box.dir}\n`);
    fs.writeFileSync(path.join(cluster.dir, "hosts"), lines.join(""));
}

/** A fresh VM of a role: Ubuntu with the stubs, nothing installed. */
function freshHost(cluster: Cluster, host: HostInfo, generation: number): Sandbox {
    const box = Sandbox.makeAt(path.join(cluster.dir, generation > 1 ? `${host.name}~${generation}` : host.name));
    installStubs(box);
    box.write("role", `${host.role}\n`);
    box.write("fqdn", `${host.fqdn}\n`);
    box.write("root/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
    box.write("root/etc/group", "root:x:0:\n");
    box.write("root/etc/fstab", "LABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1\n");
    fs.mkdirSync(box.file("tmp"));
    box.stub("cloud-init", "exit 0");
    box.stub("dig", DIG);
    box.stub("getent", getentStub("$CLUSTER/dns"));
    box.stub("exportfs");
    box.stub("blockdev", BLOCKDEV);
    box.stub("resize2fs", RESIZE2FS);
    box.stub("mount", MOUNT);
    box.stub("mountpoint", MOUNTPOINT);
    box.stub("umount", UMOUNT);
    // The cloud's object store, where the hosts' backups go: outside every host.
    box.stub("restic", swiftRestic("$CLUSTER/swift"));
    fs.renameSync(path.join(box.bin, "curl"), path.join(box.bin, "curl-api"));
    writeExecutable(path.join(box.bin, "curl"), CURL_ROUTER);
    switch (host.role) {
        case "bbb":
            // A BBB server's nginx: bbb-webhooks' API, and bbb-web's API as test/stubs.ts's curl answers it.
            box.stub("curl-bbb", hooksApiCurl('exec "$SANDBOX/bin/curl-api" "$@"'));
            fs.renameSync(path.join(box.bin, "systemctl"), path.join(box.bin, "systemctl-base"));
            writeExecutable(path.join(box.bin, "systemctl"), SYSTEMCTL_BBB);
            box.stub("redis-cli", WEBHOOKS_REDIS_CLI);
            // Greenlight's compose (bbb-install.sh -g installs docker-compose): stop and up -d succeed.
            box.stub("docker-compose");
            box.stub("groupadd", GROUPADD);
            box.stub("usermod", USERMOD);
            fs.appendFileSync(box.file("installer.sh"), INSTALLER_MORE);
            break;
        case "scalelite":
            box.stub("curl-scalelite", CURL_SCALELITE);
            break;
        case "greenlight":
            box.stub("curl-greenlight", CURL_GREENLIGHT);
            break;
        case "turn":
            box.stub("curl-turn", CURL_TURN);
            break;
    }
    return box;
}

// ---------------------------------------------------------------------------------------------------------------
// Meetings.

function lines(file: string): string[] {
    return fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
}

const isGone = (box: Sandbox) => fs.existsSync(box.file("gone"));
const roleOf = (box: Sandbox) => fs.readFileSync(box.file("role"), "utf8").trim() as Role;
const fqdnOf = (box: Sandbox) => fs.readFileSync(box.file("fqdn"), "utf8").trim();

/** BigBlueButton answers on this host: installed, not stopped, the VM there. */
function bbbRunning(box: Sandbox): boolean {
    return !isGone(box) && fs.existsSync(path.join(box.bin, "bbb-conf")) && !fs.existsSync(box.file("bbb-stopped"));
}

function bbbBoxes(cluster: Cluster): [string, Sandbox][] {
    return [...cluster.boxes].filter(([, box]) => roleOf(box) === "bbb" && !isGone(box));
}

/** Puts `count` meetings (or counts[host]) on every BBB server where BigBlueButton runs; Scalelite's poller sees them. */
export function putMeetings(cluster: Cluster, count = 2, counts: Record<string, number> = {}): void {
    for (const [name, box] of bbbBoxes(cluster)) {
        if (!bbbRunning(box)) continue;
        const n = counts[name] ?? count;
        box.write("meetings", Array.from({ length: n }, (_, i) => `${name}-meeting-${i + 1}\n`).join(""));
    }
    poll(cluster);
}

/** Ends the meetings of a host: as BigBlueButton's restart does (test/stubs.ts's bbb-conf), moved to ended-meetings. */
function endMeetings(box: Sandbox): void {
    const running = lines(box.file("meetings"));
    if (running.length > 0) fs.appendFileSync(box.file("ended-meetings"), running.map((m) => `${m}\n`).join(""));
    if (fs.existsSync(box.file("meetings"))) fs.writeFileSync(box.file("meetings"), "");
}

/** Scalelite's poller: each registered server's meetings in Scalelite's view, from the server itself. */
function poll(cluster: Cluster): void {
    const scalelite = cluster.boxes.get("scalelite");
    if (!scalelite) return;
    const servers = scalelite.file("scalelite");
    if (!fs.existsSync(servers)) return;
    const byFqdn = new Map([...cluster.boxes.values()].map((box) => [fqdnOf(box), box]));
    for (const id of fs.readdirSync(servers)) {
        const box = byFqdn.get(id);
        // A server that does not answer keeps its last count (the real poller panics it after two failures).
        if (!box || !bbbRunning(box)) continue;
        fs.writeFileSync(path.join(servers, id, "meetings"), `${lines(box.file("meetings")).length}\n`);
    }
}

function scaleliteState(cluster: Cluster, fqdn: string): string {
    const scalelite = cluster.boxes.get("scalelite");
    const file = scalelite?.file(`scalelite/${fqdn}/state`);
    return file && fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim() : "absent";
}

// ---------------------------------------------------------------------------------------------------------------
// Computed values: a replaced resource gets new ones, and what depends on it sees them.

function volumeUuid(name: string, generation: number): string {
    const h = createHash("sha256").update(`${name}#${generation}`).digest("hex");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function secretOf(name: string, generation: number, length: number): string {
    let out = "";
    for (let i = 0; out.length < length; i++) out += createHash("sha256").update(`${name}#${generation}#${i}`).digest("base64").replace(/[^A-Za-z0-9]/g, "");
    return out.slice(0, length);
}

/**
 * The run with the values the cloud would have given: volume ids shaped as Cinder's (the steps check them), and
 * for a resource replaced `generation - 1` times a new id (VMs, volumes); random passwords by generation.
 */
function realize(raw: Run, generations: Map<string, number>): Run {
    const subs: [string, string][] = [];
    for (const r of raw.resources) {
        if (!r.custom) continue;
        const generation = generations.get(keyOf(r)) ?? 1;
        const id = r.outputs.id as string | undefined;
        if (r.type === VOLUME && id) subs.push([id, volumeUuid(r.name, generation)]);
        else if (r.type === INSTANCE && id && generation > 1) subs.push([id, `${id}-g${generation}`]);
        else if (r.type === RANDOM_PASSWORD) {
            // By generation only: a password Pulumi keeps (its keepers unchanged, or ignored) keeps its value,
            // whatever the mock derived from the keepers of this run.
            const result = r.outputs.result as string;
            subs.push([result, secretOf(r.name, generation, result.length)]);
        }
    }
    if (subs.length === 0) return raw;
    // The same run realized the same way is the same objects (the corpus applies one run to many copies).
    const key = JSON.stringify(subs);
    let known = realized.get(raw);
    if (!known) realized.set(raw, (known = new Map()));
    const cached = known.get(key);
    if (cached) return cached;
    const resources = raw.resources.map((r) => {
        let text = jsonOf(r);
        if (!subs.some(([from]) => text.includes(from))) return r;
        for (const [from, to] of subs) text = text.split(from).join(to);
        return JSON.parse(text) as Registered;
    });
    const run = { ...raw, resources };
    known.set(key, run);
    return run;
}
const realized = new WeakMap<Run, Map<string, Run>>();

/** A resource as JSON, once per resource object. */
const jsonCache = new WeakMap<Registered, string>();
function jsonOf(r: Registered): string {
    let text = jsonCache.get(r);
    if (text === undefined) jsonCache.set(r, (text = JSON.stringify(r)));
    return text;
}
const inputsCache = new WeakMap<Registered, string>();
function inputsJson(r: Registered): string {
    let text = inputsCache.get(r);
    if (text === undefined) inputsCache.set(r, (text = JSON.stringify(r.inputs)));
    return text;
}

/**
 * Evaluates the program (scripts/offline.ts) in a worker thread of its own, so that a
 * test can evaluate configurations while it runs steps: one load of the SDK and the program (plain node, the
 * TypeScript transpiled as it is required), one evaluation at a time. Stack traces are off in the worker: the
 * SDK takes the whole stack for every resource, which only costs time here.
 */
export class ProgramEvaluator {
    private readonly worker: Worker;
    private readonly waiting = new Map<number, { resolve: (run: Run) => void; reject: (err: Error) => void }>();
    private lastId = 0;

    constructor() {
        const root = path.join(__dirname, "..");
        this.worker = new Worker(EVALUATOR, {
            eval: true,
            workerData: { typescript: require.resolve("typescript"), offline: path.join(root, "scripts", "offline.ts") },
        });
        this.worker.on("message", (m: { id: number; run?: Run & { error?: { message: string } }; failure?: string }) => {
            const waiter = this.waiting.get(m.id);
            this.waiting.delete(m.id);
            if (this.waiting.size === 0) this.worker.unref();
            if (!waiter) return;
            if (m.failure !== undefined || !m.run) return waiter.reject(new Error(m.failure));
            const error = m.run.error ? Object.assign(new Error(m.run.error.message), m.run.error) : undefined;
            waiter.resolve({ ...m.run, error });
        });
        this.worker.on("error", (err) => {
            for (const waiter of this.waiting.values()) waiter.reject(err);
            this.waiting.clear();
        });
        this.worker.unref();
    }

    evaluate(config: Record<string, unknown>, cloud: CloudMock = {}, stack = "dev"): Promise<Run> {
        const id = ++this.lastId;
        this.worker.ref();
        return new Promise((resolve, reject) => {
            this.waiting.set(id, { resolve, reject });
            this.worker.postMessage({ id, config, cloud, stack });
        });
    }

    close(): Promise<number> {
        return this.worker.terminate();
    }
}

const EVALUATOR = `
const { parentPort, workerData } = require("worker_threads");
const fs = require("fs");
const ts = require(workerData.typescript);
require.extensions[".ts"] = function (module, filename) {
  const out = ts.transpileModule(fs.readFileSync(filename, "utf8"), {
    fileName: filename,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, experimentalDecorators: true },
  });
  module._compile(out.outputText, filename);
};
Error.stackTraceLimit = 0;
Error.prepareStackTrace = () => "";
const offline = require(workerData.offline);
const modules = offline.loadProgram();
let queue = Promise.resolve();
parentPort.on("message", ({ id, config, cloud, stack }) => {
  queue = queue.then(async () => {
    try {
      const run = await offline.evaluateProgram(modules, config, cloud, stack);
      parentPort.postMessage({ id, run: { ...run, error: run.error && { message: String(run.error.message) } } });
    } catch (err) {
      parentPort.postMessage({ id, failure: String((err && err.message) || err) });
    }
  });
});
`;

// ---------------------------------------------------------------------------------------------------------------
// What `pulumi up` does.

type Action = "create" | "update" | "replace" | "delete";

export interface Operation {
    action: Action;
    resource: Registered;
    /** The resource as the state holds it (update, replace, delete). */
    before?: Registered;
    /** Inputs that changed (update, replace). */
    changed: string[];
}

export interface Plan {
    /** The new run, computed values realized. */
    next: Run;
    generations: Map<string, number>;
    /** Creations, replacements and updates (run in dependency order). */
    operations: Operation[];
    /** Deletions, after everything else: resources gone from the program, old halves of replacements. */
    deletions: Operation[];
}

/** What `pulumi up` (with `--replace` of the given resource names) would do going from the state to `raw`. */
export function planUp(state: Run, stateGenerations: Map<string, number>, raw: Run, replace: string[] = []): Plan {
    const generations = new Map(stateGenerations);
    const before = new Map(state.resources.filter((r) => r.custom).map((r) => [keyOf(r), r]));
    const replaced = new Set<string>();
    for (const name of replace) {
        const r = state.resources.find((s) => s.custom && s.name === name);
        if (!r) throw new Error(`--replace ${name}: no such resource in the state`);
        replaced.add(keyOf(r));
    }
    const bump = (key: string) => generations.set(key, (stateGenerations.get(key) ?? 1) + 1);
    replaced.forEach(bump);
    // changedInputs deep-copies both sides: only for resources whose inputs differ at all.
    const changedBetween = (old: Registered, r: Registered) => (old === r || inputsJson(old) === inputsJson(r) ? [] : changedInputs(old, r));
    let next = realize(raw, generations);
    for (;;) {
        let more = false;
        for (const r of next.resources) {
            const old = before.get(keyOf(r));
            if (!r.custom || !old || replaced.has(keyOf(r))) continue;
            if (forcesReplacement(r.type, changedBetween(old, r))) {
                replaced.add(keyOf(r));
                bump(keyOf(r));
                more = true;
            }
        }
        if (!more) break;
        next = realize(raw, generations);
    }
    const changes = diff(state, next);
    const added = new Set(changes.added);
    const changedNames = new Set(changes.changed);
    const operations: Operation[] = [];
    const deletions: Operation[] = [];
    for (const r of next.resources) {
        if (!r.custom) continue;
        const old = before.get(keyOf(r));
        if (!old) {
            if (added.has(r.name)) operations.push({ action: "create", resource: r, changed: [] });
            continue;
        }
        const changed = changedBetween(old, r);
        if (replaced.has(keyOf(r))) {
            operations.push({ action: "replace", resource: r, before: old, changed });
            if (!r.deleteBeforeReplace) deletions.push({ action: "delete", resource: old, changed: [] });
        } else if (changedNames.has(r.name) && changed.length > 0) {
            operations.push({ action: "update", resource: r, before: old, changed });
        }
    }
    const kept = new Set(next.resources.filter((r) => r.custom).map(keyOf));
    for (const old of state.resources) if (old.custom && !kept.has(keyOf(old))) deletions.push({ action: "delete", resource: old, changed: [] });
    return { next, generations, operations, deletions };
}

/** Every custom resource each resource waits for, directly or not (explicit and input dependencies; a component means its resources). */
function ancestry(run: Run): Map<string, Set<string>> {
    const byUrn = new Map(run.resources.map((r) => [r.urn, r]));
    const children = new Map<string, Registered[]>();
    for (const r of run.resources) children.set(r.parent, [...(children.get(r.parent) ?? []), r]);
    const customsUnder = (urn: string): Registered[] => (children.get(urn) ?? []).flatMap((c) => (c.custom ? [c, ...customsUnder(c.urn)] : customsUnder(c.urn)));
    const direct = (r: Registered): Registered[] =>
        [...r.dependsOn, ...Object.values(r.propertyDependencies).flat()].flatMap((urn) => {
            const dep = byUrn.get(urn);
            if (!dep) return [];
            return dep.custom ? [dep] : customsUnder(dep.urn);
        });
    const memo = new Map<string, Set<string>>();
    const visit = (r: Registered, path: Set<string>): Set<string> => {
        const key = keyOf(r);
        const known = memo.get(key);
        if (known) return known;
        const all = new Set<string>();
        for (const dep of direct(r)) {
            if (path.has(keyOf(dep))) continue;
            all.add(keyOf(dep));
            for (const a of visit(dep, new Set([...path, key]))) all.add(a);
        }
        memo.set(key, all);
        return all;
    };
    for (const r of run.resources) if (r.custom) visit(r, new Set());
    return memo;
}

// ---------------------------------------------------------------------------------------------------------------
// Running an up.

export interface Figures {
    /** Meetings that ended during the up: stopped by a step, or on a VM that was replaced, resized or deleted. */
    meetingsEnded: number;
    /** Data volumes deleted (or replaced) without protection, and user data on a boot volume that went with its VM. */
    volumesLost: number;
    /** The most BBB servers out of service at one moment (cordoned or gone in Scalelite, stopped, restarting). */
    maxOutOfService: number;
    /** The step (or resource) whose failure stopped the up. */
    failedStep?: string;
    /** Its message (the first line of its error output). */
    failure?: string;
    /** BBB servers that were out of service at some moment of the up (in service when it began). */
    outOfService: string[];
    /** Still out of service when the up ended (e.g. cordoned, waiting for the next up). */
    outAtEnd: string[];
    /** Where the ended meetings were, and why: `bbb-1: 2 (VM replaced)`. */
    endedOn: string[];
    /** What data was lost. */
    lost: string[];
    /** Meetings whose media (cameras, screen shares, audio) dropped with a media server restart, without ending. */
    mediaDrops: number;
    /** coturn restarts (relayed calls reconnect). */
    coturnRestarts: number;
    /** What ran, in order: `update bbb-1-configure`, `replace bbb-2-vm`, `delete bbb-3-registration`. */
    ran: string[];
}

export interface UpOptions {
    /** `pulumi up --replace` of these resources (by name). */
    replace?: string[];
    /** The stack's configuration `raw` was evaluated with, for `pulumi config get` where `pulumi up` runs. */
    config?: Record<string, unknown>;
}

/** What `pulumi config get` answers during the up: the configuration it runs with, or nothing to say. */
function writeConfig(cluster: Cluster, config: Record<string, unknown> | undefined): void {
    const dir = path.join(cluster.dir, "config");
    fs.rmSync(dir, { recursive: true, force: true });
    if (!config) return;
    fs.mkdirSync(dir);
    for (const [key, value] of Object.entries(config)) fs.writeFileSync(path.join(dir, key), typeof value === "string" ? value : JSON.stringify(value));
}

/** Environment of every step: the cluster, and no real waiting (the stubs answer at once). */
function stepEnv(cluster: Cluster, box: Sandbox): Record<string, string> {
    return {
        ...(cluster.traceDir ? { [TRACE_EXECVE]: cluster.traceDir } : {}),
        CLUSTER: cluster.dir,
        TMPDIR: box.file("tmp"),
        INSTALLER_POLL_SECONDS: "0.02",
        MAINTENANCE_POLL_SECONDS: "0",
        GATEWAY_DROP_SECONDS: "0",
        VOLUME_WAIT_SECONDS: "0",
    };
}

/** The words after `bash -s` in a command line such as `sudo -n bash -s create # scalelite-node`. */
export function commandWords(line: string | undefined): string[] {
    if (!line) return [];
    const m = /bash -s\s*([^#]*)/.exec(line);
    return m ? m[1].trim().split(/\s+/).filter(Boolean) : [];
}

function hostByAddress(runs: Run[], address: string): HostInfo | undefined {
    for (const run of runs) {
        const found = hostsOf(run).find((h) => h.ipv4 === address);
        if (found) return found;
    }
    return undefined;
}

function hostOfInstance(runs: Run[], r: Registered): HostInfo {
    const name = r.name.replace(/-vm$/, "");
    for (const run of runs) {
        const found = hostsOf(run).find((h) => h.name === name);
        if (found) return found;
    }
    throw new Error(`no host for ${r.name}`);
}

/**
 * Runs `pulumi up` from the cluster's state to the program run `raw` (evaluated by scripts/offline.ts), for real
 * on the cluster's hosts; returns what it did to meetings, data and service. The cluster holds the result.
 */
export async function up(cluster: Cluster, raw: Run, options: UpOptions = {}): Promise<Figures> {
    if (raw.error) throw new Error(`the program failed: ${raw.error.message}`);
    writeConfig(cluster, options.config);
    const plan = planUp(cluster.state, cluster.generations, raw, options.replace);
    const { next } = plan;
    const old = cluster.state;
    const runs = [next, old];
    const figures: Figures = { meetingsEnded: 0, volumesLost: 0, maxOutOfService: 0, outOfService: [], outAtEnd: [], endedOn: [], lost: [], mediaDrops: 0, coturnRestarts: 0, ran: [] };
    const pool = cluster.boxes.has("scalelite") || hostsOf(next).some((h) => h.role === "scalelite");

    // Service before the up: which BBB servers take meetings now.
    const inService = new Set(
        bbbBoxes(cluster)
            .filter(([, box]) => bbbRunning(box) && (!pool || scaleliteState(cluster, fqdnOf(box)) === "enabled"))
            .map(([name]) => name),
    );
    const everOut = new Set<string>();
    // A VM resized, replaced or deleted: Pulumi does these for every VM at once, and each takes minutes; the
    // server counts as out of service for the rest of the up.
    const vmHit = new Set<string>();
    const endedBefore = countEnded(cluster);
    const callCounts = () => new Map([...cluster.boxes].map(([name, box]) => [name, box.calls().length]));
    const newCalls = (counts: Map<string, number>, name: string) => {
        const box = cluster.boxes.get(name);
        return box ? box.calls().slice(counts.get(name) ?? 0) : [];
    };
    const observe = (counts: Map<string, number>, restarted: Set<string>, meetingsBefore: Map<string, number>) => {
        // Scalelite ends the meetings of a panicked server; its poller then sees the servers as they are.
        const scaleliteCalls = newCalls(counts, "scalelite");
        for (const call of scaleliteCalls) {
            for (const m of call.matchAll(/servers:panic\[([^,\]]+)/g)) {
                const box = [...cluster.boxes.values()].find((b) => fqdnOf(b) === m[1]);
                if (box) endMeetings(box);
            }
        }
        poll(cluster);
        for (const [name, box] of cluster.boxes) {
            if (roleOf(box) === "bbb") {
                const calls = newCalls(counts, name);
                if (calls.some((c) => /^(bbb-conf --(restart|stop)|bbb-install\.sh |systemctl (restart|stop) (bigbluebutton|bbb-html5|freeswitch|bbb-webrtc-sfu))/.test(c))) restarted.add(name);
                if (calls.some((c) => /^systemctl restart (bbb-webrtc-sfu|freeswitch)/.test(c))) figures.mediaDrops += meetingsBefore.get(name) ?? 0;
            }
            if (roleOf(box) === "turn") figures.coturnRestarts += newCalls(counts, name).filter((c) => /^systemctl restart coturn/.test(c)).length;
        }
        const out = new Set([...restarted, ...vmHit]);
        for (const name of inService) {
            const box = cluster.boxes.get(name);
            if (!box || !bbbRunning(box) || (pool && scaleliteState(cluster, fqdnOf(box)) !== "enabled")) out.add(name);
        }
        for (const name of out) if (inService.has(name)) everOut.add(name);
        figures.maxOutOfService = Math.max(figures.maxOutOfService, [...out].filter((n) => inService.has(n)).length);
        return out;
    };
    const meetingsNow = () => new Map(bbbBoxes(cluster).map(([name, box]) => [name, lines(box.file("meetings")).length]));

    const fail = (what: string, message: string) => {
        if (figures.failedStep) {
            figures.failure = `${figures.failure}; also ${what}: ${message}`;
            return;
        }
        figures.failedStep = what;
        figures.failure = message;
    };

    /** Runs one operation; false when it failed. */
    const perform = async (op: Operation, phase: "run" | "delete"): Promise<boolean> => {
        const r = op.resource;
        const counts = callCounts();
        const meetingsBefore = meetingsNow();
        const restarted = new Set<string>();
        let ok = true;
        figures.ran.push(`${op.action} ${r.name}${op.action === "update" && r.type === INSTANCE && op.changed.includes("flavorName") ? " (resize)" : ""}`);
        switch (r.type) {
            case COMMAND: {
                ok = await runCommand(op, phase);
                break;
            }
            case LOCAL_COMMAND: {
                ok = await runLocal(op, phase);
                break;
            }
            case INSTANCE: {
                const host = hostOfInstance(runs, r);
                if (op.action === "create") {
                    addHost(host, plan.generations.get(keyOf(r)) ?? 1);
                } else if (op.action === "replace") {
                    vmHit.add(host.name);
                    retireHost(host.name, "VM replaced", restarted);
                    addHost(host, plan.generations.get(keyOf(r)) ?? 1);
                } else if (op.action === "delete") {
                    vmHit.add(host.name);
                    retireHost(host.name, "VM deleted", restarted);
                } else if (op.changed.includes("flavorName")) {
                    // Nova's resize reboots the VM: every service starts again, with the secret in the files.
                    const box = cluster.boxes.get(host.name);
                    if (box) {
                        noteEnded(box, host.name, "VM resized");
                        if (fs.existsSync(path.join(box.bin, "bbb-conf"))) {
                            fs.rmSync(box.file("bbb-stopped"), { force: true });
                            const props = box.file("root/etc/bigbluebutton/bbb-web.properties");
                            const salt = /^securitySalt=(.*)$/m.exec(fs.readFileSync(props, "utf8"))?.[1] ?? "";
                            box.write("running-salt", `${salt}\n`);
                        }
                        if (roleOf(box) === "bbb") vmHit.add(host.name);
                    }
                }
                break;
            }
            case VOLUME: {
                if (op.action === "delete" || op.action === "replace") {
                    const before = op.action === "delete" ? r : op.before!;
                    if (before.protect) {
                        fail(r.name, `${op.action === "delete" ? "deleting" : "replacing"} ${r.name} is refused: the resource is protected (protect: true)`);
                        ok = false;
                        break;
                    }
                    figures.volumesLost += 1;
                    figures.lost.push(`${r.name} (data volume ${op.action === "delete" ? "deleted" : "replaced by a blank one"})`);
                }
                if (op.action === "update" && op.changed.includes("size")) {
                    if ((r.inputs.size as number) < (op.before!.inputs.size as number)) {
                        fail(r.name, `Cinder refuses to shrink ${r.name} from ${op.before!.inputs.size} to ${r.inputs.size} GB`);
                        ok = false;
                        break;
                    }
                    // Cinder extends the volume; the attached disk shows the new size.
                    const box = cluster.boxes.get(cluster.volumeHolder.get(volumeIdOf(r)) ?? "");
                    if (box) box.write("disk/size", `${(r.inputs.size as number) * 1073741824}\n`);
                }
                break;
            }
            case ATTACH: {
                if (op.action === "create" || op.action === "replace") attach(r);
                break;
            }
            case DNS_RECORD: {
                const name = String(r.inputs.name);
                const addresses = cluster.dns.get(name) ?? new Set<string>();
                if (op.before) addresses.delete(String(op.before.inputs.content));
                if (op.action !== "delete") addresses.add(String(r.inputs.content));
                else addresses.delete(String(r.inputs.content));
                cluster.dns.set(name, addresses);
                writeZone(cluster);
                break;
            }
        }
        // What a host can notice: steps, VMs, volumes (not firewall rules, DNS records, secrets).
        if ([COMMAND, LOCAL_COMMAND, INSTANCE, VOLUME, ATTACH].includes(r.type)) observe(counts, restarted, meetingsBefore);
        return ok;
    };

    const runCommand = async (op: Operation, phase: "run" | "delete"): Promise<boolean> => {
        const r = op.resource;
        if (phase === "delete" && !r.inputs.delete) return true;
        const address = String(r.inputs.connection?.host ?? "");
        const host = hostByAddress(phase === "delete" ? [old, next] : runs, address);
        const box = host && cluster.boxes.get(host.name);
        if (!host || !box || isGone(box)) {
            fail(r.name, `cannot connect to ${address} (no such host)`);
            return false;
        }
        // Without an update command, an update runs create again (@pulumi/command).
        const words = commandWords(phase === "delete" ? r.inputs.delete : op.action === "update" ? (r.inputs.update ?? r.inputs.create) : r.inputs.create);
        const step = box.stepProcess(String(r.inputs.stdin ?? ""), stepEnv(cluster, box), words);
        const result = await runProcess(step.file, step.args, { env: step.env, input: step.input });
        if (result.status !== 0) {
            const message = (result.stderr.split("\n").find((l) => l.trim()) ?? `exit ${result.status}`).trim();
            fail(r.name, message);
            return false;
        }
        if (phase === "delete") cluster.outputs.delete(keyOf(r));
        else cluster.outputs.set(keyOf(r), { stdout: result.stdout, stderr: result.stderr });
        return true;
    };

    const noteEnded = (box: Sandbox, name: string, why: string) => {
        const n = lines(box.file("meetings")).length;
        if (n > 0) figures.endedOn.push(`${name}: ${n} (${why})`);
        endMeetings(box);
    };

    /** A command run where `pulumi up` runs (node is there): its HTTPS calls reach the cluster's hosts. */
    const runLocal = async (op: Operation, phase: "run" | "delete"): Promise<boolean> => {
        const r = op.resource;
        const command = phase === "delete" ? r.inputs.delete : op.action === "update" ? (r.inputs.update ?? r.inputs.create) : r.inputs.create;
        if (!command) return true;
        const interpreter: string[] = r.inputs.interpreter ?? ["/bin/sh", "-c"];
        if (interpreter[0] !== "node") throw new Error(`${r.name}: only node is modelled as a local interpreter, not ${interpreter[0]}`);
        // `node -e 0` (a guard's create) does nothing and prints nothing: not worth a node process.
        if (/^\s*\d*\s*$/.test(String(command))) {
            cluster.outputs.set(keyOf(r), { stdout: "", stderr: "" });
            return true;
        }
        // addPreviousOutputInEnv (default true): an update or delete sees the output of the last create or update.
        const previous = cluster.outputs.get(keyOf(r));
        const env: Record<string, string> =
            op.action !== "create" && op.action !== "replace" || phase === "delete"
                ? r.inputs.addPreviousOutputInEnv !== false && previous
                    ? { PULUMI_COMMAND_STDOUT: previous.stdout, PULUMI_COMMAND_STDERR: previous.stderr }
                    : {}
                : {};
        const result = await runOperator(cluster, [...interpreter.slice(1), String(command)], String(r.inputs.stdin ?? ""), env);
        if (result.status !== 0) {
            fail(r.name, (result.stderr.split("\n").find((l) => l.trim()) ?? `exit ${result.status}`).trim());
            return false;
        }
        if (phase === "delete") cluster.outputs.delete(keyOf(r));
        else cluster.outputs.set(keyOf(r), { stdout: result.stdout, stderr: result.stderr });
        return true;
    };

    const addHost = (host: HostInfo, generation: number) => {
        const box = freshHost(cluster, host, generation);
        cluster.boxes.set(host.name, box);
        writeRoutes(cluster);
    };

    const retireHost = (name: string, why: string, restarted: Set<string>) => {
        const box = cluster.boxes.get(name);
        if (!box) return;
        noteEnded(box, name, why);
        if (roleOf(box) === "bbb") {
            restarted.add(name);
            // Greenlight installed by bbb-install.sh -g keeps its database in /root/greenlight-v3: on the boot
            // volume, which goes with the VM, unless that is a link onto a data volume.
            const greenlight = box.file("root/root/greenlight-v3");
            if (fs.existsSync(greenlight) && !fs.lstatSync(greenlight).isSymbolicLink()) {
                figures.volumesLost += 1;
                figures.lost.push(`${name}'s boot volume with Greenlight's database (${why})`);
            }
        }
        box.write("gone", `${why}\n`);
        cluster.retired.push(box);
        cluster.boxes.delete(name);
        writeRoutes(cluster);
    };

    const volumeIdOf = (volume: Registered) => String(volume.outputs.id ?? "");

    /** A data volume attached to its VM: the disk appears; one kept from a replaced VM holds its data. */
    const attach = (r: Registered) => {
        const instance = next.resources.find((i) => i.type === INSTANCE && i.outputs.id !== undefined && realizedId(i) === r.inputs.instanceId);
        const volume = next.resources.find((v) => v.type === VOLUME && volumeIdOf(v) === r.inputs.volumeId);
        if (!instance || !volume) throw new Error(`cannot tell what ${r.name} attaches`);
        const host = hostOfInstance(runs, instance);
        const box = cluster.boxes.get(host.name)!;
        const volumeId = String(r.inputs.volumeId);
        const previous = [...cluster.retired, ...cluster.boxes.values()].filter((b) => b !== box && fs.existsSync(b.file("volume")) && fs.readFileSync(b.file("volume"), "utf8").trim() === volumeId).pop();
        attachVolume(box, volumeId, previous !== undefined && fs.existsSync(previous.file("disk/uuid")));
        // attachVolume's mount stubs know one disk; ours know NFS shares too.
        box.stub("mount", MOUNT);
        box.stub("mountpoint", MOUNTPOINT);
        box.write("volume", `${volumeId}\n`);
        box.write("disk/size", `${(volume.inputs.size as number) * 1073741824}\n`);
        if (previous) {
            // The volume's filesystem: its size and what the earlier VM wrote to its mount point.
            for (const f of ["fs-size"]) if (fs.existsSync(previous.file(`disk/${f}`))) fs.copyFileSync(previous.file(`disk/${f}`), box.file(`disk/${f}`));
            const uuid = fs.existsSync(previous.file("disk/uuid")) ? fs.readFileSync(previous.file("disk/uuid"), "utf8").trim() : "";
            const mountPoint = lines(previous.file("root/etc/fstab")).find((l) => l.startsWith(`UUID=${uuid} `))?.split(/\s+/)[1];
            if (mountPoint && fs.existsSync(previous.file(`root${mountPoint}`))) {
                fs.mkdirSync(box.file(`root${mountPoint}`), { recursive: true });
                execFileSync("cp", ["-a", `${previous.file(`root${mountPoint}`)}/.`, box.file(`root${mountPoint}`)]);
            }
        }
        cluster.volumeHolder.set(volumeId, host.name);
    };
    const realizedId = (i: Registered) => String(i.outputs.id ?? "");

    // Deletions left for the end: resources gone from the program, old halves of create-before-delete replacements.
    const doomed = new Map(plan.deletions.map((op) => [keyOf(op.resource), op]));
    const oldAncestors = ancestry(old);
    const oldOrder = new Map(old.resources.map((r, i) => [keyOf(r), i]));

    /**
     * Before a delete-before-replace (a VM on its port): Pulumi first deletes what depends on it and is replaced
     * with it (its steps, whose triggers carry its id; its guards), dependents first; they are not deleted again
     * at the end.
     */
    const deleteDependentsFirst = async (op: Operation): Promise<boolean> => {
        const key = keyOf(op.resource);
        const dependents = plan.operations.filter((o) => o.action === "replace" && keyOf(o.resource) !== key && ancestors.get(keyOf(o.resource))?.has(key));
        const first = dependents.map((o) => doomed.get(keyOf(o.resource))).filter((o): o is Operation => o !== undefined);
        first.sort((a, b) => oldOrder.get(keyOf(b.resource))! - oldOrder.get(keyOf(a.resource))!);
        for (const d of first) {
            doomed.delete(keyOf(d.resource));
            if (!(await perform(d, "delete"))) return false;
        }
        return true;
    };

    // Creations, replacements and updates: dependency order; what Pulumi starts at once without waiting for a
    // step (cloud resources) first, then a started chain of steps before a new one.
    const ancestors = ancestry(next);
    const pending = new Map(plan.operations.map((op) => [keyOf(op.resource), op]));
    const order = new Map(next.resources.map((r, i) => [keyOf(r), i]));
    const executed = new Set<string>();
    const executedSteps = new Set<string>();
    const applied = new Set<string>();
    const deleted = new Set<string>();
    let failed = false;
    while (pending.size > 0 && !failed) {
        const ready = [...pending.values()].filter((op) => ![...(ancestors.get(keyOf(op.resource)) ?? [])].some((a) => pending.has(a)));
        if (ready.length === 0) throw new Error(`dependency cycle among ${[...pending.keys()].join(", ")}`);
        const cloud = ready.filter((op) => op.resource.type !== COMMAND);
        const continues = (op: Operation) => [...(ancestors.get(keyOf(op.resource)) ?? [])].some((a) => executedSteps.has(a));
        const continuing = ready.filter(continues);
        // What a started chain waits for (Pulumi would run it beside the chain), before a new chain.
        const waitedFor = ready.filter((op) => [...pending.values()].some((p) => continues(p) && ancestors.get(keyOf(p.resource))?.has(keyOf(op.resource))));
        const candidates = [cloud, continuing, waitedFor, ready].find((c) => c.length > 0)!;
        const pick = candidates.sort((a, b) => order.get(keyOf(a.resource))! - order.get(keyOf(b.resource))!)[0];
        pending.delete(keyOf(pick.resource));
        executed.add(keyOf(pick.resource));
        if (pick.resource.type === COMMAND || pick.resource.type === LOCAL_COMMAND) executedSteps.add(keyOf(pick.resource));
        if (pick.action === "replace" && pick.resource.deleteBeforeReplace && !(await deleteDependentsFirst(pick))) {
            failed = true;
            break;
        }
        if (await perform(pick, "run")) applied.add(keyOf(pick.resource));
        else failed = true;
    }

    // Deletions, once everything else succeeded: what depends on a resource goes first. Pulumi deletes in
    // parallel what does not depend on each other: in waves here, and a failure stops the up after its wave
    // (the other deletions of the wave were under way).
    if (!failed) {
        while (doomed.size > 0 && !failed) {
            const wave = [...doomed.values()].filter((op) => ![...doomed.keys()].some((other) => other !== keyOf(op.resource) && oldAncestors.get(other)?.has(keyOf(op.resource))));
            if (wave.length === 0) throw new Error(`dependency cycle among deletions ${[...doomed.keys()].join(", ")}`);
            wave.sort((a, b) => oldOrder.get(keyOf(b.resource))! - oldOrder.get(keyOf(a.resource))!);
            for (const op of wave) {
                doomed.delete(keyOf(op.resource));
                if (await perform(op, "delete")) deleted.add(keyOf(op.resource));
                else failed = true;
            }
        }
    }

    // The state: what was applied. After a failure, the new version of what got through, the old version of the
    // rest, and what was to be deleted but was not (Pulumi tries again on the next up). Not modelled: the old half
    // of a create-before-delete replacement whose deletion did not run (Pulumi keeps it as "pending delete").
    if (!failed) {
        cluster.state = next;
        cluster.generations = plan.generations;
    } else {
        cluster.state = mergeState(old, next, applied, deleted);
        cluster.generations = new Map([...cluster.generations, ...[...applied].map((k) => [k, plan.generations.get(k) ?? 1] as [string, number])]);
    }

    figures.meetingsEnded = countEnded(cluster) - endedBefore;
    figures.outOfService = [...everOut].sort();
    figures.outAtEnd = [...inService]
        .filter((name) => {
            const box = cluster.boxes.get(name);
            return !box || !bbbRunning(box) || (pool && scaleliteState(cluster, fqdnOf(box)) !== "enabled");
        })
        .sort();
    return figures;
}

/** After a failed up: the new version of what was applied, the old version of everything else not deleted. */
function mergeState(old: Run, next: Run, applied: Set<string>, deleted: Set<string>): Run {
    const oldByKey = new Map(old.resources.map((r) => [keyOf(r), r]));
    const resources = next.resources
        .filter((r) => applied.has(keyOf(r)) || oldByKey.has(keyOf(r)))
        .map((r) => (applied.has(keyOf(r)) ? r : oldByKey.get(keyOf(r))!));
    const kept = new Set(resources.map(keyOf));
    const outputs = { ...next.outputs, hosts: [...hostsOf(next), ...hostsOf(old).filter((h) => !hostsOf(next).some((n) => n.name === h.name))] };
    return { ...next, outputs, resources: [...resources, ...old.resources.filter((r) => !kept.has(keyOf(r)) && !deleted.has(keyOf(r)))] };
}

function countEnded(cluster: Cluster): number {
    const ended = new Set<string>();
    for (const box of [...cluster.retired, ...cluster.boxes.values()]) for (const m of lines(box.file("ended-meetings"))) ended.add(m);
    return ended.size;
}

/** Deploys a program run on a new cluster; every step must succeed. `traceDir`: where its steps are traced (test/trace.ts). */
export async function deploy(run: Run, config?: Record<string, unknown>, traceDir?: string): Promise<Cluster> {
    const cluster = emptyCluster();
    cluster.traceDir = traceDir;
    const figures = await up(cluster, run, { config });
    if (figures.failedStep) {
        await removeCluster(cluster);
        throw new Error(`deploy failed at ${figures.failedStep}: ${figures.failure}`);
    }
    return cluster;
}

export interface ChangeOptions extends UpOptions {
    /** Applied (without meetings) before the measured change, each with the configuration it was evaluated with; each must succeed. */
    before?: { run: Run; config?: Record<string, unknown> }[];
    /** Meetings on every BBB server (default 2), and per host name where other than that. */
    meetings?: number;
    meetingsOn?: Record<string, number>;
}

/**
 * One change, measured: on a copy of `base` (left as it is), the `before` ups, then meetings on every BBB server,
 * then `pulumi up` to `next` (evaluated with `options.config`, with `options.replace`). Returns what it did to
 * meetings, data and service: { meetingsEnded, volumesLost, maxOutOfService, failedStep?, ... }.
 */
export async function runChange(base: Cluster, next: Run, options: ChangeOptions = {}): Promise<Figures> {
    const cluster = await copyCluster(base);
    try {
        for (const { run, config } of options.before ?? []) {
            const prelude = await up(cluster, run, { config });
            if (prelude.failedStep) throw new Error(`the change's first up failed at ${prelude.failedStep}: ${prelude.failure}`);
        }
        putMeetings(cluster, options.meetings ?? 2, options.meetingsOn ?? {});
        return await up(cluster, next, options);
    } finally {
        await removeCluster(cluster);
    }
}
