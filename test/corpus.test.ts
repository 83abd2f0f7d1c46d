// The acceptance corpus of issue 11: routine changes of a live stack, each applied by a simulated `pulumi up`
// (test/cluster.ts: the program's steps run for real, one sandbox per host) while meetings run on every BBB
// server. A routine change, without a force setting, must end no meeting, lose no data volume and take at most
// one BBB server out of service. With a force setting, it does what the README says.
//
// A change that breaks the rule today is a `test.failing` naming what breaks it: it passes while the program
// breaks the rule, and fails loudly (asking to become a plain `test`) once the program is fixed.
import * as fs from "fs";
import * as path from "path";
import { BASE_CONFIG, evaluate, ROTATED_KEYS, Run, TEST_PRIVATE_KEY } from "./harness";
import { Cluster, copyCluster, deploy, Figures, processesCpuSeconds, ProgramEvaluator, removeCluster, runChange, stopProcesses, up } from "./cluster";

type Config = Record<string, unknown>;
type BaseName = "pool" | "single" | "singleFeatures";

const HOOK_A = "https://hooks.example.org/bbb";
const HOOK_B = "https://lms.example.org/bbb/events";
const DIAL_IN = { number: "+49 30 1234567", sipProviderCidrs: ["192.0.2.0/24"], gateway: { host: "sip.example.net", username: "4930123", password: "Gw-Pa55word-7f3a9c" } };
const RECORDINGS = { enabled: true, retentionDays: 14, video: false };
/** A second image in the cloud: the image change and nothing else. */
const CLOUD = { images: ["Ubuntu 22.04", "Ubuntu 22.04 2026-11"] };

/**
 * Three BBB servers behind Scalelite, two consumers; strict privacy (the default); installed by the whole installer
 * (test/cluster.ts makes no golden volume).
 */
const POOL: Config = { ...BASE_CONFIG, scalelite: true, poolSize: 3, consumers: ["default", "mattermost"], bake: false };
/** The single topology with Greenlight on bbb-1 (bbb-install.sh -g). */
const SINGLE: Config = { ...BASE_CONFIG, greenlight: true };
/** Everything a server can have on: recordings, webhooks, dial-in. */
const FEATURES: Config = { privacy: "standard", recordings: RECORDINGS, webhooks: true, webhookUrls: [HOOK_A], dialIn: DIAL_IN };
const BASES: Record<BaseName, Config> = {
    pool: POOL,
    single: SINGLE,
    singleFeatures: { ...SINGLE, ...FEATURES },
};
const RELEASE_2 = { bbbRelease: 2, bbbVersion: "jammy-301" };
const FROM = { bbbVersion: "jammy-300" };

interface Case {
    name: string;
    base: BaseName;
    /** The changed configuration (the base's, changed). */
    config: Config;
    /** Applied first, while no meeting runs (a change that needs an earlier one). */
    before?: Config[];
    /** `pulumi up --replace` of these resources. */
    replace?: string[];
    /** Meetings on every server (default 2), and on some other than that. */
    meetings?: number;
    meetingsOn?: Record<string, number>;
    /** A control without meetings: the change must go through (and still keep the rule). */
    applies?: boolean;
    /** A force setting is on: the meetings it ends, as the README says. */
    forced?: { meetingsEnded: number; volumesLost?: number };
    /** Breaks the rule today: what ends the meetings, loses the data or takes more than one server out. */
    failing?: string;
}

const pool = (change: Config): Config => ({ ...POOL, ...change });
const single = (change: Config): Config => ({ ...SINGLE, ...change });
const singleFeatures = (change: Config): Config => ({ ...BASES.singleFeatures, ...change });
const DRAINED = pool({ drain: ["bbb-3"] });
const UPGRADE_0 = pool({ ...RELEASE_2, upgrade: { servers: 0, from: FROM } });
const WITH_GREENLIGHT = pool({ greenlight: true });

const CASES: Case[] = [
    // A pool: bbb-1..3 (2 meetings each) behind Scalelite, TURN.
    { name: "pool: privacy strict -> standard (bbb-web log level, nginx logs, TURN logging)", base: "pool", config: pool({ privacy: "standard" }) },
    { name: "pool: recordings on (privacy standard, recordings.enabled)", base: "pool", config: pool({ privacy: "standard", recordings: RECORDINGS }) },
    { name: "pool: webhooks on with one URL", base: "pool", config: pool({ webhooks: true, webhookUrls: [HOOK_A] }) },
    { name: "pool: dialIn on", base: "pool", config: pool({ dialIn: DIAL_IN }) },
    { name: "pool: secretGeneration 1 -> 2 (every server's API secret)", base: "pool", config: pool({ secretGeneration: 2 }) },
    { name: "pool: consumerSecretGenerations.mattermost 1 -> 2", base: "pool", config: pool({ consumerSecretGenerations: { mattermost: 2 } }) },
    { name: "pool: a consumer added (pod)", base: "pool", config: pool({ consumers: ["default", "mattermost", "pod"] }) },
    { name: "pool: bbbInstallerRef pinned to a commit", base: "pool", config: pool({ bbbInstallerRef: "0123456789abcdef0123456789abcdef01234567" }) },
    { name: "pool: apiHostname bbb -> meet", base: "pool", config: pool({ apiHostname: "meet" }) },
    { name: "pool: poolSize 3 -> 4 (scale up)", base: "pool", config: pool({ poolSize: 4 }) },
    { name: "pool: poolSize 3 -> 2 while bbb-3 hosts meetings (scale down)", base: "pool", config: pool({ poolSize: 2 }) },
    { name: "pool: poolSize 3 -> 2 after draining bbb-3, now empty (scale down)", base: "pool", before: [DRAINED], config: pool({ poolSize: 2 }), meetingsOn: { "bbb-3": 0 } },
    { name: "pool: drain bbb-3", base: "pool", config: DRAINED },
    { name: "pool: drain removed (bbb-3 back in service)", base: "pool", before: [DRAINED], config: pool({}) },
    { name: "pool: upgrade round 1 (bbbRelease 2, upgrade.servers 0 -> 1: bbb-1-r2 replaces bbb-1)", base: "pool", before: [UPGRADE_0], config: pool({ ...RELEASE_2, upgrade: { servers: 1, from: FROM } }) },
    {
        name: "pool: bbbRelease 1 -> 2 without upgrade (a new release of every server)",
        base: "pool",
        config: pool(RELEASE_2),
        // bbb-1-r2..bbb-3-r2 are created and registered, then Pulumi deletes bbb-1..3-registration in one wave, in
        // parallel: the removals take turns (the maintenance slot), so only the first is cordoned, refuses for its
        // 2 meetings and keeps its turn; the others give up without cordoning theirs.
    },
    { name: "pool: bbbVersion jammy-301 without a new release", base: "pool", config: pool({ bbbVersion: "jammy-301" }) },
    { name: "pool: flavors.bbb m1.xlarge -> m1.large", base: "pool", config: pool({ flavors: { bbb: "m1.large" } }) },
    { name: "pool: volumeSizes.bbb 80 -> 100 (boot volume)", base: "pool", config: pool({ volumeSizes: { bbb: 100 } }) },
    { name: "pool: dataVolumeSizes.scalelite 20 -> 30 (grow)", base: "pool", config: pool({ dataVolumeSizes: { scalelite: 30 } }) },
    { name: "pool: scaleliteVersion v1.8.5 -> v1.8.6", base: "pool", config: pool({ scaleliteVersion: "v1.8.6" }) },
    { name: "pool: greenlight on (a host of its own)", base: "pool", config: WITH_GREENLIGHT },
    { name: "pool: greenlightVersion v3.8.2.4 -> v3.8.3", base: "pool", before: [WITH_GREENLIGHT], config: pool({ greenlight: true, greenlightVersion: "v3.8.3" }) },
    { name: "pool: greenlight off (its protected data volume leaves the program)", base: "pool", before: [WITH_GREENLIGHT], config: pool({}) },
    { name: "pool: turnRelayPorts 32769-65535 -> 40000-65535", base: "pool", config: pool({ turnRelayPorts: "40000-65535" }) },
    { name: "pool: sshAllowedCidrs, one range added", base: "pool", config: pool({ sshAllowedCidrs: ["198.51.100.0/24", "2001:db8:100::/48", "192.0.2.128/25"] }) },
    { name: "pool: image Ubuntu 22.04 -> Ubuntu 22.04 2026-11", base: "pool", config: pool({ image: "Ubuntu 22.04 2026-11" }) },
    { name: "pool: SSH key pair rotated (sshPublicKey and sshPrivateKey)", base: "pool", config: pool(ROTATED_KEYS) },
    { name: "pool: protectData false", base: "pool", config: pool({ protectData: false }) },
    { name: "pool: pulumi up --replace bbb-2-registration", base: "pool", config: pool({}), replace: ["bbb-2-registration"] },
    { name: "pool: pulumi up --replace bbb-2-configure", base: "pool", config: pool({}), replace: ["bbb-2-configure"] },
    { name: "pool: pulumi up --replace bbb-2-vm", base: "pool", config: pool({}), replace: ["bbb-2-vm"] },

    // The single topology: bbb-1 (2 meetings) with Greenlight, TURN.
    { name: "single: grown to a pool (scalelite on, poolSize 2; the API name moves to Scalelite)", base: "single", config: single({ scalelite: true, poolSize: 2, bake: false }) },
    { name: "single: privacy strict -> standard", base: "single", config: single({ privacy: "standard" }) },
    { name: "single: recordings on (/var/bigbluebutton moves to a data volume)", base: "single", config: single({ privacy: "standard", recordings: RECORDINGS }) },
    { name: "single: secretGeneration 1 -> 2 (bbbSecret)", base: "single", config: single({ secretGeneration: 2 }) },
    { name: "single: bbbVersion jammy-300 -> jammy-301", base: "single", config: single({ bbbVersion: "jammy-301" }) },
    { name: "single: letsEncryptEmail", base: "single", config: single({ letsEncryptEmail: "noc@example.org" }) },
    { name: "single: forceReinstall toggled on alone", base: "single", config: single({ forceReinstall: true }) },
    { name: "single: sshPrivateKey rotated", base: "single", config: single({ sshPrivateKey: TEST_PRIVATE_KEY.replace("test-only", "test-only-rotated") }) },
    { name: "single: flavors.bbb m1.xlarge -> m1.large (resize)", base: "single", config: single({ flavors: { bbb: "m1.large" } }) },
    { name: "single: volumeSizes.bbb 80 -> 100 (boot volume)", base: "single", config: single({ volumeSizes: { bbb: 100 } }) },

    // The single topology with recordings (on their data volume), webhooks and dial-in.
    { name: "single: recordings.retentionDays 14 -> 30", base: "singleFeatures", config: singleFeatures({ recordings: { ...RECORDINGS, retentionDays: 30 } }) },
    { name: "single: recordings.video on", base: "singleFeatures", config: singleFeatures({ recordings: { ...RECORDINGS, video: true } }) },
    { name: "single: webhookUrls, one replaced by another", base: "singleFeatures", config: singleFeatures({ webhookUrls: [HOOK_B] }) },
    { name: "single: dialIn.number changed", base: "singleFeatures", config: singleFeatures({ dialIn: { ...DIAL_IN, number: "+49 30 7654321" } }) },
    { name: "single: dataVolumeSizes.bbb 100 -> 150 (grow)", base: "singleFeatures", config: singleFeatures({ dataVolumeSizes: { bbb: 150 } }) },
    { name: "single: recordings off (their protected data volume leaves the program)", base: "singleFeatures", config: singleFeatures({ recordings: { ...RECORDINGS, enabled: false } }) },

    // Controls: without meetings the change goes through, one server at a time.
    { name: "control: pool privacy strict -> standard with no meeting anywhere", base: "pool", config: pool({ privacy: "standard" }), meetings: 0, applies: true },
    { name: "single grown to a pool, no meeting on bbb-1: goes through up to Greenlight's protected volume (runbook)", base: "single", config: single({ scalelite: true, poolSize: 2, bake: false }), meetings: 0 },

    // With a force setting: what the README says happens.
    { name: "forced: poolSize 3 -> 2 with forceRemove while bbb-3 hosts meetings", base: "pool", config: pool({ poolSize: 2, forceRemove: true }), forced: { meetingsEnded: 2 } },
    { name: "forced: single bbbVersion jammy-301 with forceReinstall while bbb-1 hosts meetings", base: "single", config: single({ bbbVersion: "jammy-301", forceReinstall: true }), forced: { meetingsEnded: 2 } },
    { name: "forced: pulumi up --replace bbb-2-vm with forceRemove (its meetings end)", base: "pool", config: pool({ forceRemove: true }), replace: ["bbb-2-vm"], forced: { meetingsEnded: 2 } },
    { name: "forced: single flavors.bbb m1.xlarge -> m1.large with forceReinstall (the resize ends bbb-1's meetings)", base: "single", config: single({ flavors: { bbb: "m1.large" }, forceReinstall: true }), forced: { meetingsEnded: 2 } },
    {
        name: "forced: pool greenlight off after protectData false (Greenlight's data volume is deleted)",
        base: "pool",
        before: [WITH_GREENLIGHT, pool({ greenlight: true, protectData: false })],
        // Unprotected first (an up of its own: Pulumi refuses to delete what its state holds protected).
        config: pool({ protectData: false }),
        forced: { meetingsEnded: 0, volumesLost: 1 },
    },
];

// ---------------------------------------------------------------------------------------------------------------

const results = new Map<string, Figures>();
const errors = new Map<string, Error>();
/** Wall time and CPU seconds of the steps of each change (copy, meetings, pulumi up), for the table. */
const took = new Map<string, number>();
const cpuOf = new Map<string, number>();
const problems: string[] = [];

/** The program, evaluated in a worker thread beside the steps; each configuration once. */
let evaluator: ProgramEvaluator;
const evaluated = new Map<string, Promise<Run>>();
function evaluateOnce(config: Config): Promise<Run> {
    const key = JSON.stringify(config);
    let run = evaluated.get(key);
    if (!run) evaluated.set(key, (run = evaluator.evaluate(config, CLOUD)));
    return run;
}

/** At most `slots` changes' steps at once. */
function limiter(slots: number) {
    const waiting: (() => void)[] = [];
    return async <T>(task: () => Promise<T>): Promise<T> => {
        if (slots === 0) await new Promise<void>((resolve) => waiting.push(resolve));
        else slots--;
        try {
            return await task();
        } finally {
            const next = waiting.shift();
            if (next) next();
            else slots++;
        }
    };
}

/** CPU seconds of this process and of the steps (Linux). */
function cpu(): string {
    const f = fs.readFileSync("/proc/self/stat", "utf8").split(") ")[1].split(" ").map(Number);
    return `test process ${((f[11] + f[12]) / 100).toFixed(1)} s, steps ${processesCpuSeconds().toFixed(1)} s`;
}

const clusters: Cluster[] = [];
let deployedPool: Cluster | undefined;
let started = 0;

beforeAll(async () => {
    started = Date.now();
    evaluator = new ProgramEvaluator();
    await runCorpus();
}, 240_000);

/** The worker evaluates as the other tests do (test/harness.ts in jest; the worker transpiles the TypeScript itself). */
async function compareWithJest(): Promise<void> {
    // Stack traces off meanwhile: the SDK takes the whole stack for every resource, under jest through source maps.
    const { stackTraceLimit, prepareStackTrace } = Error;
    Error.stackTraceLimit = 0;
    Error.prepareStackTrace = () => "";
    try {
        const here = await evaluate(BASES.single, CLOUD);
        const there = await evaluateOnce(BASES.single);
        if (JSON.stringify(here.resources) !== JSON.stringify(there.resources)) problems.push("the worker evaluates the single base otherwise than jest does");
    } finally {
        Error.stackTraceLimit = stackTraceLimit;
        Error.prepareStackTrace = prepareStackTrace;
    }
}

async function runCorpus(): Promise<void> {
    // Beside the corpus: this thread mostly waits for the worker and the steps.
    const jestCheck = compareWithJest();
    const slot = limiter(2);
    const deployed = (config: Config) =>
        evaluateOnce(config).then((run) =>
            slot(async () => {
                const cluster = await deploy(run, config);
                clusters.push(cluster);
                return cluster;
            }),
        );
    /** A base changed first, while no meeting runs (features on, a server drained): shared by the cases that need it. */
    const derived = new Map<string, Promise<Cluster>>();
    const derive = (from: Promise<Cluster>, configs: Config[]): Promise<Cluster> => {
        const key = JSON.stringify(configs);
        let made = derived.get(key);
        if (!made) {
            made = Promise.all([from, ...configs.map(evaluateOnce)]).then(([base, ...runs]) =>
                slot(async () => {
                    const cluster = await copyCluster(base as Cluster);
                    clusters.push(cluster);
                    for (const [i, run] of (runs as Run[]).entries()) {
                        const figures = await up(cluster, run, { config: configs[i] });
                        if (figures.failedStep) throw new Error(`the change before failed at ${figures.failedStep}: ${figures.failure}`);
                    }
                    return cluster;
                }),
            );
            derived.set(key, made);
        }
        return made;
    };
    const poolBase = deployed(BASES.pool);
    const singleBase = deployed(BASES.single);
    poolBase.then((c) => (deployedPool = c)).catch(() => undefined);
    const bases: Record<BaseName, Promise<Cluster>> = {
        pool: poolBase,
        single: singleBase,
        singleFeatures: derive(singleBase, [BASES.singleFeatures]),
    };
    await Promise.all(
        CASES.map(async (c) => {
            try {
                const base = c.before ? derive(bases[c.base], c.before) : bases[c.base];
                const next = await evaluateOnce(c.config);
                const cluster = await base;
                results.set(
                    c.name,
                    await slot(async () => {
                        const t = Date.now();
                        const c0 = processesCpuSeconds();
                        const f = await runChange(cluster, next, { config: c.config, replace: c.replace, meetings: c.meetings, meetingsOn: c.meetingsOn });
                        took.set(c.name, Date.now() - t);
                        cpuOf.set(c.name, processesCpuSeconds() - c0);
                        return f;
                    }),
                );
            } catch (err) {
                errors.set(c.name, err as Error);
            }
        }),
    );
    // The worker's program evaluates as the first time after all those evaluations.
    const first = await evaluateOnce(BASES.pool);
    const again = await evaluator.evaluate(BASES.pool, CLOUD);
    for (const key of ["resources", "outputs", "secretOutputs", "error"] as const) {
        if (JSON.stringify(first[key]) !== JSON.stringify(again[key])) {
            const names = (run: Run) => run.resources.map((r) => r.name).join(",");
            const changed = first.resources.filter((r, i) => JSON.stringify(r) !== JSON.stringify(again.resources[i])).map((r) => r.name);
            problems.push(`the pool's base evaluates differently after the corpus: ${key} (${names(first) === names(again) ? `same order; ${changed.slice(0, 5).join(", ")}` : "order differs"})`);
        }
    }
    await jestCheck;
}

afterAll(async () => {
    const used = cpu();
    await Promise.all(clusters.map(removeCluster));
    stopProcesses();
    await evaluator.close();
    const row = (c: Case) => {
        const f = results.get(c.name);
        if (!f) return `| ${c.name} | error: ${errors.get(c.name)?.message} ||||||`;
        const why = f.failedStep ? `${f.failedStep}: ${f.failure?.replace(/\|/g, "/").slice(0, 160)}` : "";
        return `| ${c.name} | ${f.meetingsEnded}${f.endedOn.length ? ` (${f.endedOn.join("; ")})` : ""} | ${f.volumesLost}${f.lost.length ? ` (${f.lost.join("; ")})` : ""} | ${f.maxOutOfService}${f.outOfService.length ? ` (${f.outOfService.join(", ")})` : ""} | ${f.coturnRestarts} | ${why} | ${took.get(c.name)} ms ${cpuOf.get(c.name)?.toFixed(2)} cpu: ${f.ran.join(", ")} |`;
    };
    const table = ["| change | meetings ended | data lost | max out of service | coturn restarts | stopped by | ran |", "|---|---|---|---|---|---|---|", ...CASES.map(row)].join("\n");
    // CORPUS_TABLE=<file>: the figures of every change as a Markdown table (for the README, the issue, a benchmark).
    if (process.env.CORPUS_TABLE) fs.writeFileSync(process.env.CORPUS_TABLE, `${table}\n\n${((Date.now() - started) / 1000).toFixed(1)} s; cpu: ${used}\n`);
});

test("the corpus has at least 25 routine changes, and the program evaluates the same after all of them", () => {
    expect(CASES.filter((c) => !c.forced && !c.applies).length).toBeGreaterThanOrEqual(25);
    expect(problems).toEqual([]);
});

test("the deployed pool works: every server installed, answering its own secret, registered and enabled in Scalelite", () => {
    const pool = deployedPool!;
    const scalelite = pool.boxes.get("scalelite")!;
    for (const n of [1, 2, 3]) {
        const box = pool.boxes.get(`bbb-${n}`)!;
        const fqdn = `bbb-${n}.example.org`;
        const secret = fs.readFileSync(box.file("running-salt"), "utf8").trim();
        expect(box.calls("bbb-install.sh")).toHaveLength(1);
        expect(fs.readFileSync(scalelite.file(`scalelite/${fqdn}/state`), "utf8").trim()).toBe("enabled");
        expect(fs.readFileSync(scalelite.file(`scalelite/${fqdn}/secret`), "utf8").trim()).toBe(secret);
    }
    expect(fs.readFileSync(path.join(pool.dir, "dns"), "utf8")).toContain("bbb-3.example.org 203.0.113.13");
});

/** What a step or Pulumi says when it refuses a change for the sake of meetings or data (not a stub that broke). */
const REFUSAL = /meeting|protected|one server at a time|comes with new servers/;

describe.each(CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const figures = () => {
        const error = errors.get(c.name);
        if (error) throw error;
        return results.get(c.name)!;
    };
    if (c.applies) {
        test("goes through", () => expect(figures().failedStep).toBeUndefined());
    } else {
        test("stops, if at all, where a step or Pulumi refuses it for meetings or data", () => {
            const f = figures();
            if (f.failedStep) expect(f.failure).toMatch(REFUSAL);
        });
    }
    if (c.forced) {
        test(`ends the meetings the force setting says (${c.forced.meetingsEnded}), loses ${c.forced.volumesLost ?? 0} data volume(s), at most one server out`, () => {
            const f = figures();
            expect(f.meetingsEnded).toBe(c.forced!.meetingsEnded);
            expect(f.volumesLost).toBe(c.forced!.volumesLost ?? 0);
            expect(f.maxOutOfService).toBeLessThanOrEqual(1);
        });
        return;
    }
    const rule = "ends no meeting, loses no data volume, takes at most one server out of service";
    (c.failing ? test.failing : test)(c.failing ? `${rule} (fails today: ${c.failing})` : rule, () => {
        const f = figures();
        expect({ meetingsEnded: f.meetingsEnded, volumesLost: f.volumesLost, mediaDrops: f.mediaDrops }).toEqual({ meetingsEnded: 0, volumesLost: 0, mediaDrops: 0 });
        expect(f.maxOutOfService).toBeLessThanOrEqual(1);
    });
});
