// No secret on a command line: every program the steps start on the hosts, during whole deploys and a rotation
// of the API secrets, is traced (strace -f, test/trace.ts), and none may carry a secret in its arguments, which
// any local user of a host can read while it runs (ps, /proc/<pid>/cmdline). The steps run as test/cluster.ts
// runs them for a `pulumi up`: the program's own stdin on every host, against the stubs of test/stubs.ts, which
// start what the real tools start as far as they model them (docs/upstream.md, "Secrets on command lines", says
// what the real ones do beyond that).
import { BASE_CONFIG, Run, stepInputs } from "./harness";
import { Sandbox } from "./sandbox";
import { Cluster, deploy, ProgramEvaluator, removeCluster, stopProcesses, up } from "./cluster";
import { Exec, secretsOnCommandLines, straceWorks, Trace } from "./trace";

type Config = Record<string, unknown>;
const DIAL_IN = { number: "+49 30 1234567", sipProviderCidrs: ["192.0.2.0/24"], gateway: { host: "sip.example.net", username: "4930123", password: "Gw-Pa55word-7f3a9c" } };
const FEATURES: Config = { privacy: "standard", webhooks: true, webhookUrls: ["https://hooks.example.org/bbb"], dialIn: DIAL_IN };
const RECORDINGS = { enabled: true, retentionDays: 14, video: false };

/** The single topology with Greenlight on bbb-1 (bbb-install.sh -g), webhooks and dial-in. */
const SINGLE: Config = { ...BASE_CONFIG, greenlight: true, ...FEATURES };
/**
 * A server behind Scalelite, Greenlight on a host of its own, two consumers, recordings, webhooks and dial-in;
 * installed by the whole installer (test/cluster.ts makes no golden volume; test/bbb-bake.test.ts traces the bake and the finalise).
 */
const POOL: Config = { ...BASE_CONFIG, scalelite: true, poolSize: 1, greenlight: true, consumers: ["default", "mattermost"], ...FEATURES, recordings: RECORDINGS, bake: false };

/** The ups traced: per topology a deploy, then the API secrets rotated (and a consumer's, in the pool). */
const CHAINS: [string, Config][][] = [
    [
        ["single: deploy", SINGLE],
        ["single: API secret rotated", { ...SINGLE, secretGeneration: 2 }],
    ],
    [
        ["pool: deploy", POOL],
        ["pool: API and consumer secrets rotated", { ...POOL, secretGeneration: 2, consumerSecretGenerations: { mattermost: 2 } }],
    ],
];

/** Inputs of the steps that hold a secret, by name. */
const SECRET_INPUT = /SECRET|PASSWORD|KEY_BASE/;

/** Every secret the steps of a run are given (a list of them split into its members), 8 characters or more. */
function secretsOf(run: Run): string[] {
    const found = new Set<string>();
    for (const r of run.resources) {
        if (r.type !== "command:remote:Command") continue;
        for (const [name, value] of Object.entries(stepInputs(String(r.inputs.stdin ?? "")))) {
            if (!SECRET_INPUT.test(name)) continue;
            for (const secret of [value, ...value.split(":")]) if (secret.length >= 8) found.add(secret);
        }
    }
    return [...found].sort();
}

/** Each secret's input names, for the test that the kinds of secret are all there. */
function secretInputs(run: Run): string[] {
    const names = new Set<string>();
    for (const r of run.resources) {
        if (r.type !== "command:remote:Command") continue;
        for (const name of Object.keys(stepInputs(String(r.inputs.stdin ?? "")))) if (SECRET_INPUT.test(name)) names.add(name);
    }
    return [...names].sort();
}

interface Traced {
    secrets: string[];
    inputs: string[];
    execs: Exec[];
    ran: string[];
}

const traced = new Map<string, Traced>();
const clusters: Cluster[] = [];
let evaluator: ProgramEvaluator;

beforeAll(async () => {
    const works = straceWorks();
    if (works !== true) throw new Error(works);
    evaluator = new ProgramEvaluator();
    // The topologies side by side, each up of one after the other, each traced on its own.
    await Promise.all(
        CHAINS.map(async (chain) => {
            const runs = await Promise.all(chain.map(([, config]) => evaluator.evaluate(config)));
            let cluster: Cluster | undefined;
            // The secrets of every run so far: during a rotation the one before is still live until the restart.
            const seen = new Set<string>();
            for (const [i, [name, config]] of chain.entries()) {
                const trace = new Trace();
                try {
                    let ran: string[] = [];
                    if (!cluster) {
                        clusters.push((cluster = await deploy(runs[i], config, trace.dir)));
                    } else {
                        cluster.traceDir = trace.dir;
                        const figures = await up(cluster, runs[i], { config });
                        if (figures.failedStep) throw new Error(`${name}: failed at ${figures.failedStep}: ${figures.failure}`);
                        ran = figures.ran;
                    }
                    for (const secret of secretsOf(cluster.state)) seen.add(secret);
                    traced.set(name, { secrets: [...seen], inputs: secretInputs(cluster.state), execs: trace.execs(), ran });
                } finally {
                    trace.remove();
                }
            }
        }),
    );
}, 120_000);

afterAll(async () => {
    await Promise.all(clusters.map(removeCluster));
    stopProcesses();
    await evaluator?.close();
});

test("a secret is found as written and as a step could turn it (case, base64, hex, URL-encoding)", () => {
    const secret = "Abc123secretXYZ789";
    const exec = (arg: string): Exec => ({ program: "/bin/echo", argv: ["echo", arg] });
    for (const form of [secret, secret.toLowerCase(), secret.toUpperCase(), Buffer.from(secret).toString("base64"), Buffer.from(secret).toString("hex"), `x=${encodeURIComponent(secret)}`]) {
        expect([form, secretsOnCommandLines([exec(form)], [secret]).length]).toEqual([form, 1]);
    }
    expect(secretsOnCommandLines([exec("nothing here")], [secret])).toEqual([]);
});

test("the trace finds a secret on any command line below a step: a stub's own children too, and odd characters read back", () => {
    const box = new Sandbox();
    const trace = new Trace();
    try {
        box.stub("tool", 'printf %s "$1" | sha1sum >/dev/null; env grep -qF -- "$1" /dev/null || :');
        const r = box.runCode('tool "$S"; printf %s "$S" | cat >/dev/null', { ...trace.env, S: 'se"cr\\et\tä' });
        expect(r.status).toBe(0);
        const execs = trace.execs();
        expect(secretsOnCommandLines(execs, ['se"cr\\et\tä']).sort()).toEqual([
            `${box.bin}/env: env grep -qF -- [secret:0] /dev/null`,
            `${box.bin}/grep: grep -qF -- [secret:0] /dev/null`,
            `${box.bin}/tool: tool [secret:0]`,
        ]);
        expect(execs.map((e) => e.argv[0])).toEqual(expect.arrayContaining(["tool", "sha1sum", "env", "grep", "cat"]));
    } finally {
        trace.remove();
        box.cleanup();
    }
});

describe.each(CHAINS.flat().map(([name]) => name))("%s", (name) => {
    const run = () => traced.get(name)!;

    test("the trace is whole: the steps' processes and everything they start", () => {
        const commands = run().execs.map((e) => e.argv.join(" "));
        expect(commands.filter((c) => / -s$|^\S*bash -s /.test(c)).length).toBeGreaterThan(0);
        if (name.endsWith("deploy")) {
            expect(commands).toContainEqual(expect.stringMatching(/^systemd-run --unit=bbb-deploy-install /));
            expect(commands).toContainEqual(expect.stringMatching(/^certbot certonly /));
        }
        // The server registered with Scalelite, and its new secret: the tasks that take the secret.
        if (name === "pool: deploy") expect(commands).toContainEqual(expect.stringMatching(/^docker exec -i scalelite-api bin\/rake servers:sync\[-,keep\] /));
        if (name.startsWith("pool") && name.includes("rotated")) {
            expect(commands).toContainEqual(expect.stringMatching(/^docker exec -i scalelite-api bin\/rake servers:cordon\[bbb-1\.example\.org\] servers:sync\[-,keep\] /));
        }
        if (name.includes("rotated")) expect(run().ran).toEqual(expect.arrayContaining(["update bbb-1-configure"]));
    });

    test("the secrets looked for are every kind the steps are given", () => {
        // Both topologies back Greenlight's database up (bbb-1's, or its own host's).
        const single = ["APP_CRED_SECRET", "GATEWAY_PASSWORD", "RESTIC_PASSWORD", "SECRET", "TURN_SECRET"];
        const pool = [...single, "BBB_SECRET", "DB_PASSWORD", "LOADBALANCER_SECRET", "LOADBALANCER_SECRETS", "SECRET_KEY_BASE"];
        expect(run().inputs).toEqual((name.startsWith("pool") ? pool : single).sort());
        expect(run().secrets.length).toBeGreaterThanOrEqual(name.startsWith("pool") ? 13 : 5);
    });

    test("no program started on a host has a secret on its command line", () => {
        expect(secretsOnCommandLines(run().execs, run().secrets)).toEqual([]);
    });
});
