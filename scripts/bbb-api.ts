// What the command-line tools that talk to a deployed platform share (npm run smoke, npm run stream): BBB's API
// checksum and signed URLs, reading its XML answers, the stack's outputs through the Pulumi CLI, and masking secrets.
import { spawnSync } from "child_process";
import * as crypto from "crypto";

/** sha1(call + query + secret): BBB's (and Scalelite's) API checksum. */
export function checksum(call: string, query: string, secret: string): string {
    return crypto.createHash("sha1").update(call + query + secret).digest("hex");
}

/** A query string as BBB clients send it (application/x-www-form-urlencoded, spaces as '+'), in the given order. */
export function query(params: Record<string, string>): string {
    return new URLSearchParams(Object.entries(params)).toString();
}

/** `<base>/<call>?<query>&checksum=<sha1(call + query + secret)>`. */
export function signedUrl(base: string, call: string, params: Record<string, string>, secret: string): string {
    const q = query(params);
    const sum = checksum(call, q, secret);
    return `${base.replace(/\/+$/, "")}/${call}?${q ? `${q}&` : ""}checksum=${sum}`;
}

/** The text of the first <name> element of a BBB XML answer (entities decoded), undefined when absent. */
export function xmlTag(xml: string, name: string): string | undefined {
    const m = new RegExp(`<${name}(?:\\s[^>]*)?(?:/>|>([\\s\\S]*?)</${name}>)`).exec(xml);
    if (!m) return undefined;
    return (m[1] ?? "")
        .replace(/<!\[CDATA\[([\s\S]*?)\]\]>/g, "$1")
        .replace(/&lt;/g, "<")
        .replace(/&gt;/g, ">")
        .replace(/&quot;/g, '"')
        .replace(/&apos;/g, "'")
        .replace(/&amp;/g, "&")
        .trim();
}

/** Replaces every secret (of 3 characters or more) in a text with ***. */
export function mask(text: string, secrets: string[]): string {
    let out = text;
    for (const s of [...secrets].filter((s) => s.length >= 3).sort((a, b) => b.length - a.length)) out = out.split(s).join("***");
    return out;
}

export interface Io {
    out(line: string): void;
    err(line: string): void;
    env: NodeJS.ProcessEnv;
}

/** A usage error: the tool prints it with its usage and exits 2. */
export class UsageError extends Error {}

/** An error's message, with its code when the message lacks it. */
export function reason(err: unknown): string {
    // Not `instanceof Error`: errors from node's own modules come from another realm under jest.
    const e = err as { message?: unknown; code?: unknown } | null;
    if (typeof e !== "object" || e === null || typeof e.message !== "string") return String(err);
    const code = typeof e.code === "string" ? e.code : undefined;
    return code && !e.message.includes(code) ? `${e.message} (${code})` : e.message;
}

/** The stack's outputs through the Pulumi CLI; a UsageError (exit 2) when they cannot be read. */
export function stackOutputs(stack: string, env: NodeJS.ProcessEnv): Record<string, unknown> {
    const r = spawnSync("pulumi", ["stack", "output", "--json", "--show-secrets", "--stack", stack], {
        env,
        encoding: "utf8",
        maxBuffer: 64 << 20,
    });
    if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT") {
        throw new UsageError("the pulumi CLI is not installed (or not on PATH): it reads the stack's outputs");
    }
    if (r.error) throw new UsageError(`pulumi stack output failed: ${r.error.message}`);
    if (r.status !== 0) throw new UsageError(`pulumi stack output --stack ${stack} failed (exit ${r.status}): ${r.stderr.trim()}`);
    try {
        return JSON.parse(r.stdout) as Record<string, unknown>;
    } catch {
        throw new UsageError(`pulumi stack output --stack ${stack} did not print JSON`);
    }
}
