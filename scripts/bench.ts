// npm run bench: for poolSize 1, 4, 16 and 64 (pool topology: TURN, Scalelite, Greenlight, N BBB servers)
//  (a) the remote steps on the longest dependency chain and a simulated `pulumi up` wall time, from the
//      dependency graph the program registers and the duration table below, next to the same pool built
//      one host after another (by hand) and five hosts at a time (Ansible's default forks);
//  (b) the time to load and evaluate the program under mocks, each size in a fresh node process;
//  (c) a rolling upgrade of the pool (upgrade.servers raised one server, or four, per pulumi up): what one
//      round runs (the resources it adds or changes), and the whole upgrade, meetings' ends not counted;
//  (d) a pool-wide change applied one server at a time in one pulumi up (secret rotation, new properties:
//      each server waits for the maintenance slot, see scalelite-node.sh), and a new flavor, which reaches a
//      pool's servers by release rounds, one server per round;
//  (e) servers built from a baked golden volume (setting `bake`, components/bake.ts) next to the whole
//      installer: the bake and the finalise themselves, a server added to a running pool, a scale-up, rolling
//      upgrades. The default settings bake: (a) to (d) take them (a pool's first deploy bakes before its servers
//      are built); (e) shows both.
// The durations are estimates of what each operation takes on a typical OpenStack cloud; the comparison
// between sizes and rollout styles, not the absolute minutes, is what the benchmark shows.
import { helpRequested } from "./cli";
import { execFileSync } from "child_process";
import { resourceChanges } from "./impact";
import { diff, evaluateProgram, Inventory, inventoryOf, loadProgram, projectRoot, Registered, stackConfig, stepInputs } from "./offline";

const SIZES = [1, 4, 16, 64];
/** Servers replaced per round of a rolling upgrade. */
const ROUND_STEPS = [1, 4];
/** A replaced server's end, after the round's creations: removed from Scalelite (rake, 8 s), its VM deleted (30 s). */
const REMOVAL_SECONDS = 38;

/** Seconds per operation. */
export const DURATIONS: Record<string, number> = {
    "openstack:networking/secGroup:SecGroup": 2,
    "openstack:networking/secGroupRule:SecGroupRule": 1,
    "openstack:compute/keypair:Keypair": 1,
    "openstack:networking/port:Port": 5,
    "openstack:networking/floatingIp:FloatingIp": 4,
    "openstack:networking/floatingIpAssociate:FloatingIpAssociate": 4,
    "openstack:compute/instance:Instance": 90, // boot volume from image, boot until ACTIVE
    // A VM booting a volume of its own (a baked server, a builder): Nova makes no volume from the image, so it is
    // scheduling, attaching and booting to ACTIVE, as above without the image copy (half, as an estimate).
    "instance from a volume": 45,
    "openstack:blockstorage/volume:Volume": 10,
    // A volume cloned from another (a baked server's boot volume, a golden volume): Ceph clones copy-on-write, in
    // seconds whatever the size (cinder/volume/drivers/rbd.py create_cloned_volume); thick LVM copies every block,
    // minutes for 30 GB (docs/bake.md 1d). Ceph assumed.
    "volume clone": 15,
    // A volume written from a Glance image (a builder's disk): Cinder downloads the image and writes it, about a
    // minute for Ubuntu's 600 MB cloud image expanded (seconds on Ceph when Glance is on Ceph too).
    "volume from an image": 60,
    "openstack:compute/volumeAttach:VolumeAttach": 10,
    "cloudflare:index/dnsRecord:DnsRecord": 2,
    // Remote steps, by script:
    "wait-ready": 120, // cloud-init finishing, the record visible through OpenDNS (TTL 60)
    "wait-ready (builder)": 60, // cloud-init finishing; a builder has no DNS name to wait for
    "turn-coturn": 150, // packages, certificate, coturn
    "bbb-installer": 1500, // bbb-install.sh: packages, certificates, Greenlight when -g
    "bbb-storage": 30, // data volume for recordings, /var/bigbluebutton linked
    "bbb-configure": 90, // secret, properties, restart, API answering
    // On a baked server, right after its finalise (which wrote the secret and properties before its restart):
    // nothing to change, no restart; the signed API check only.
    "bbb-configure (baked)": 15,
    // The bake (scripts/remote/bbb-bake.sh): bbb-install.sh with the same packages as "bbb-installer" (1500 s),
    // BigBlueButton stopped and the host identity scrubbed, sync (60 s), then the guest powers itself off and
    // Nova reports SHUTOFF (its libvirt lifecycle event, delayed a few seconds to tell a reboot apart: 30 s).
    "bbb-bake": 1590,
    // The finalise (bbb-installer on a host booted from a golden volume): bbb-install.sh again over installed
    // packages (docs/bake.md 3.2): three apt-get updates of ~8 repositories (30 s), a dist-upgrade with nothing
    // newer and need_pkg's dpkg checks (10 s), Let's Encrypt HTTP-01 (25 s), one bbb-conf --setip with its
    // stop and start of every BigBlueButton service (60 s: the finalise writes playback_host first, so
    // install_ssl's own --setip is skipped), bbb-conf --check and the rest (25 s).
    "bbb-installer (finalise)": 150,
    "bbb-seed": 2, // a root-only file with the secret and properties for the finalise
    "bbb-data-policy": 30, // privacy: nginx reload, log levels, retention
    "bbb-dialin": 20, // FreeSWITCH gateway and dialplan, reload
    "bbb-webhooks": 60, // package, override, restart
    "bbb-recordings": 60, // NFS mount, post-publish script
    "scalelite-setup": 420, // docker, images, certificate, database migration
    "greenlight-setup": 360,
    "scalelite-node": 8, // two rake invocations (list; add + enable), one Rails boot each
    "backup-setup": 45, // restic from Ubuntu's archive, files and timer, the repository opened (or made: key derivation, 3 s here)
};

/** Steps that share a host's CPUs: registrations all run on the Scalelite host (m1.large: 4 vCPUs). */
const HOST_CAPACITY: Record<string, number> = { "scalelite-node": 4 };

interface Operation {
    name: string;
    host: string;
    step?: string;
    seconds: number;
    deps: string[];
}

/** The DURATIONS entry of a resource: its step's script, or what it is, telling apart how a server is built. */
function durationKey(r: Registered, bakedHosts: Set<string>): string {
    if (r.type === "command:remote:Command") {
        const inputs = stepInputs(r.inputs.stdin);
        if (inputs.STEP === "bbb-installer" && inputs.BAKE_KEY) return "bbb-installer (finalise)";
        if (inputs.STEP === "bbb-configure" && bakedHosts.has(hostOf(r.name))) return "bbb-configure (baked)";
        if (inputs.STEP === "wait-ready" && inputs.FQDN === "") return "wait-ready (builder)";
        return inputs.STEP;
    }
    if (r.type === "openstack:blockstorage/volume:Volume" && r.inputs.sourceVolId !== undefined) return "volume clone";
    if (r.type === "openstack:blockstorage/volume:Volume" && r.inputs.imageId !== undefined) return "volume from an image";
    const blockDevices = (r.inputs.blockDevices ?? []) as { sourceType?: string }[];
    if (r.type === "openstack:compute/instance:Instance" && blockDevices[0]?.sourceType === "volume") return "instance from a volume";
    return r.type;
}

/**
 * The operations of an update, each with its duration; `runs`: what the update creates or changes (the others
 * take no time), everything when absent (a first deploy).
 */
function operations(resources: Registered[], runs?: Set<string>): Operation[] {
    const custom = resources.filter((r) => r.custom);
    const byUrn = new Map(custom.map((r) => [r.urn, r.name]));
    // Servers finalised in this update: their configure step right after finds the seeded secret and properties.
    const finalised = custom.filter((r) => r.type === "command:remote:Command" && stepInputs(r.inputs.stdin).BAKE_KEY && (!runs || runs.has(r.name)));
    const bakedHosts = new Set(finalised.map((r) => hostOf(r.name)));
    return custom.map((r) => {
        const step = r.type === "command:remote:Command" ? stepInputs(r.inputs.stdin).STEP : undefined;
        const seconds = runs && !runs.has(r.name) ? 0 : (DURATIONS[durationKey(r, bakedHosts)] ?? 0);
        const deps = [...new Set([...r.dependsOn, ...Object.values(r.propertyDependencies).flat()])]
            .map((urn) => byUrn.get(urn))
            .filter((n): n is string => n !== undefined);
        return { name: r.name, host: hostOf(r.name), step, seconds, deps };
    });
}

/** The host an operation belongs to, from the naming scheme (bbb-3-vm, turn-coturn, ...); "" when shared. */
function hostOf(name: string): string {
    const m = /^(turn|scalelite|greenlight|bbb-\d+(?:-r\d+)?)(-|$)/.exec(name);
    return m && !/^(turn-secret|scalelite-secret-key-base|greenlight-secret-key-base)/.test(name) ? m[1] : "";
}

/** List scheduling: every operation starts once its dependencies are done and, for shared hosts, a slot is free. */
function simulate(ops: Operation[]): { seconds: number; chainSteps: number } {
    const finish = new Map<string, number>();
    const chain = new Map<string, number>();
    const pending = new Map(ops.map((o) => [o.name, o]));
    const busy: Record<string, number[]> = {};
    while (pending.size > 0) {
        const ready = [...pending.values()].filter((o) => o.deps.every((d) => finish.has(d)));
        if (ready.length === 0) throw new Error("dependency cycle");
        for (const op of ready.sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }))) {
            let start = Math.max(0, ...op.deps.map((d) => finish.get(d)!));
            const capacity = op.step ? HOST_CAPACITY[op.step] : undefined;
            if (capacity) {
                const slots = (busy[op.step!] ??= Array<number>(capacity).fill(0));
                const slot = slots.indexOf(Math.min(...slots));
                start = Math.max(start, slots[slot]);
                slots[slot] = start + op.seconds;
            }
            finish.set(op.name, start + op.seconds);
            chain.set(op.name, (op.step ? 1 : 0) + Math.max(0, ...op.deps.map((d) => chain.get(d)!)));
            pending.delete(op.name);
        }
    }
    return { seconds: Math.max(...finish.values()), chainSteps: Math.max(...chain.values()) };
}

/** By hand or with Ansible: shared resources first, then hosts `parallel` at a time, each host start to end. */
function rollout(ops: Operation[], parallel: number): number {
    const shared = ops.filter((o) => o.host === "").reduce((sum, o) => sum + o.seconds, 0);
    const perHost = new Map<string, number>();
    for (const op of ops.filter((o) => o.host !== "")) perHost.set(op.host, (perHost.get(op.host) ?? 0) + op.seconds);
    const hosts = [...perHost.values()];
    let total = shared;
    for (let i = 0; i < hosts.length; i += parallel) total += Math.max(...hosts.slice(i, i + parallel));
    return total;
}

/**
 * The prod stack's configuration with the pool size set; with `upgrade`, a rolling upgrade to release 2. Without
 * monitoring and streaming (the defaults; prod's example turns them on): the figures are the pool's own, comparable
 * from one issue to the next (their steps follow each host's own and hold no server from service).
 */
function config(poolSize: number, upgradedServers?: number, bake = true): Record<string, unknown> {
    const base = { ...stackConfig(projectRoot(), "prod"), poolSize, scalelite: true, greenlight: true, bake, monitoring: false, streaming: { enabled: false } };
    if (upgradedServers === undefined) return base;
    return { ...base, bbbRelease: 2, bbbVersion: "jammy-301", upgrade: { servers: upgradedServers, from: { bbbVersion: "jammy-300" } } };
}

interface Evaluation {
    loadMs: number;
    evalMs: number;
    resources: Registered[];
}

/** Evaluates one configuration in this (fresh) process, in a cloud that holds `inventory`, and prints the timings and what was registered. */
async function worker(configuration: Record<string, unknown>, inventory?: Inventory): Promise<void> {
    const modules = loadProgram();
    // Since this process started: the SDK comes with this script's own imports (scripts/offline.ts's config).
    const loaded = performance.now();
    const t1 = process.hrtime.bigint();
    const run = await evaluateProgram(modules, configuration, { ipv6: true, inventory });
    const t2 = process.hrtime.bigint();
    if (run.error) throw run.error;
    const ms = (a: bigint, b: bigint) => Number(b - a) / 1e6;
    process.stdout.write(JSON.stringify({ loadMs: loaded, evalMs: ms(t1, t2), resources: run.resources }));
}

const evaluations = new Map<string, Evaluation>();

/**
 * `configuration` evaluated in a fresh process: a first deploy, or an update of a stack whose run left `inventory`
 * in the cloud. The same evaluation again is the one before (the program is deterministic under mocks).
 */
function evaluated(configuration: Record<string, unknown>, inventory?: Inventory): Evaluation {
    const args = [__filename, "--worker", JSON.stringify(configuration), ...(inventory ? [JSON.stringify(inventory)] : [])];
    const key = args.slice(2).join("\n");
    if (!evaluations.has(key)) evaluations.set(key, JSON.parse(execFileSync(process.execPath, args, { encoding: "utf8", maxBuffer: 256 << 20 })));
    return evaluations.get(key)!;
}

/** A stack that runs `configuration`, deployed and updated once more since (a bake's builder is gone). */
function settled(configuration: Record<string, unknown>, inventory?: Inventory): Evaluation {
    return evaluated(configuration, inventoryOf(evaluated(configuration, inventory)));
}

/** The simulated time of the update from `before` to `after`: only what it adds or changes takes time. */
function update(before: Evaluation, after: Evaluation): number {
    const { added, changed } = diff(before, after);
    const runs = new Set([...added, ...changed]);
    return simulate(operations(after.resources, runs)).seconds;
}

/**
 * A rolling upgrade of a settled pool to release 2: first its release declared with no server upgraded (with
 * bake, that update bakes the release's golden volume; without, it does nothing), then one round, which
 * replaces `step` servers and removes those they replace. Returns the bake and the round.
 */
function rolling(poolSize: number, step: number, bake: boolean): { bake: number; round: number } {
    const running = settled(config(poolSize, undefined, bake));
    const declared = evaluated(config(poolSize, 0, bake), inventoryOf(running));
    const baked = evaluated(config(poolSize, 0, bake), inventoryOf(declared));
    const first = evaluated(config(poolSize, step, bake), inventoryOf(baked));
    return { bake: update(running, declared), round: update(baked, first) + REMOVAL_SECONDS };
}

/** A running pool of `poolSize` grown by `more` servers: the time until the last new server is registered. */
function scaleUp(poolSize: number, more: number, bake: boolean): number {
    const running = settled(config(poolSize, undefined, bake));
    return update(running, evaluated(config(poolSize + more, undefined, bake), inventoryOf(running)));
}

/** A whole rolling upgrade of `poolSize` servers, `step` per round, with the default settings: the bake, then the rounds. */
function upgradeTime(poolSize: number, step: number): { round: number; whole: number } {
    const { bake, round } = rolling(poolSize, step, true);
    return { round, whole: bake + round * Math.ceil(poolSize / step) };
}

/**
 * A change of `changes` to the prod stack, applied to a pool of `poolSize`: only what it creates, replaces or
 * runs again takes time, and the servers take their turns (the maintenance slot: a server's maintenance step
 * goes once the server before it is registered again).
 */
function oneAtATime(poolSize: number, changes: Record<string, unknown>): number {
    const before = settled(config(poolSize));
    const after = evaluated({ ...config(poolSize), ...changes }, inventoryOf(before));
    const runs = new Set([...resourceChanges(before, after).values()].filter((c) => c.action !== "same" && c.action !== "delete").map((c) => c.name));
    const ops = operations(after.resources, runs);
    const turns = ops.filter((op) => /^bbb-\d+-maintenance$/.test(op.name) && runs.has(op.name));
    turns.forEach((op, i) => {
        if (i > 0) op.deps.push(turns[i - 1].name.replace(/-maintenance$/, "-registration"));
    });
    return simulate(ops).seconds;
}

const minutes = (s: number) => `${(s / 60).toFixed(1)} min`;
const hours = (s: number) => (s >= 3600 ? `${(s / 3600).toFixed(1)} h` : minutes(s));

function print(table: string[][]): void {
    const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
    // Figures to the right; a first column of words to the left.
    const words = table.slice(1).some((row) => /[a-z]{3}/.test(row[0]));
    for (const row of table) console.log(row.map((cell, i) => (i === 0 && words ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  "));
}

export const USAGE = `usage: npm run bench
Prints, for pools of 1, 4, 16 and 64 servers, a simulated pulumi up's wall time next to building by hand and
five hosts at a time, the program's evaluation time, rolling upgrades and pool-wide changes (a few minutes).`;

function main(): void {
    const rows = SIZES.map((n) => {
        const { loadMs, evalMs, resources } = evaluated(config(n));
        const ops = operations(resources);
        const sim = simulate(ops);
        return { n, resources: ops.length, loadMs, evalMs, ...sim, sequential: rollout(ops, 1), fiveAtATime: rollout(ops, 5) };
    });
    print([
        ["poolSize", "resources", "steps on longest chain", "pulumi up (simulated)", "one host after another", "five at a time", "load program", "evaluate"],
        ...rows.map((r) => [
            String(r.n), String(r.resources), String(r.chainSteps), minutes(r.seconds), hours(r.sequential), hours(r.fiveAtATime),
            `${(r.loadMs / 1000).toFixed(2)} s`, `${(r.evalMs / 1000).toFixed(2)} s`,
        ]),
    ]);
    const first = rows[0];
    const last = rows[rows.length - 1];
    const growth = (last.seconds / first.seconds - 1) * 100;
    console.log(`\nsimulated deploy, N=${last.n} against N=${first.n}: +${growth.toFixed(1)}% (goal: within 10%) ${growth <= 10 ? "met" : "NOT MET"}`);
    const evalSeconds = (last.loadMs + last.evalMs) / 1000;
    console.log(`evaluation of N=${last.n} under mocks: ${evalSeconds.toFixed(2)} s with loading (goal: under 5 s) ${evalSeconds < 5 ? "met" : "NOT MET"}`);

    console.log("\nrolling upgrade (simulated, baked: the release's bake first, then the rounds; waiting for meetings to end is not counted):");
    const upgrades = SIZES.filter((n) => n >= Math.max(...ROUND_STEPS));
    print([
        ["poolSize", ...ROUND_STEPS.flatMap((step) => [`round of ${step}`, `${step} per round, whole pool`])],
        ...upgrades.map((n) => [
            String(n),
            ...ROUND_STEPS.flatMap((step) => {
                const { round, whole } = upgradeTime(n, step);
                return [minutes(round), hours(whole)];
            }),
        ]),
    ]);

    console.log("\npool-wide change, one server out of service at a time (simulated; waiting for meetings to end is not counted):");
    const pools = SIZES.filter((n) => n >= 4);
    print([
        ["poolSize", "secret rotation", "new properties (privacy)", "new flavor (a release round per server)"],
        ...pools.map((n) => [
            String(n),
            hours(oneAtATime(n, { secretGeneration: 2 })),
            hours(oneAtATime(n, { privacy: "standard" })),
            hours(upgradeTime(n, 1).whole),
        ]),
    ]);
    baked();
}

/** (e): the bake and the finalise, and how servers come with and without them, side by side. */
function baked(): void {
    console.log("\nservers from a baked golden volume (bake: true, the default) and from the whole installer (bake: false), simulated:");
    const UPGRADED = 64;
    const upgrades = ROUND_STEPS.map((step) => ({ step, with: rolling(UPGRADED, step, true), without: rolling(UPGRADED, step, false) }));
    const rounds = (r: { round: number }, step: number) => r.round * Math.ceil(UPGRADED / step);
    const rows: [string, number | undefined, number][] = [
        ["bake (once per bbbVersion, installer and image: builder VM, install, scrub, power-off, golden clone)", undefined, upgrades[0].with.bake],
        ["finalise (bbb-installer on a server booted from the golden volume)", DURATIONS["bbb-installer"], DURATIONS["bbb-installer (finalise)"]],
        ["a new server in a running pool of 16, ready (registered in Scalelite)", scaleUp(16, 1, false), scaleUp(16, 1, true)],
        ["a scale-up of +16 servers (16 to 32)", scaleUp(16, 16, false), scaleUp(16, 16, true)],
        ...upgrades.flatMap(({ step, with: w, without }): [string, number, number][] => [
            [`a rolling upgrade of ${UPGRADED} servers, ${step} per round: its ${Math.ceil(UPGRADED / step)} rounds`, rounds(without, step), rounds(w, step)],
            [`  the same with the release's bake before them (upgrade.servers 0: no server out of service)`, without.bake + rounds(without, step), w.bake + rounds(w, step)],
        ]),
    ];
    print([["", "without baking", "with baking"], ...rows.map(([what, without, withBake]) => [what, without === undefined ? "-" : hours(without), hours(withBake)])]);
    const ready = rows[2][2];
    const four = upgrades[1].with;
    console.log(`\na new pool server with baking: ${minutes(ready)} (goal: at most 8 min) ${ready <= 480 ? "met" : "NOT MET"}`);
    console.log(
        `a rolling upgrade of ${UPGRADED} servers at 4 per round with baking: its rounds ${hours(rounds(four, 4))} (goal: at most 2 h) ${rounds(four, 4) <= 7200 ? "met" : "NOT MET"};` +
            ` with its bake before them ${hours(four.bake + rounds(four, 4))} ${four.bake + rounds(four, 4) <= 7200 ? "met" : "NOT MET"}`,
    );
}

/** The command line: a worker's (one evaluation, in a process of its own), --help, or the benchmark. */
export function entry(args: string[]): void {
    if (args[0] === "--worker") {
        worker(JSON.parse(args[1]), args[2] ? JSON.parse(args[2]) : undefined).catch((err) => {
            console.error(err);
            process.exit(1);
        });
    } else if (!helpRequested(args, USAGE)) {
        main();
    }
}

if (require.main === module) entry(process.argv.slice(2));
