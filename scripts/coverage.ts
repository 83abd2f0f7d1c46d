// npm run coverage [-- script.sh ...]: line coverage of scripts/remote/*.sh by the tests that run them in the sandbox, and the
// `fail` sites no test reaches. The step tests run with BBB_COVERAGE_DIR set: their bash traces every command
// with its line (test/sandbox.ts), which is mapped back to the script it came from. Goal (issue 12): every
// script at least 90 % of its lines, every `fail` site reached or listed with its reason: a site no test can
// reach says why in a comment on the line just above it (`# coverage: not reached in tests: <reason>`), and is
// listed apart, with that reason, instead of counting as not reached.
import { helpRequested } from "./cli";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const ROOT = [path.join(__dirname, ".."), path.join(__dirname, "..", "..")].find((dir) => fs.existsSync(path.join(dir, "scripts", "remote")))!;
const SCRIPTS = path.join(ROOT, "scripts", "remote");
const GOAL = 90;

/** A command of a script: its first and last line (continued lines, `\` at the end, are one command). */
interface Command {
    first: number;
    last: number;
    text: string;
}

/**
 * The lines of a script that run something, as commands: not blank lines, comments, here-document bodies, or
 * lines that only close or open a block (fi, done, esac, ;;, {, }, then, do, else, a case pattern, a function's
 * head), which bash does not trace.
 */
export function commandsOf(script: string): Command[] {
    const lines = script.split("\n");
    const commands: Command[] = [];
    let heredoc: string | undefined;
    for (let i = 0; i < lines.length; i++) {
        const line = lines[i];
        if (heredoc !== undefined) {
            if (line.trim() === heredoc) heredoc = undefined;
            continue;
        }
        const bare = line.trim();
        if (bare === "" || bare.startsWith("#")) continue;
        let last = i;
        while (lines[last].endsWith("\\") && last + 1 < lines.length) last++;
        // An array written over several lines, name=( ... ), is one command.
        if (/^[A-Za-z_][A-Za-z0-9_]*=\($/.test(bare)) while (last + 1 < lines.length && !lines[last].trim().endsWith(")")) last++;
        const text = lines.slice(i, last + 1).join("\n");
        // (A here-string, <<<"word", is not one.)
        const marker = /(?<!<)<<-?\s*['"]?([A-Za-z_][A-Za-z0-9_]*)['"]?/.exec(text.replace(/<<<\S*/g, ""));
        if (marker) heredoc = marker[1];
        // (A loop's `done` with a redirection feeds the loop: bash traces the loop's commands, not the `done`.)
        const opener = /^(fi|done|esac|;;|\{|\}|then|do|else|\)|[^()#]*\)|[A-Za-z_][A-Za-z0-9_]*\(\) \{)$/.test(bare) || /^done\s*[<|]/.test(bare);
        if (!opener) commands.push({ first: i + 1, last: last + 1, text });
        i = last;
    }
    return commands;
}

interface Segment {
    script: string;
    start: number;
    lines: number;
}

/** Lines of each script that ran, and lines where `fail` itself ran, from the traces of one coverage run. */
export function tracedLines(dir: string): { ran: Map<string, Set<number>>; failed: Map<string, Set<number>> } {
    const ran = new Map<string, Set<number>>();
    const failed = new Map<string, Set<number>>();
    const runs = fs.existsSync(path.join(dir, "runs.jsonl")) ? fs.readFileSync(path.join(dir, "runs.jsonl"), "utf8").split("\n").filter(Boolean) : [];
    for (const line of runs) {
        const { trace, segments } = JSON.parse(line) as { trace: string; segments: Segment[] };
        if (!fs.existsSync(trace)) continue;
        for (const entry of fs.readFileSync(trace, "utf8").split("\n")) {
            const m = /^\++(\d+):(.*)$/.exec(entry);
            if (!m) continue;
            const at = Number(m[1]);
            const segment = segments.find((s) => at >= s.start && at < s.start + s.lines);
            if (!segment) continue;
            const local = at - segment.start + 1;
            if (!ran.has(segment.script)) ran.set(segment.script, new Set());
            ran.get(segment.script)!.add(local);
            if (/^fail( |$)/.test(m[2])) {
                if (!failed.has(segment.script)) failed.set(segment.script, new Set());
                failed.get(segment.script)!.add(local);
            }
        }
    }
    return { ran, failed };
}

export interface ScriptCoverage {
    script: string;
    commands: number;
    covered: number;
    /** Commands no test ran: first line and text. */
    unrun: { line: number; text: string }[];
    /** `fail` sites no test reached: line and text. */
    unreachedFails: { line: number; text: string }[];
    /**
     * `fail` sites no test reached that say why in a comment on the line just above them
     * (`# coverage: not reached in tests: <reason>`): line, text and reason. They do not count against the goal.
     */
    markedFails: { line: number; text: string; reason: string }[];
    /** `fail` sites marked as not reached that a test reached all the same (the mark is stale): line and text. */
    staleMarks: { line: number; text: string }[];
}

/** The comment that marks the `fail` site below it as one no test can reach, and says why. */
export const UNREACHED_MARK = /^\s*# coverage: not reached in tests: (\S.*)$/;

/** The coverage of one script (its name and text), from the lines that ran and the lines where `fail` ran. */
export function scriptCoverage(script: string, text: string, ran: Set<number> | undefined, failed: Set<number> | undefined): ScriptCoverage {
    const lines = text.split("\n");
    const commands = commandsOf(text);
    const hit = (c: Command, seen: Set<number> | undefined) => [...Array(c.last - c.first + 1).keys()].some((k) => seen?.has(c.first + k));
    const head = (c: Command) => c.text.split("\n")[0].trim();
    const covered = commands.filter((c) => hit(c, ran)).length;
    const unrun = commands.filter((c) => !hit(c, ran)).map((c) => ({ line: c.first, text: head(c) }));
    const sites = commands.filter((c) => /(^\s*|[|&;{)]\s*)fail(\s|$)/.test(c.text));
    // The mark is on the line just above the site: above its command's first line, or, where that command
    // goes on one before it (`[ -d x ] ||` a line, `fail ...` the next), above the first of them.
    const reason = (c: Command) => {
        let first = c.first;
        for (;;) {
            const before = commands.find((b) => b.last === first - 1);
            if (!before || !/(\|\||&&)$/.test(lines[before.last - 1].trim())) break;
            first = before.first;
        }
        return first >= 2 ? UNREACHED_MARK.exec(lines[first - 2])?.[1] : undefined;
    };
    const unreachedFails = sites.filter((c) => !hit(c, failed) && reason(c) === undefined).map((c) => ({ line: c.first, text: head(c) }));
    const markedFails = sites.filter((c) => !hit(c, failed) && reason(c) !== undefined).map((c) => ({ line: c.first, text: head(c), reason: reason(c)! }));
    const staleMarks = sites.filter((c) => hit(c, failed) && reason(c) !== undefined).map((c) => ({ line: c.first, text: head(c) }));
    return { script, commands: commands.length, covered, unrun, unreachedFails, markedFails, staleMarks };
}

export function coverage(dir: string): ScriptCoverage[] {
    const { ran, failed } = tracedLines(dir);
    return fs
        .readdirSync(SCRIPTS)
        .filter((f) => f.endsWith(".sh"))
        .sort()
        .map((script) => scriptCoverage(script, fs.readFileSync(path.join(SCRIPTS, script), "utf8"), ran.get(script), failed.get(script)));
}

/** With scripts named, the commands of each that no test ran. */
export function renderCoverage(rows: ScriptCoverage[], detail: string[] = []): string {
    const pct = (r: ScriptCoverage) => (r.commands === 0 ? 100 : Math.floor((100 * r.covered) / r.commands));
    const out = ["script                 lines run   coverage   fail sites not reached   (+ with a reason)"];
    for (const r of rows) {
        const fails = `${r.unreachedFails.length}`.padEnd(24);
        out.push(`${r.script.padEnd(22)} ${`${r.covered}/${r.commands}`.padStart(9)}   ${`${pct(r)} %`.padStart(8)}   ${fails}${r.markedFails.length || ""}`.trimEnd());
    }
    const below = rows.filter((r) => pct(r) < GOAL).map((r) => r.script);
    const unreached = rows.reduce((n, r) => n + r.unreachedFails.length, 0);
    out.push("", `every script at least ${GOAL} %: ${below.length ? `NOT MET (${below.join(", ")})` : "met"}`);
    const marked = rows.reduce((n, r) => n + r.markedFails.length, 0);
    const withReason = marked ? ` (${marked} listed with the reason no test reaches them, below)` : "";
    out.push(`every fail site reached: ${unreached ? `NOT MET (${unreached} not reached, below)` : "met"}${withReason}`);
    for (const r of rows) for (const f of r.unreachedFails) out.push(`  ${r.script}:${f.line}  ${f.text}`);
    if (marked) {
        out.push("", `fail sites no test can reach, with the reason (${marked}):`);
        for (const r of rows) for (const f of r.markedFails) out.push(`  ${r.script}:${f.line}  ${f.text}`, `      reason: ${f.reason}`);
    }
    const stale = rows.flatMap((r) => r.staleMarks.map((f) => `  ${r.script}:${f.line}  ${f.text}`));
    if (stale.length) out.push("", "fail sites marked as not reached that a test reaches (remove their mark):", ...stale);
    for (const r of rows.filter((row) => detail.includes(row.script))) {
        out.push("", `commands of ${r.script} no test ran:`, ...r.unrun.map((u) => `  ${r.script}:${u.line}  ${u.text}`));
    }
    return out.join("\n");
}

/** The test files that run scripts in a sandbox (not the simulated deploys, whose traces would be whole pools). */
function stepTestFiles(): string[] {
    const dir = path.join(ROOT, "test");
    return fs
        .readdirSync(dir)
        .filter((f) => f.endsWith(".test.ts") && f !== "corpus.test.ts")
        .filter((f) => /new Sandbox\(/.test(fs.readFileSync(path.join(dir, f), "utf8")))
        .map((f) => path.join("test", f));
}

export const USAGE = `usage: npm run coverage [-- <script.sh> ...]
Runs the tests that run scripts/remote/ with bash tracing, then prints per script the share of its commands
that ran and the fail sites no test reaches; the scripts named also get the commands no test ran.`;

/** `npm run coverage [-- script.sh ...]`: the named scripts also get the commands no test ran. */
export function main(args: string[]): number {
    if (helpRequested(args, USAGE)) return 0;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-coverage-"));
    try {
        const jest = spawnSync("npx", ["jest", ...stepTestFiles()], { cwd: ROOT, env: { ...process.env, BBB_COVERAGE_DIR: dir }, stdio: ["ignore", "ignore", "inherit"] });
        if (jest.status !== 0) console.error("some tests failed: the coverage below counts what ran");
        console.log(renderCoverage(coverage(dir), args));
        return 0;
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

if (require.main === module) process.exit(main(process.argv.slice(2)));
