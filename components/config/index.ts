// The configuration: the schema (schema.ts), the rules between keys (rules.ts), and here the reading of what
// the engine hands a program. Pure: `parseConfig` takes the raw values (strings; JSON for arrays and objects)
// and returns every problem at once. Only `loadConfig` touches the Pulumi runtime, and only index.ts calls it.
import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { ConfigError, ConfigProblem, forStack, setCommand, shellWord, show, showSecret, showShape } from "./problems";
import { BBB_LINES, RULES } from "./rules";
import { CONFIG_DEFS, CONFIG_KEYS, CONFIG_SCHEMA, ConfigKey, KeySpec, Values } from "./schema";
import { PROJECT } from "./types";
import { editDistance } from "./values";

export { ConfigError, formatProblems } from "./problems";
export type { ConfigProblem } from "./problems";
export { BBB_LINES } from "./rules";
export { CONFIG_KEYS, CONFIG_SCHEMA, MAX_POOL_SIZE } from "./schema";
export type { ConfigKey, KeySpec, KeyType } from "./schema";
export { DATA_ROLES, PROJECT, ROLES } from "./types";
export type { DataRole, PortRange, Role } from "./types";
export { checkCidr, OFFLINE_PRIVATE_KEY, parseRange, reachesEveryone, ubuntuReleaseOf } from "./values";

export type NetworkSettings = Values["network"];
export type DnsSettings = Values["dns"];
export type RecordingSettings = Values["recordings"];

/** A rolling upgrade of the pool to bbbRelease, `servers` at a time. */
export interface UpgradeSettings {
    /** bbb-1 .. bbb-<servers> run bbbRelease; the others still run the release before. */
    servers: number;
    /** What the release before was built from (defaults: bbbVersion, image, bbbInstallerRef). */
    from: { bbbVersion: string; image: string; installerRef: string };
}

type PlainDialIn = Values["dialIn"];
export type DialInSettings = Omit<PlainDialIn, "gateway"> & {
    gateway: Omit<PlainDialIn["gateway"], "password"> & { password: pulumi.Output<string> };
};

type PlainAlerts = Values["alerts"];
type PlainStreaming = Values["streaming"];
export type StreamingSettings = Omit<PlainStreaming, "forward"> & { forward?: pulumi.Output<string> };
export type AlertSettings = Omit<PlainAlerts, "smtp"> & { smtp: Omit<PlainAlerts["smtp"], "password"> & { password?: pulumi.Output<string> } };
export type BackupSettings = Values["backups"];

/** The settings with secrets still plain (loadConfig wraps them). */
type PlainSettings = Omit<Values, "upgrade" | "dialIn" | "alerts"> & { upgrade?: UpgradeSettings; dialIn?: PlainDialIn; alerts?: PlainAlerts };

/** The validated configuration, secrets wrapped as Pulumi secrets. */
export type Settings = Omit<PlainSettings, "sshPrivateKey" | "dialIn" | "alerts" | "streaming"> & {
    sshPrivateKey: pulumi.Output<string>;
    dialIn?: DialInSettings;
    alerts?: AlertSettings;
    streaming: StreamingSettings;
};

/** Raw values as the engine gives them: `bbb:<key>` -> string. */
export type RawConfig = Record<string, string | undefined>;

export interface ParseOptions {
    /** The stack the fixes are for (`pulumi config set -s <stack>`). */
    stack?: string;
    /** The project's name, the keys' namespace (`<project>:domain`): bbb, or what `pulumi new` was told. */
    project?: string;
    /**
     * The keys the stack holds encrypted (`bbb:<key>`, the engine's PULUMI_CONFIG_SECRET_KEYS): a secret key
     * set in plain text is refused. Absent: not known, not checked.
     */
    secretKeys?: readonly string[];
}

export interface Parsed {
    settings?: PlainSettings;
    problems: ConfigProblem[];
}

/** Validates raw configuration and returns the settings only when there is no problem. */
export function parseConfig(raw: RawConfig, options: ParseOptions = {}): Parsed {
    const project = options.project ?? PROJECT;
    const problems: ConfigProblem[] = [...unknownKeys(raw, project), ...plainSecrets(raw, project, options.secretKeys)];
    const values: Partial<Record<ConfigKey, unknown>> = {};
    for (const key of CONFIG_KEYS) {
        const read = readKey(key, raw[`${project}:${key}`]);
        if ("problems" in read) problems.push(...read.problems);
        else if (read.value !== undefined) values[key] = read.value;
    }
    const given = values as Partial<Values>;
    for (const rule of RULES) rule(given, (p) => problems.push(p));
    if (problems.length > 0) return { problems: forStack(problems, options.stack ?? "<stack>") };
    return { problems, settings: resolve(given as Values) };
}

/** Reads the stack's configuration through the Pulumi runtime; throws one error naming every problem. */
export function loadConfig(): Settings {
    const { settings, problems } = parseConfig(pulumi.runtime.allConfig(), { stack: pulumi.getStack(), project: pulumi.getProject() || PROJECT, secretKeys: engineSecretKeys() });
    if (!settings) throw new ConfigError(problems);
    const { dialIn, alerts, streaming, ...rest } = settings;
    const { forward, ...streamingRest } = streaming;
    const alertSettings = (plain: PlainAlerts): AlertSettings => {
        const { password, ...smtp } = plain.smtp;
        return { ...plain, smtp: { ...smtp, ...(password !== undefined ? { password: pulumi.secret(password) } : {}) } };
    };
    return {
        ...rest,
        sshPrivateKey: pulumi.secret(settings.sshPrivateKey),
        ...(dialIn ? { dialIn: { ...dialIn, gateway: { ...dialIn.gateway, password: pulumi.secret(dialIn.gateway.password) } } } : {}),
        ...(alerts ? { alerts: alertSettings(alerts) } : {}),
        streaming: { ...streamingRest, ...(forward !== undefined ? { forward: pulumi.secret(forward) } : {}) },
    };
}

/**
 * The keys the engine says are encrypted in the stack: the language host passes them in
 * PULUMI_CONFIG_SECRET_KEYS, which the SDK keeps in its store (sdk/nodejs/runtime/config.ts, read by the
 * internal `isConfigSecret`); an object holding a secret (`--secret --path dialIn.gateway.password`) is itself
 * secret (sdk/go/common/resource/config: Value.Secure of an object). Undefined when the engine does not say
 * (an empty or missing list), so that a CLI that does not pass it never has every secret refused.
 */
function engineSecretKeys(): string[] | undefined {
    const { getStore } = require("@pulumi/pulumi/runtime/state") as { getStore: () => { config: Record<string, string | undefined> } };
    const { configSecretKeysEnvKey } = require("@pulumi/pulumi/runtime/config") as { configSecretKeysEnvKey: string };
    const listed = getStore().config[configSecretKeysEnvKey];
    if (!listed) return undefined;
    try {
        const keys: unknown = JSON.parse(listed);
        return Array.isArray(keys) ? keys.map(String) : undefined;
    } catch {
        return undefined;
    }
}

/** Keys in our namespace the schema does not know: typos more often than not. */
function unknownKeys(raw: RawConfig, project: string): ConfigProblem[] {
    return Object.keys(raw)
        .filter((full) => full.startsWith(`${project}:`) && !Object.hasOwn(CONFIG_SCHEMA, full.slice(project.length + 1)))
        .map((full) => {
            const key = full.slice(project.length + 1);
            const near = key.length <= 64 ? CONFIG_KEYS.find((k) => k.toLowerCase() === key.toLowerCase() || editDistance(k, key) <= 2) : undefined;
            const name = show(key).slice(1, -1);
            return {
                key: name,
                expected: `one of the known keys (${CONFIG_KEYS.join(", ")})`,
                given: `an unknown key ${show(key)}`,
                fix: near ? `rename it: pulumi config rm ${shellWord(key)} && pulumi config set ${near} ...` : `remove it: pulumi config rm ${shellWord(name)}`,
            };
        });
}

/** Secret keys (or keys with secret fields) that the stack holds in plain text. */
function plainSecrets(raw: RawConfig, project: string, secretKeys: readonly string[] | undefined): ConfigProblem[] {
    if (!secretKeys) return [];
    return CONFIG_KEYS.filter((key) => {
        const spec = CONFIG_SCHEMA[key];
        const full = `${project}:${key}`;
        if (raw[full] === undefined || secretKeys.includes(full)) return false;
        if (spec.secret) return true;
        const value = parseTyped(spec.type, raw[full]!);
        return (spec.secretFields ?? []).some((field) => valueAt(value, field.split(".")) !== undefined);
    }).map((key) => {
        const field = CONFIG_SCHEMA[key].secretFields?.[0];
        const path = field ? `${key}.${field}` : key;
        return {
            key: path,
            expected: "a secret, stored encrypted in Pulumi.<stack>.yaml (secure: ...)",
            given: "a value in plain text (not shown; anyone who reads the stack file or its history has it)",
            fix: `${secretCommand(path, Boolean(field))}  (and change it where it is used: it was readable in plain text)`,
        };
    });
}

/** One key's value: its default when unset, else its JSON or text, through its schema. */
function readKey(key: ConfigKey, text: string | undefined): { value?: unknown } | { problems: ConfigProblem[] } {
    const def = CONFIG_DEFS[key];
    const given = def.secret ? showSecret(text) : def.secretFields ? showShape(text) : show(text);
    if (text === undefined || (def.type === "string" && text === "" && def.default === undefined)) {
        if (def.optional) return {};
        if (def.default === undefined) {
            return { problems: [{ key, expected: `a value (${def.description})`, given: show(undefined), fix: exampleFix(key, def, []) }] };
        }
        text = def.type === "string" ? (def.default as string) : JSON.stringify(def.default);
    }
    if (/"__proto__"\s*:/.test(text) && isJsonStructure(text)) {
        // JSON.parse keeps such a key, and every object check would silently drop it (it is the prototype).
        return { problems: [{ key, expected: "fields with names of their own (__proto__ is JavaScript's, and would be dropped)", given: givenAt(def, [], "__proto__"), fix: `pulumi config rm --path ${key}.__proto__` }] };
    }
    const typed = parseTyped(def.type, text);
    if (typed === undefined) {
        return { problems: [{ key, expected: `${def.type === "integer" || def.type === "array" || def.type === "object" ? "an" : "a"} ${describeType(def.type)} (${def.description})`, given, fix: exampleFix(key, def, []) }] };
    }
    const result = def.schema.safeParse(typed);
    if (result.success) return { value: result.data };
    // One problem per path: the check's own words before zod's (1e20 is both unsafe and over the maximum).
    const issues = [...result.error.issues].sort((a, b) => Number(isZodWording(a)) - Number(isZodWording(b)));
    const problems = issues.flatMap((issue) => problemsOf(key, def, typed, issue));
    return { problems: problems.filter((p, i) => problems.findIndex((q) => q.key === p.key) === i) };
}

function isZodWording(issue: z.core.$ZodIssue): boolean {
    return /^(Invalid input|Too (small|big))/.test(issue.message);
}

function describeType(type: KeySpec["type"]): string {
    return type === "array" ? "array (a list)" : type === "object" ? "object (a map)" : type;
}

/** The value of a key as its type says, from the text the engine gives; undefined if it is not of that type. */
function parseTyped(type: KeySpec["type"], text: string): unknown {
    if (type === "string") return isJsonStructure(text) ? undefined : text;
    if (type === "boolean") return text === "true" ? true : text === "false" ? false : undefined;
    if (type === "integer") return /^-?\d+$/.test(text.trim()) ? Number(text) : undefined;
    if (!isJsonStructure(text)) return undefined;
    const parsed = JSON.parse(text);
    return Array.isArray(parsed) === (type === "array") ? parsed : undefined;
}

/** Whether the engine's text is a YAML list or map (it passes them as JSON), not a string. */
function isJsonStructure(text: string): boolean {
    if (!/^\s*[[{]/.test(text)) return false;
    try {
        const parsed = JSON.parse(text);
        return typeof parsed === "object" && parsed !== null;
    } catch {
        return false;
    }
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
    return path.reduce<unknown>((at, step) => (at !== null && typeof at === "object" ? (at as Record<PropertyKey, unknown>)[step] : undefined), value);
}

function pathText(key: string, path: readonly PropertyKey[]): string {
    return path.reduce<string>((text, step) => (typeof step === "number" ? `${text}[${step}]` : `${text}.${String(step)}`), key);
}

function isSecretPath(def: KeySpec, path: readonly PropertyKey[]): boolean {
    return def.secret === true || (def.secretFields ?? []).some((field) => field === path.map(String).join("."));
}

/** What a value at `path` shows: nothing of a secret, only the shape of what holds one (or is held by one). */
function givenAt(def: KeySpec, path: readonly PropertyKey[], value: unknown): string {
    if (isSecretPath(def, path)) return showSecret(value);
    const at = path.map(String).join(".");
    const near = (def.secretFields ?? []).some((field) => at === "" || field.startsWith(`${at}.`) || at.startsWith(`${field}.`));
    return near ? showShape(value) : show(value);
}

/**
 * The command that sets a secret without it reaching a command line: with no value `pulumi config set` asks
 * for it without echo, or reads standard input (pkg/cmd/pulumi/config/config.go).
 */
function secretCommand(path: string, nested: boolean): string {
    const set = `pulumi config set --secret${nested ? " --path" : ""} ${shellWord(path)}`;
    return path === "sshPrivateKey" ? `${set} < ~/.ssh/bbb_deploy  (the key file; no passphrase, its .pub is sshPublicKey)` : `${set}  (no value: it asks without echo)`;
}

/** The commands that set the key's example at `path` (the example's first item for any item of a list). */
function exampleFix(key: string, def: KeySpec, path: readonly PropertyKey[]): string {
    if (isSecretPath(def, path)) return secretCommand(pathText(key, path), path.length > 0);
    const example = valueAt(def.example, path.map((step) => (typeof step === "number" ? 0 : step)));
    if (example === undefined) return `pulumi config set --path ${shellWord(pathText(key, path))} <value>`;
    // A whole object or list is removed first, so that nothing of what was there stays beside the example.
    const whole = typeof example === "object" && example !== null && path.length === 0 ? `pulumi config rm ${key} && ` : "";
    return whole + setCommand(pathText(key, path), withoutSecrets(def, example, path));
}

/** The example with its secret fields left out (they are set with their own command). */
function withoutSecrets(def: KeySpec, example: unknown, path: readonly PropertyKey[]): unknown {
    if (!def.secretFields || typeof example !== "object" || example === null) return example;
    const copy = JSON.parse(JSON.stringify(example)) as Record<string, unknown>;
    for (const field of def.secretFields) {
        const steps = field.split(".").slice(path.length);
        const parent = valueAt(copy, steps.slice(0, -1)) as Record<string, unknown> | undefined;
        if (parent && typeof parent === "object") delete parent[steps[steps.length - 1]];
    }
    return copy;
}

/** The problems of one zod issue: one per unknown field, else one. */
function problemsOf(key: string, def: KeySpec, value: unknown, issue: z.core.$ZodIssue): ConfigProblem[] {
    if (issue.code === "unrecognized_keys") {
        return issue.keys.map((field) => ({
            key: show(pathText(key, [...issue.path, field])).slice(1, -1),
            expected: issue.message,
            given: `an unknown field ${show(field)}`,
            fix: `pulumi config rm --path ${shellWord(pathText(key, [...issue.path, field]))}`,
        }));
    }
    const at = valueAt(value, issue.path);
    const path = pathText(key, issue.path);
    const fix = (issue.code === "custom" && (issue.params as { fix?: string } | undefined)?.fix) || undefined;
    return [
        {
            key: path,
            expected: expectedOf(issue),
            given: givenAt(def, issue.path, at),
            fix: fix ? fix.replace("{path}", shellWord(path)) : exampleFix(key, def, issue.path),
        },
    ];
}

/** What a zod issue expected, in the words of the messages (zod's own wording for checks without one). */
function expectedOf(issue: z.core.$ZodIssue): string {
    if (!isZodWording(issue)) return issue.message;
    switch (issue.code) {
        case "invalid_type":
            return `${/^[aeiou]/.test(issue.expected) ? "an" : "a"} ${issue.expected}`;
        case "too_small":
            return `at least ${String(issue.minimum)}`;
        case "too_big":
            return `at most ${String(issue.maximum)}`;
        default:
            return issue.message;
    }
}

/** The settings from values that passed every check: the installer's default ref, and the upgrade's "from". */
function resolve(v: Values): PlainSettings {
    const { upgrade, dialIn, alerts, ...rest } = v as Values & { upgrade?: Values["upgrade"]; dialIn?: Values["dialIn"]; alerts?: Values["alerts"] };
    const settings: PlainSettings = { ...rest, bbbInstallerRef: installerRefFor(v.bbbInstallerRef, v.bbbVersion), ...(dialIn ? { dialIn } : {}), ...(alerts ? { alerts } : {}) };
    if (upgrade) {
        const from = upgrade.from ?? {};
        const bbbVersion = from.bbbVersion ?? v.bbbVersion;
        settings.upgrade = {
            servers: upgrade.servers,
            from: { bbbVersion, image: from.image ?? v.image, installerRef: installerRefFor(from.bbbInstallerRef ?? v.bbbInstallerRef, bbbVersion) },
        };
    }
    return settings;
}

/** The git ref of bbb-install.sh to run: the one given, else the pinned commit of the version's package line. */
function installerRefFor(ref: string, version: string): string {
    return ref || (BBB_LINES[version.slice(0, -1)]?.installerRef ?? "");
}
