// A configuration problem and how it is told: the key, what was expected, what was given (never a secret) and
// a command that fixes it, for the stack at hand.
import * as pulumi from "@pulumi/pulumi";

export interface ConfigProblem {
    key: string;
    expected: string;
    given: string;
    fix: string;
}

export class ConfigError extends pulumi.RunError {
    constructor(readonly problems: ConfigProblem[]) {
        super(formatProblems(problems));
    }
}

export function formatProblems(problems: ConfigProblem[]): string {
    const head = `${problems.length} configuration problem${problems.length === 1 ? "" : "s"}; nothing was created:`;
    const items = problems.map((p) => `  ${p.key}\n    expected: ${p.expected}\n    given:    ${p.given}\n    fix:      ${p.fix}`);
    return [head, ...items].join("\n");
}

/** What a user typed, for messages, at most 100 characters; never the value of a secret. */
export function show(value: unknown): string {
    if (value === undefined) return "nothing (the key is not set)";
    let text: string;
    try {
        text = JSON.stringify(value);
    } catch {
        return "a value nested too deeply to show";
    }
    return text.length > 100 ? `${text.slice(0, 97)}...` : text;
}

/** What is said of a secret: whether there is one, never what it is. */
export function showSecret(value: unknown): string {
    return value === undefined || value === "" ? "none" : "a secret value (not shown)";
}

/** What is said of a value that holds a secret: its shape alone. */
export function showShape(value: unknown): string {
    if (value === undefined) return "nothing (the key is not set)";
    const shape = Array.isArray(value) ? "a list" : value === null ? "null" : typeof value === "object" ? "an object" : `a ${typeof value}`;
    return `${shape} (not shown: it holds a secret)`;
}

/** A word for a shell (a value, or a path as `pulumi config --path` takes it): as it is when plain, else in single quotes: 'a.b[0]'. */
export function shellWord(text: string): string {
    return /^[A-Za-z0-9_@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * The commands that set `path` (a key, or a --path into one) to `value`: one per field or item of an object
 * or a list. The CLI stores a --path value that looks like a number or a boolean as one
 * (pkg/cmd/pulumi/config: "--path ... values are parsed as ints and bools"), so a string that looks like
 * one gets `--type string`.
 */
export function setCommand(path: string, value: unknown, secret = false): string {
    if (typeof value === "object" && value !== null) {
        const entries = Array.isArray(value) ? value.map((v, i): [string, unknown] => [`${path}[${i}]`, v]) : Object.entries(value).map(([k, v]): [string, unknown] => [`${path}.${k}`, v]);
        return entries.map(([at, v]) => setCommand(at, v, secret)).join(" && ");
    }
    const nested = /[.[]/.test(path);
    const text = String(value);
    const type = nested && !secret && typeof value === "string" && /^([+-]?\d+|true|false)$/.test(text) ? " --type string" : "";
    return `pulumi config set${secret ? " --secret" : ""}${nested ? " --path" : ""}${type} ${shellWord(path)} ${shellWord(text)}`;
}

/** Every fix for one stack: `pulumi config set|rm` gets `-s <stack>`, so it changes the stack that was checked. */
export function forStack(problems: ConfigProblem[], stack: string): ConfigProblem[] {
    return problems.map((p) => ({ ...p, fix: p.fix.replace(/pulumi config (set|rm)\b/g, `pulumi config $1 -s ${stack}`) }));
}
