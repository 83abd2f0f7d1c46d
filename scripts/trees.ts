// The program as it stands in a tree (at a git ref, or in the working tree), evaluated offline. Shared by
// `npm run firewall:diff` and `npm run impact`, which compare two trees.
//
// Each tree's program files (index.ts, components/, scripts/remote/, monitoring/, streaming/, Pulumi.<stack>.yaml) are copied into a
// temporary directory, the TypeScript transpiled, and the program evaluated under mocks (scripts/offline.ts)
// in a fresh node process: two versions of the program never share a module registry. The two sides are
// evaluated in parallel. A side without the stack file, or without the program, has no run.
import { execFile, execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { evaluateProgram, Inventory, inventoryOf, ProgramModules, projectRoot, Run, stackConfig, stackSecretKeys } from "./offline";

const ROOT = projectRoot();

/** A tree's files by path, relative to the project root. */
export type Tree = Map<string, Buffer>;

/** The files `pulumi up` reads: the program, its remote scripts, the monitoring host's dashboards, the viewer page and the stack files. */
export function isProgramFile(name: string): boolean {
    return (
        name === "index.ts" ||
        name.startsWith("components/") ||
        name.startsWith("scripts/remote/") ||
        name.startsWith("monitoring/") ||
        name.startsWith("streaming/") ||
        /^Pulumi\.[^/]+\.yaml$/.test(name)
    );
}

/** The program files of the working tree (tracked or not, but not ignored; deleted ones left out). */
export function workingTree(root = ROOT): Tree {
    const names = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard"], { cwd: root, encoding: "utf8" })
        .split("\n")
        .filter((n) => n && isProgramFile(n) && fs.existsSync(path.join(root, n)));
    return new Map(names.map((n) => [n, fs.readFileSync(path.join(root, n))]));
}

/** The program files at a git ref. */
export function treeAt(ref: string, root = ROOT): Tree {
    const git = (...args: string[]) => execFileSync("git", args, { cwd: root, maxBuffer: 64 << 20, stdio: ["ignore", "pipe", "pipe"] });
    const names = git("ls-tree", "-r", "--name-only", ref).toString("utf8").split("\n").filter((n) => n && isProgramFile(n));
    return new Map(names.map((n) => [n, git("show", `${ref}:${n}`)]));
}

/** The merge base of HEAD with main (origin/main first): what a pull request is compared with. */
export function mergeBaseWithMain(root = ROOT): string {
    for (const main of ["origin/main", "main"]) {
        const r = spawnSync("git", ["merge-base", "HEAD", main], { cwd: root, encoding: "utf8" });
        if (r.status === 0) return r.stdout.trim();
    }
    throw new Error("no merge base with main or origin/main: give one with --base <git-ref>");
}

const transpiled = new Map<string, string>();

/** TypeScript to CommonJS, once per source text (the two trees share most files). */
function transpile(source: string): string {
    if (!transpiled.has(source)) {
        // Loaded here, not at the top: the evaluating child process never needs it.
        const ts: typeof import("typescript") = require("typescript");
        const options = { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true };
        transpiled.set(source, ts.transpileModule(source, { compilerOptions: options }).outputText);
    }
    return transpiled.get(source)!;
}

/** Writes a tree into `dir`, TypeScript transpiled to CommonJS, with the project's node_modules linked in. */
export function writeTree(tree: Tree, dir: string): void {
    for (const [name, content] of tree) {
        const target = path.join(dir, name.replace(/\.ts$/, ".js"));
        fs.mkdirSync(path.dirname(target), { recursive: true });
        fs.writeFileSync(target, name.endsWith(".ts") ? transpile(content.toString("utf8")) : content);
    }
    fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
}

/**
 * Evaluates the program written into `dir` for `stack` in a fresh node process, in a cloud that holds `inventory`
 * (what a deployed run left: its volumes and ports); undefined when there is nothing to evaluate.
 */
export function evaluateTree(dir: string, stack: string, inventory?: Inventory): Promise<Run | undefined> {
    if (!fs.existsSync(path.join(dir, "index.js")) || !stackConfig(dir, stack)) return Promise.resolve(undefined);
    const out = path.join(dir, "run.json");
    const given = path.join(dir, "inventory.json");
    fs.writeFileSync(given, JSON.stringify(inventory ?? null));
    return new Promise((resolve, reject) => {
        execFile(process.execPath, [__filename, "--evaluate", dir, stack, out, given], { maxBuffer: 64 << 20 }, (err, _stdout, stderr) => {
            if (err) reject(new Error(`the program in ${dir} does not evaluate for stack ${stack}:\n${String(stderr).trim() || err.message}`));
            else resolve(JSON.parse(fs.readFileSync(out, "utf8")) as Run);
        });
    });
}

/**
 * The program at git ref `base` and in the working tree, each evaluated for `stack`; `before` is undefined when
 * the ref has no such stack (or no program). The stack is taken as deployed and updated by `base` (evaluated again
 * with the cloud its first run left, inventoryOf: a bake's builder gone), and the working tree as the next update,
 * with the cloud holding what `base` made (so that servers keep the golden volumes they booted from).
 */
export async function evaluateBoth(base: string, stack: string): Promise<{ before?: Run; after: Run }> {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-trees-"));
    try {
        const [beforeDir, afterDir] = [path.join(tmp, "base"), path.join(tmp, "work")];
        writeTree(treeAt(base), beforeDir);
        writeTree(workingTree(), afterDir);
        const deployed = await evaluateTree(beforeDir, stack);
        const before = deployed && (await evaluateTree(beforeDir, stack, inventoryOf(deployed)));
        const after = await evaluateTree(afterDir, stack, before && inventoryOf(before));
        if (!after) throw new Error(`the working tree has no Pulumi.${stack}.yaml`);
        return { before, after };
    } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
    }
}

/** In the child process: evaluates the program in `dir` and writes the run (as JSON) to `out`. */
async function evaluateIn(dir: string, stack: string, out: string, given: string): Promise<void> {
    const modules: ProgramModules = {
        pulumi: require(path.join(dir, "node_modules", "@pulumi", "pulumi")),
        settings: require(path.join(dir, "node_modules", "@pulumi", "pulumi", "runtime", "settings")),
        program: require(path.join(dir, "index.js")),
    };
    const inventory = JSON.parse(fs.readFileSync(given, "utf8")) ?? undefined;
    const run = await evaluateProgram(modules, stackConfig(dir, stack)!, { anyName: true, inventory }, stack, stackSecretKeys(dir, stack));
    if (run.error) throw run.error;
    fs.writeFileSync(out, JSON.stringify(run));
}

if (require.main === module && process.argv[2] === "--evaluate") {
    const [dir, stack, out, given] = process.argv.slice(3);
    evaluateIn(dir, stack, out, given).then(
        () => process.exit(0),
        (err) => {
            console.error(err instanceof Error ? err.message : String(err));
            process.exit(1);
        },
    );
}
