// Runs a remote step for real, the way the program sends it (inputs + script on stdin to `bash -s`), in a
// temporary directory whose PATH holds only stub commands and the few real tools a step may use, so an
// unexpected command fails loudly instead of touching this machine.
import { spawnSync } from "child_process";
import { randomUUID } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { SCRIPTS_DIR, shellQuote, stepStdin } from "../components/remote";

/** Real tools a step may call; anything else must be stubbed. */
const REAL_TOOLS = [
    "awk", "bash", "cat", "chmod", "cp", "cut", "date", "diff", "dirname", "env", "find", "flock", "grep", "head", "ln", "ls", "mkdir", "mktemp", "mv",
    "paste", "readlink", "rm", "sed", "seq", "sha1sum", "sha256sum", "sleep", "sort", "stat", "tail", "timeout", "touch", "tr", "wc",
];

/**
 * With BBB_COVERAGE_DIR set (npm run coverage), a step's bash traces every command it runs, with its line in
 * the stdin, to a file of its own there, and notes where each script of scripts/remote/ starts in that stdin
 * (runs.jsonl), so that scripts/coverage.ts can map the lines back. Without it, the input as it is.
 */
function traced(input: string): string {
    const dir = process.env.BBB_COVERAGE_DIR;
    if (!dir) return input;
    // A name of its own: each test file has its own copy of this module (and counter) in the same worker.
    const trace = path.join(dir, `trace-${randomUUID()}`);
    // One line ahead of the input: the input's line n is line n + 1 for bash.
    const prologue = `exec 99>>${shellQuote(trace)}; BASH_XTRACEFD=99; PS4='+$LINENO:'; set -x\n`;
    const segments = fs
        .readdirSync(SCRIPTS_DIR)
        .filter((f) => f.endsWith(".sh"))
        .flatMap((f) => {
            const text = fs.readFileSync(path.join(SCRIPTS_DIR, f), "utf8");
            const at = input.indexOf(text);
            return at < 0 ? [] : [{ script: f, start: input.slice(0, at).split("\n").length + 1, lines: text.split("\n").length }];
        });
    fs.appendFileSync(path.join(dir, "runs.jsonl"), `${JSON.stringify({ trace, segments })}\n`);
    return `${prologue}${input}`;
}

/**
 * Not for the step but for the test: with this variable set to a directory (test/trace.ts), a step runs under
 * strace -f, which writes every program its processes start (execve: path and arguments, not the environment)
 * to a file of its own there.
 */
export const TRACE_EXECVE = "BBB_TRACE_EXECVE";

export const STRACE = "/usr/bin/strace";
/** Every process below (-f), stopped only at execve (seccomp-bpf: the steps run about as fast as without strace), whole strings. */
export const STRACE_ARGS = ["-f", "-qq", "--seccomp-bpf", "-e", "trace=execve", "-s", "1000000"];

/** How a step is started: `bash -s ARGS`, or that under strace (see TRACE_EXECVE), and its environment. */
function bashCommand(args: string[], env: Record<string, string>): { file: string; args: string[]; env: Record<string, string> } {
    const { [TRACE_EXECVE]: traceDir, ...rest } = env;
    const bash = [which("bash"), "-s", ...args];
    if (!traceDir) return { file: bash[0], args: bash.slice(1), env: rest };
    return { file: STRACE, args: [...STRACE_ARGS, "-o", path.join(traceDir, `execve-${randomUUID()}`), ...bash], env: rest };
}

function which(tool: string): string {
    for (const dir of ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]) {
        const candidate = path.join(dir, tool);
        if (fs.existsSync(candidate)) return candidate;
    }
    throw new Error(`real tool ${tool} is not installed`);
}

export interface StepResult {
    status: number | null;
    stdout: string;
    stderr: string;
}

export class Sandbox {
    readonly dir: string;
    readonly bin: string;
    readonly callLog: string;
    /** The steps' ROOT: where they write what a host keeps in /etc, /var, ... */
    readonly root: string;

    constructor() {
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-step-"));
        this.bin = path.join(this.dir, "bin");
        fs.mkdirSync(this.bin);
        this.callLog = path.join(this.dir, "calls.log");
        this.root = path.join(this.dir, "root");
        fs.mkdirSync(this.root);
        fs.writeFileSync(this.callLog, "");
        for (const tool of REAL_TOOLS) fs.symlinkSync(which(tool), path.join(this.bin, tool));
    }

    /** A stub command: records `name args...` in the call log, then runs `body` (bash, with ROOT set). */
    stub(name: string, body = "exit 0"): void {
        const file = path.join(this.bin, name);
        // A real tool's entry is a symlink: writing through it would overwrite the real program.
        fs.rmSync(file, { force: true });
        // SANDBOX comes from the stub's own place when sudo has reset the environment.
        const head = [
            `#!${which("bash")}`,
            `SANDBOX=\${SANDBOX:-$(cd "$(dirname "$0")/.." && pwd)}`,
            `ROOT="$SANDBOX/root"`,
            `printf '%s\\n' "${name} $*" >> "$SANDBOX/calls.log"`,
            "",
        ].join("\n");
        fs.writeFileSync(file, `${head}${body}\n`, { mode: 0o755 });
    }

    remove(name: string): void {
        fs.rmSync(path.join(this.bin, name), { force: true });
    }

    calls(name?: string): string[] {
        const lines = fs.readFileSync(this.callLog, "utf8").split("\n").filter(Boolean);
        return name ? lines.filter((l) => l === name || l.startsWith(`${name} `)) : lines;
    }

    /** Every file under the sandbox's ROOT, relative to it (a link to a directory is not followed: its files are listed where they are). */
    files(): string[] {
        const isDirectoryLink = (file: string) => fs.lstatSync(file).isSymbolicLink() && fs.statSync(file, { throwIfNoEntry: false })?.isDirectory() === true;
        const walk = (dir: string): string[] =>
            fs
                .readdirSync(dir, { withFileTypes: true })
                .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : isDirectoryLink(path.join(dir, e.name)) ? [] : [path.join(dir, e.name)]));
        return walk(this.root).map((f) => path.relative(this.root, f));
    }

    file(relative: string): string {
        return path.join(this.dir, relative);
    }

    write(relative: string, content: string): void {
        fs.mkdirSync(path.dirname(this.file(relative)), { recursive: true });
        fs.writeFileSync(this.file(relative), content);
    }

    /**
     * Runs a step of scripts/remote/ with the program's stdin framing, ROOT set to the sandbox's; `args`
     * are what the command line gives `bash -s` (e.g. a step's delete action).
     */
    run(step: string, inputs: Record<string, string>, env: Record<string, string> = {}, args: string[] = [], timeoutMs = 20000): StepResult {
        return this.exec(stepStdin(step, { ROOT: this.root, ...inputs }), env, args, timeoutMs);
    }

    /**
     * Runs a step's stdin exactly as the program built it (inputs, lib.sh, script: a command's `stdin`), with
     * ROOT set to the sandbox's ahead of it; `args` are the words of its command line after `bash -s`.
     */
    runStdin(stdin: string, env: Record<string, string> = {}, args: string[] = []): StepResult {
        const step = this.stepProcess(stdin, env, args);
        const result = spawnSync(step.file, step.args, { input: step.input, env: step.env, encoding: "utf8", timeout: 20000 });
        return { status: result.status, stdout: result.stdout, stderr: result.stderr };
    }

    /** The process runStdin starts (program, arguments, environment, stdin), for a caller that starts it itself. */
    stepProcess(stdin: string, env: Record<string, string> = {}, args: string[] = []): { file: string; args: string[]; env: Record<string, string>; input: string } {
        return {
            ...bashCommand(args, { PATH: this.bin, SANDBOX: this.dir, HOME: this.dir, LANG: "C.UTF-8", ...env }),
            input: traced(`ROOT=${shellQuote(this.root)}\n${stdin}`),
        };
    }

    /** A new sandbox in the directory `dir` (made here; it must not exist), laid out as the constructor does. */
    static makeAt(dir: string): Sandbox {
        fs.mkdirSync(dir);
        fs.mkdirSync(path.join(dir, "bin"));
        fs.mkdirSync(path.join(dir, "root"));
        fs.writeFileSync(path.join(dir, "calls.log"), "");
        for (const tool of REAL_TOOLS) fs.symlinkSync(which(tool), path.join(dir, "bin", tool));
        return Sandbox.at(dir);
    }

    /** A Sandbox over an existing sandbox directory (e.g. a copy of one made with `cp -a`). */
    static at(dir: string): Sandbox {
        const box = Object.create(Sandbox.prototype) as Sandbox;
        return Object.assign(box, { dir, bin: path.join(dir, "bin"), callLog: path.join(dir, "calls.log"), root: path.join(dir, "root") });
    }

    /** Runs bash code after lib.sh, framed as a step is. */
    runCode(code: string, env: Record<string, string> = {}): StepResult {
        return this.exec(stepStdin("lib-test", { ROOT: this.root }, `set -euo pipefail\n${code}`), env);
    }

    /** Runs bash with `input` on stdin; after `timeoutMs` bash is killed (SIGTERM), as a dropped SSH session ends a step. */
    private exec(input: string, env: Record<string, string>, args: string[] = [], timeoutMs = 20000): StepResult {
        const command = bashCommand(args, { PATH: this.bin, SANDBOX: this.dir, HOME: this.dir, LANG: "C.UTF-8", ...env });
        const result = spawnSync(command.file, command.args, {
            input: traced(input),
            env: command.env,
            encoding: "utf8",
            timeout: timeoutMs,
        });
        return { status: result.status, stdout: result.stdout, stderr: result.stderr };
    }

    cleanup(): void {
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}
