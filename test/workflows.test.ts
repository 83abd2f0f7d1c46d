// The GitHub Actions workflows: what triggers them, which jobs run in which order with which token
// permissions, that every stack gets its firewall diff, preview and deploy, and that no secret can
// reach a shell script or the log. The firewall diff and impact step and its PR comment script are run for real
// against a fake `npm` and a fake GitHub API.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";

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
const load = (name: string): Workflow => parse(fs.readFileSync(path.join(root, ".github", "workflows", name), "utf8"));
const pr = load("pull-request.yml");
const deploy = load("deploy.yml");
const workflows: [string, Workflow][] = [["pull-request.yml", pr], ["deploy.yml", deploy]];

/** Every stack of the project: one Pulumi.<stack>.yaml each in the repository root. */
const STACKS = fs.readdirSync(root).flatMap((f) => /^Pulumi\.([^.]+)\.yaml$/.exec(f)?.[1] ?? []).sort();

const needs = (job: Job) => (job.needs === undefined ? [] : ([] as string[]).concat(job.needs));
const envName = (job: Job) => (typeof job.environment === "string" ? job.environment : job.environment?.name);
const isPulumi = (step: Step) => step.uses?.startsWith("pulumi/actions@") ?? false;
const pulumiStep = (job: Job) => {
    const found = job.steps.filter(isPulumi);
    expect(found).toHaveLength(1);
    return found[0];
};
const allSteps = (wf: Workflow) => Object.entries(wf.jobs).flatMap(([id, job]) => job.steps.map((step) => ({ job: id, step })));
const runSteps = () => workflows.flatMap(([file, wf]) => allSteps(wf).filter(({ step }) => step.run !== undefined).map((s) => ({ file, ...s })));
const label = (file: string, job: string, step: Step) => `${file} ${job}: ${step.name ?? step.id ?? step.run?.split("\n")[0] ?? step.uses}`;

/** The environment variables of a step that hold a secret (step, job or workflow level). */
function secretVars(wf: Workflow, job: Job, step: Step): string[] {
    const env = { ...wf.env, ...job.env, ...step.env };
    return Object.entries(env).filter(([, v]) => /\bsecrets\./.test(String(v))).map(([k]) => k);
}

/** Lines of a shell script that would print one of those variables, or the whole environment. */
function leaks(script: string, vars: string[]): string[] {
    return script.split("\n").filter((line) =>
        /^\s*(printenv|env)\s*($|[|>;&])/.test(line) ||
        vars.some((v) => new RegExp(`\\b(echo|printf|cat|tee)\\b.*\\$\\{?${v}\\b|\\bprintenv\\s+${v}\\b`).test(line)));
}

/** Turns on shell tracing (which prints every expanded command, secrets included). */
const XTRACE = /(^|[\s;&|])set\s+(-[a-wyz]*x|-o\s+xtrace)|\bbash\s+(-\w*\s+)*-[a-wyz]*x\b/m;

describe("both workflows", () => {
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
                if (/\bsecrets\./.test(node)) {
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

    test("every run: script passes shellcheck", () => {
        for (const { file, job, step } of runSteps()) {
            const r = spawnSync("shellcheck", ["-s", "bash", "-"], { input: step.run, encoding: "utf8" });
            expect(r.error).toBeUndefined();
            expect([label(file, job, step), r.stdout]).toEqual([label(file, job, step), ""]);
        }
    });

    test.each(workflows)("%s: the tests run as root through .ci/run, on Node.js 20 with the npm cache", (_file, wf) => {
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

    test.each(workflows)("%s: every pulumi preview/up runs the CrossGuard pack in policy/ from the project root, after npm ci", (_file, wf) => {
        const found = Object.values(wf.jobs).filter((job) => job.steps.some(isPulumi));
        expect(found.length).toBeGreaterThan(0);
        for (const job of found) {
            const step = pulumiStep(job);
            expect(["preview", "up"]).toContain(step.with?.command);
            expect(step.with).toMatchObject({ policyPacks: "policy", "work-dir": "." });
            expect(job.steps.findIndex((s) => s.run === "npm ci")).toBeGreaterThan(-1);
            expect(job.steps.findIndex((s) => s.run === "npm ci")).toBeLessThan(job.steps.indexOf(step));
            // The Pulumi token, the OpenStack credentials and the Cloudflare token, from secrets.
            for (const name of ["PULUMI_ACCESS_TOKEN", "OS_AUTH_URL", "OS_REGION_NAME", "OS_APPLICATION_CREDENTIAL_ID", "OS_APPLICATION_CREDENTIAL_SECRET", "CLOUDFLARE_API_TOKEN"]) {
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
        const comment = job.steps.find((s) => s.uses?.startsWith("actions/github-script@"))!;
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

        test("comments only on pull requests from this repository (a fork's token is read-only)", () => {
            expect(comment.if).toContain("github.event_name == 'pull_request'");
            expect(comment.if).toContain("github.event.pull_request.head.repo.full_name == github.repository");
            expect(comment.env?.BODY_FILE).toBe(`\${{ steps.${diff.id}.outputs.body }}`);
            expect(job.steps.indexOf(comment)).toBeGreaterThan(job.steps.indexOf(diff));
        });

        test("fails the job, after commenting, when a diff could not be computed", () => {
            expect(fail.if).toBe(`steps.${diff.id}.outputs.failed != ''`);
            expect(fail.run).toMatch(/exit 1\s*$/);
            expect(job.steps.indexOf(fail)).toBeGreaterThan(job.steps.indexOf(comment));
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

        /** Runs the github-script step against a fake GitHub holding `existing` comments. */
        async function runComment(body: string, existing: { id: number; body: string; user: { type: string } }[]) {
            const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-comment-"));
            fs.writeFileSync(path.join(dir, "body.md"), body);
            const calls: [string, Record<string, unknown>][] = [];
            const issues = {
                listComments: () => undefined,
                updateComment: async (args: Record<string, unknown>) => { calls.push(["update", args]); return { data: { html_url: "u" } }; },
                createComment: async (args: Record<string, unknown>) => { calls.push(["create", args]); return { data: { html_url: "c" } }; },
            };
            const github = {
                rest: { issues },
                paginate: async (method: unknown, args: Record<string, unknown>) => {
                    expect(method).toBe(issues.listComments);
                    expect(args).toMatchObject({ owner: "o", repo: "r", issue_number: 7 });
                    return existing;
                },
            };
            const context = { repo: { owner: "o", repo: "r" }, issue: { number: 7 } };
            const core = { info: () => undefined };
            // github-script runs its script as the body of an async function given these names.
            const AsyncFunction = new Function("return (async () => undefined).constructor")();
            const script = new AsyncFunction("require", "github", "context", "core", "process", comment.with!.script as string);
            await script(require, github, context, core, { env: { BODY_FILE: path.join(dir, "body.md") } });
            return calls;
        }

        test("posts one comment, then edits that comment (found by its hidden marker) on later pushes", async () => {
            const { summary } = runDiff({ dev: 1, prod: 0 });
            expect(await runComment(summary, [])).toEqual([["create", { owner: "o", repo: "r", issue_number: 7, body: summary }]]);
            const existing = [
                { id: 1, body: "quoting <!-- bbb-firewall-diff --> by hand", user: { type: "User" } },
                { id: 2, body: "<!-- bbb-firewall-diff -->\nold", user: { type: "Bot" } },
            ];
            expect(await runComment(summary, existing)).toEqual([["update", { owner: "o", repo: "r", comment_id: 2, body: summary }]]);
        });

        test("keeps a huge diff under GitHub's comment limit, marker included", async () => {
            const huge = "<!-- bbb-firewall-diff -->\n" + "| x |\n".repeat(20000);
            const [[, args]] = await runComment(huge, []);
            expect((args.body as string).length).toBeLessThan(65536);
            expect(args.body).toMatch(/^<!-- bbb-firewall-diff -->/);
        });
    });

    describe("preview", () => {
        const gate = pr.jobs.credentials;
        const job = pr.jobs.preview;

        test("runs only when the credentials exist: the gate tests them in a step's env (no secrets in if:)", () => {
            expect(job.if).toBe("needs.credentials.outputs.configured == 'true'");
            const check = gate.steps.find((s) => s.id !== undefined && gate.outputs?.configured === `\${{ steps.${s.id}.outputs.configured }}`);
            expect(check?.env).toMatchObject({ PULUMI_ACCESS_TOKEN: "${{ secrets.PULUMI_ACCESS_TOKEN }}", OS_AUTH_URL: "${{ secrets.OS_AUTH_URL }}" });
            expect(gate.permissions).toEqual({});
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
