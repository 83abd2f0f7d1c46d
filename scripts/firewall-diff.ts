// npm run firewall:diff -- --stack <name> [--base <git-ref>]: the firewall of the working tree against the
// firewall at a git ref (default: the merge base with main), as a Markdown table of the rules each host
// gains or loses. Exit 0: unchanged; 1: changed; 2: error. No cloud, no Pulumi CLI, no credentials.
//
// Each side is the program as it stands in that tree (code and Pulumi.<stack>.yaml), transpiled into a
// temporary directory and evaluated under mocks in a fresh node process. A side without the stack file or
// without the program has no firewall: every rule of the other side is then added (or removed).
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as ts from "typescript";
import { evaluateProgram, FirewallRule, firewallOf, ProgramModules, projectRoot, ruleKey, stackConfig } from "./offline";
import { argument, table } from "./plan";

const ROOT = projectRoot();
type Firewall = Record<string, FirewallRule[]>;

/** The files of the program in a tree: TypeScript sources (transpiled), remote scripts, stack files. */
function copyProgram(files: Map<string, Buffer>, dir: string): void {
    for (const [name, content] of files) {
        if (!(name === "index.ts" || name.startsWith("components/") || name.startsWith("scripts/remote/") || /^Pulumi\.[^/]+\.yaml$/.test(name))) {
            continue;
        }
        const target = path.join(dir, name.replace(/\.ts$/, ".js"));
        fs.mkdirSync(path.dirname(target), { recursive: true });
        const text = name.endsWith(".ts")
            ? ts.transpileModule(content.toString("utf8"), {
                  compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
              }).outputText
            : content;
        fs.writeFileSync(target, text);
    }
    fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
}

function workingTree(): Map<string, Buffer> {
    const names = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard"], { cwd: ROOT, encoding: "utf8" })
        .split("\n")
        .filter((n) => n && fs.existsSync(path.join(ROOT, n)));
    return new Map(names.map((n) => [n, fs.readFileSync(path.join(ROOT, n))]));
}

function atRef(ref: string): Map<string, Buffer> {
    const names = execFileSync("git", ["ls-tree", "-r", "--name-only", ref], { cwd: ROOT, encoding: "utf8" }).split("\n").filter(Boolean);
    return new Map(names.map((n) => [n, execFileSync("git", ["show", `${ref}:${n}`], { cwd: ROOT, maxBuffer: 64 << 20 })]));
}

/** Evaluates the program copied into `dir` in a fresh node process; undefined when there is nothing to evaluate. */
function firewallIn(dir: string, stack: string): Firewall | undefined {
    if (!fs.existsSync(path.join(dir, "index.js")) || !stackConfig(dir, stack)) return undefined;
    const r = spawnSync(process.execPath, [__filename, "--evaluate", dir, "--stack", stack], { encoding: "utf8", maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`the program in ${dir} does not evaluate for stack ${stack}:\n${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as Firewall;
}

async function evaluateIn(dir: string, stack: string): Promise<void> {
    const modules: ProgramModules = {
        pulumi: require(path.join(dir, "node_modules", "@pulumi", "pulumi")),
        settings: require(path.join(dir, "node_modules", "@pulumi", "pulumi", "runtime", "settings")),
        program: require(path.join(dir, "index.js")),
    };
    const run = await evaluateProgram(modules, stackConfig(dir, stack)!, { anyName: true }, stack);
    if (run.error) throw run.error;
    process.stdout.write(JSON.stringify(firewallOf(run)));
}

interface HostChange {
    hosts: string[];
    added: FirewallRule[];
    removed: FirewallRule[];
}

/** Per host, the rules added and removed; hosts with the same changes are grouped. */
export function diffFirewalls(before: Firewall, after: Firewall): HostChange[] {
    const hosts = [...new Set([...Object.keys(before), ...Object.keys(after)])];
    const changes = new Map<string, HostChange>();
    for (const host of hosts) {
        const old = new Map((before[host] ?? []).map((r) => [ruleKey(r), r]));
        const now = new Map((after[host] ?? []).map((r) => [ruleKey(r), r]));
        const added = [...now.keys()].filter((k) => !old.has(k)).map((k) => now.get(k)!);
        const removed = [...old.keys()].filter((k) => !now.has(k)).map((k) => old.get(k)!);
        if (added.length === 0 && removed.length === 0) continue;
        const key = JSON.stringify([added.map(ruleKey), removed.map(ruleKey)]);
        const change = changes.get(key) ?? { hosts: [], added, removed };
        change.hosts.push(host);
        changes.set(key, change);
    }
    return [...changes.values()];
}

export function renderDiff(stack: string, base: string, changes: HostChange[]): string {
    const title = `### Firewall of stack \`${stack}\` against \`${base}\``;
    if (changes.length === 0) return `${title}\n\nNo change: every host lets in exactly what it let in before.`;
    const rows = changes.flatMap((c) =>
        [...c.removed.map((r) => ["removed", r] as const), ...c.added.map((r) => ["added", r] as const)].map(([what, r]) => [
            c.hosts.join(", "),
            what === "added" ? "**added**" : "~~removed~~",
            r.ports,
            r.protocol,
            r.source,
            r.family,
            r.why,
        ]),
    );
    return `${title}\n\n${table(["host", "change", "ports", "protocol", "source", "family", "why"], rows)}`;
}

function defaultBase(): string {
    for (const main of ["origin/main", "main"]) {
        const r = spawnSync("git", ["merge-base", "HEAD", main], { cwd: ROOT, encoding: "utf8" });
        if (r.status === 0) return r.stdout.trim();
    }
    throw new Error("no merge base with main or origin/main: give one with --base <git-ref>");
}

async function main(args: string[]): Promise<number> {
    const stack = argument(args, "--stack");
    if (args[0] === "--evaluate") {
        await evaluateIn(args[1], stack!);
        return 0;
    }
    if (!stack) {
        console.error("usage: npm run firewall:diff -- --stack <name> [--base <git-ref>]");
        return 2;
    }
    const base = argument(args, "--base") ?? defaultBase();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-firewall-"));
    try {
        const [beforeDir, afterDir] = [path.join(tmp, "base"), path.join(tmp, "work")];
        copyProgram(atRef(base), beforeDir);
        copyProgram(workingTree(), afterDir);
        const after = firewallIn(afterDir, stack);
        if (!after) throw new Error(`the working tree has no Pulumi.${stack}.yaml`);
        const changes = diffFirewalls(firewallIn(beforeDir, stack) ?? {}, after);
        console.log(renderDiff(stack, base, changes));
        return changes.length === 0 ? 0 : 1;
    } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
    }
}

if (require.main === module) {
    main(process.argv.slice(2)).then(
        (code) => process.exit(code),
        (err) => {
            console.error(`firewall:diff: ${err instanceof Error ? err.message : String(err)}`);
            process.exit(2);
        },
    );
}
