// Every program the steps start, with its arguments: what any local user of a host can read while it runs
// (ps, /proc/<pid>/cmdline). A step given TRACE_EXECVE (test/sandbox.ts) runs under strace -f, which records each
// execve of the step's bash and of everything below it, the stubs and whatever they start too.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { STRACE, STRACE_ARGS, TRACE_EXECVE } from "./sandbox";

export interface Exec {
    /** The program as execve got it. */
    program: string;
    /** Its argv. */
    argv: string[];
}

/** True when strace can trace here as the steps are traced (ptrace and seccomp allowed); else why not. */
export function straceWorks(): true | string {
    if (!fs.existsSync(STRACE)) return "strace is not installed (apt-get install strace)";
    const r = spawnSync(STRACE, [...STRACE_ARGS, "-o", "/dev/null", "/bin/true"], { encoding: "utf8" });
    return r.status === 0 ? true : `strace cannot trace here: ${r.stderr.trim()}`;
}

/** A C string literal as strace prints it, from `at` (its opening quote): its value and where it ends. */
function cString(text: string, at: number): { value: string; end: number } {
    const bytes: number[] = [];
    const escapes: Record<string, number> = { n: 10, t: 9, v: 11, f: 12, r: 13, '"': 34, "\\": 92 };
    let i = at + 1;
    while (i < text.length && text[i] !== '"') {
        if (text[i] === "\\") {
            const octal = /^[0-7]{1,3}/.exec(text.slice(i + 1, i + 4));
            if (octal) {
                bytes.push(parseInt(octal[0], 8));
                i += 1 + octal[0].length;
            } else if (text[i + 1] === "x") {
                bytes.push(parseInt(text.slice(i + 2, i + 4), 16));
                i += 4;
            } else {
                bytes.push(escapes[text[i + 1]] ?? text.charCodeAt(i + 1));
                i += 2;
            }
        } else {
            bytes.push(...Buffer.from(text[i], "utf8"));
            i += 1;
        }
    }
    return { value: Buffer.from(bytes).toString("utf8"), end: i + 1 };
}

/** The execve calls of a strace output file: `PID execve("path", ["arg0", ...], ...)`. */
export function parseTrace(text: string): Exec[] {
    const execs: Exec[] = [];
    for (const line of text.split("\n")) {
        const at = line.indexOf('execve("');
        if (at < 0) continue;
        const program = cString(line, at + "execve(".length);
        const argv: string[] = [];
        let i = line.indexOf("[", program.end);
        if (i < 0) throw new Error(`cannot read strace's line: ${line.slice(0, 200)}`);
        i += 1;
        while (line[i] === '"') {
            const arg = cString(line, i);
            argv.push(arg.value);
            i = arg.end;
            if (line.startsWith(", ", i)) i += 2;
        }
        if (line[i] !== "]") throw new Error(`cannot read strace's argv (abbreviated?): ${line.slice(0, 200)}`);
        execs.push({ program: program.value, argv });
    }
    return execs;
}

/** A trace of the steps given its `env` (or a cluster given its `dir`): `execs()` reads what they started so far. */
export class Trace {
    readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-execve-"));
    readonly env = { [TRACE_EXECVE]: this.dir };

    execs(): Exec[] {
        return fs.readdirSync(this.dir).flatMap((f) => parseTrace(fs.readFileSync(path.join(this.dir, f), "utf8")));
    }

    remove(): void {
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}

/**
 * The programs whose command line holds one of the secrets: `program arg...` with every secret shown as
 * [secret:N] (N its index), so that a failing test shows where, never the secret itself.
 */
export function secretsOnCommandLines(execs: Exec[], secrets: string[]): string[] {
    // Each secret as written, and as a step could have turned it: other case, base64, hex, URL-encoded.
    const forms = secrets.flatMap((s, n) =>
        [...new Set([s, s.toLowerCase(), s.toUpperCase(), Buffer.from(s).toString("base64").replace(/=+$/, ""), Buffer.from(s).toString("hex"), encodeURIComponent(s)])]
            .filter((form) => form.length >= Math.min(8, s.length))
            .map((form): [string, number] => [form, n]),
    );
    const found = new Set<string>();
    for (const e of execs) {
        const line = e.argv.join(" ");
        if (!forms.some(([form]) => line.includes(form))) continue;
        let shown = `${e.program}: ${line}`;
        forms.forEach(([form, n]) => (shown = shown.split(form).join(`[secret:${n}]`)));
        found.add(shown.length > 400 ? `${shown.slice(0, 400)}...` : shown);
    }
    return [...found];
}
