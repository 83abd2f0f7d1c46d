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

/** What a user typed, for messages; never the value of a secret. */
export function show(value: unknown): string {
    if (value === undefined) return "nothing (the key is not set)";
    const text = JSON.stringify(value);
    return text.length > 100 ? `${text.slice(0, 97)}...` : text;
}

/** What is said of a secret: whether there is one, never what it is. */
export function showSecret(value: unknown): string {
    return value === undefined || value === "" ? "none" : "a secret value (not shown)";
}

/** A path as `pulumi config --path` takes it, quoted for a shell when it has brackets: 'a.b[0]'. */
export function quotePath(path: string): string {
    return /[[\]]/.test(path) ? `'${path}'` : path;
}

/** The command that sets `path` (a key, or a --path into one) to `value`. */
export function setCommand(path: string, value: unknown, secret = false): string {
    const flags = `${secret ? " --secret" : ""}${/[.[]/.test(path) ? " --path" : ""}`;
    if (typeof value === "object" && value !== null) {
        return `pulumi config set${flags} --path ${path}... (e.g. ${path}: ${JSON.stringify(value)} in Pulumi.<stack>.yaml)`;
    }
    const text = String(value);
    return `pulumi config set${flags} ${quotePath(path)} ${/[\s"'$()]/.test(text) ? `'${text}'` : text}`;
}

/** Every fix for one stack: `pulumi config set|rm` gets `-s <stack>`, so it changes the stack that was checked. */
export function forStack(problems: ConfigProblem[], stack: string): ConfigProblem[] {
    return problems.map((p) => ({ ...p, fix: p.fix.replace(/pulumi config (set|rm)\b/g, `pulumi config $1 -s ${stack}`) }));
}
