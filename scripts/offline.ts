// The program evaluated offline: Pulumi's mocks stand in for the engine and a typical OpenStack cloud
// (flavors, images, networks), and what the engine would have been asked to register is recorded: type,
// name, URN, parent, inputs (and which are secret), dependencies and resource options. Used by the tests
// (test/harness.ts) and the benchmark.

import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { parse as parseYaml } from "yaml";
import { CONFIG_KEYS, CONFIG_SCHEMA, OFFLINE_PRIVATE_KEY } from "../components/config";

// How a secret travels in a registration: { [SIG_KEY]: SECRET_SIG, value }.
const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export interface Registered {
    type: string;
    name: string;
    urn: string;
    parent: string;
    custom: boolean;
    /** Inputs with secrets unwrapped. */
    inputs: Record<string, any>;
    /** Top-level input names whose value is (or contains) a secret. */
    secretInputs: string[];
    dependsOn: string[];
    /** Input name -> URNs the input's value came from. */
    propertyDependencies: Record<string, string[]>;
    deleteBeforeReplace: boolean;
    ignoreChanges: string[];
    protect: boolean;
    /** `retainOnDelete`: Pulumi forgets the resource instead of deleting it. */
    retainOnDelete: boolean;
    /** What the mocks answered beyond the inputs: the id and the computed outputs (e.g. a port's addresses). */
    outputs: Record<string, unknown>;
    /** `<type>::<name>` of what the resource was before (its aliases): the engine takes that one over. */
    aliases: string[];
}

export interface Run {
    resources: Registered[];
    outputs: Record<string, unknown>;
    /** Output names whose value is secret. */
    secretOutputs: string[];
    logs: string[];
    /** The data sources the program asked, in order: token and arguments. */
    invoked?: { token: string; inputs: Record<string, unknown> }[];
    /** What the program threw, if it did (e.g. a configuration error). */
    error?: Error;
}

export interface CloudMock {
    /** The network has a global IPv6 subnet (ports get a routable address). */
    ipv6?: boolean;
    /** Flavors and their sizes; defaults to the m1.* family. */
    flavors?: Record<string, { vcpus: number; ram: number }>;
    images?: string[];
    networks?: string[];
    /** A cloud nothing is known of (the offline plan): every network, image and flavor name exists. */
    anyName?: boolean;
    /** What the cloud holds already (a deployed stack's volumes and ports: inventoryOf its run); nothing by default. */
    inventory?: Inventory;
    /** The service catalog lists no object store (no Swift for the backups); by default it does, in region RegionOne. */
    noObjectStore?: boolean;
}

/** The public Keystone endpoint of the mocked catalog, listed without its version as many clouds do. */
export const MOCK_KEYSTONE = "https://keystone.example.net:5000";

/** The volumes and ports of a cloud, as the program's lookups see them (components/bake.ts lookupBaking). */
export interface Inventory {
    volumes: { id: string; name?: string; metadata?: Record<string, string>; size?: number; status: string }[];
    ports: { networkId: string; description?: string; deviceId: string }[];
}

/** What a deployed run left in the cloud: its volumes (ids as the mocks make them, available) and ports. */
export function inventoryOf(run: Pick<Run, "resources">): Inventory {
    const of = (type: string) => run.resources.filter((r) => r.type === type);
    return {
        volumes: of("openstack:blockstorage/volume:Volume").map((v) => ({ id: `${v.name}-id`, name: v.inputs.name, metadata: v.inputs.metadata, size: v.inputs.size, status: "available" })),
        ports: of("openstack:networking/port:Port").map((p) => ({
            networkId: p.inputs.networkId,
            description: p.inputs.description,
            // The VM on it, if any.
            deviceId: of("openstack:compute/instance:Instance").some((vm) => vm.inputs.networks?.[0]?.port === `${p.name}-id`) ? `${p.name.replace(/-port$/, "-vm")}-id` : "",
        })),
    };
}

/**
 * A terraform-provider-openstack data source's answer (v1.54.1): exactly one match, or its error, as the engine
 * hands a provider's error to the program: the SDK's invoke rejects with the gRPC error's details, which the
 * engine ("invocation of … returned an error") and the bridge ("invoking …", go-multierror's list) wrapped.
 */
function onlyOne<T>(token: string, matches: T[], none: string, many: string): T {
    const failed = (reason: string) => {
        const details = `invocation of ${token} returned an error: invoking ${token}: 1 error occurred:\n\t* ${reason}\n\n`;
        return Object.assign(new Error(details), { details });
    };
    if (matches.length === 0) throw failed(none);
    if (matches.length > 1) throw failed(many);
    return matches[0];
}

export const DEFAULT_FLAVORS = {
    "m1.small": { vcpus: 1, ram: 2048 },
    "m1.medium": { vcpus: 2, ram: 4096 },
    "m1.large": { vcpus: 4, ram: 8192 },
    "m1.xlarge": { vcpus: 8, ram: 16384 },
};

/**
 * Mock addresses follow the host's name, not the order of creation: turn .2, scalelite .3, greenlight .4, monitoring .6, streaming .7,
 * bbb-N .(10+N), its release R's server bbb-N-rR .(10+N+70*(R-1)), a bake's builder .5 (one at a time in
 * tests): private 10.0.0.x, floating 203.0.113.x, IPv6 2001:db8:1::x (hex).
 */
export function hostNumber(resourceName: string): number {
    const host = resourceName.replace(/-(port|fip)$/, "");
    const fixed: Record<string, number> = { turn: 2, scalelite: 3, greenlight: 4, monitoring: 6, streaming: 7 };
    const node = /^bbb-(\d+)(?:-r(\d+))?$/.exec(host);
    if (node) return 10 + Number(node[1]) + 70 * (Number(node[2] ?? 1) - 1);
    if (host in fixed) return fixed[host];
    if (/^bake-[0-9a-f]+-builder$/.test(host)) return 5;
    throw new Error(`no mock address for ${resourceName}`);
}

/** Config as the engine passes it: `bbb:<key>` -> string (JSON for everything but strings). */
export function rawConfig(config: Record<string, unknown>): Record<string, string> {
    return Object.fromEntries(
        Object.entries(config).map(([k, v]) => [`bbb:${k}`, typeof v === "string" ? v : JSON.stringify(v)]),
    );
}

/** Keys of `config` that the schema says are secrets, or hold one: as if they were set with --secret. */
export function secretKeysOf(config: Record<string, unknown>): string[] {
    return CONFIG_KEYS.filter((key) => key in config && (CONFIG_SCHEMA[key].secret || CONFIG_SCHEMA[key].secretFields)).map((key) => `bbb:${key}`);
}

function containsSecret(value: any): boolean {
    if (value === null || typeof value !== "object") return false;
    if (value[SIG_KEY] === SECRET_SIG) return true;
    return Object.values(value).some(containsSecret);
}

function unwrapSecrets(value: any): any {
    if (value === null || typeof value !== "object") return value;
    if (value[SIG_KEY] === SECRET_SIG) return unwrapSecrets(value.value);
    if (Array.isArray(value)) return value.map(unwrapSecrets);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrapSecrets(v)]));
}

/** A fresh copy of the SDK and of the program, loaded together (a new process, or jest.isolateModules). */
export interface ProgramModules {
    pulumi: typeof import("@pulumi/pulumi");
    /** @pulumi/pulumi/runtime/settings, for the mock monitor. */
    settings: any;
    /** index.ts's export. */
    program: () => Promise<Record<string, unknown>>;
}

/** Loads the SDK and the program in this process's module registry (fresh only in a fresh process). */
export function loadProgram(): ProgramModules {
    return {
        pulumi: require("@pulumi/pulumi"),
        settings: require("@pulumi/pulumi/runtime/settings"),
        program: require("../index"),
    };
}

/**
 * Evaluates the program with `config` (`<key>: value`, without the project prefix) against the mocked
 * cloud, and returns what the engine would have been asked to register.
 */
export async function evaluateProgram(
    modules: ProgramModules,
    config: Record<string, unknown>,
    cloud: CloudMock = {},
    stack = "dev",
    secretKeys: string[] = secretKeysOf(config),
): Promise<Run> {
    const { pulumi, settings, program } = modules;
    const flavors: Record<string, { vcpus: number; ram: number }> = cloud.flavors ?? DEFAULT_FLAVORS;
    const images = cloud.images ?? ["Ubuntu 22.04"];
    const networks = cloud.networks ?? ["private", "public"];
    const subnets: Record<string, { ipVersion: number; cidr: string }> = {
        "subnet-v4": { ipVersion: 4, cidr: "10.0.0.0/24" },
        "subnet-ula": { ipVersion: 6, cidr: "fd00:1::/64" },
        "subnet-v6": { ipVersion: 6, cidr: "2001:db8:1::/64" },
    };
    const logs: string[] = [];
    const invoked: { token: string; inputs: Record<string, unknown> }[] = [];
    const answered = new Map<string, Record<string, unknown>>();

    await pulumi.runtime.setMocks(
        {
            newResource(args) {
                const state: Record<string, unknown> = { ...args.inputs };
                switch (args.type) {
                    case "openstack:networking/port:Port": {
                        const n = hostNumber(args.name);
                        // Neutron's answer: an IPv4, a ULA (never routable), and a global address
                        // written the long way round, as some clouds do.
                        state.allFixedIps = [`10.0.0.${n}`, `fd00:1::${n}`];
                        if (cloud.ipv6) state.allFixedIps = [...(state.allFixedIps as string[]), `2001:0DB8:0001:0000:0000:0000:0000:${n.toString(16).toUpperCase()}`];
                        break;
                    }
                    case "openstack:networking/floatingIp:FloatingIp":
                        state.address = `203.0.113.${hostNumber(args.name)}`;
                        break;
                    case "openstack:compute/keypair:Keypair":
                        state.name = `${args.name}-generated`;
                        break;
                    case "random:index/randomPassword:RandomPassword":
                        // Distinct per resource, so a test can tell which secret went where, and per keepers, as a
                        // new generation is a new secret.
                        state.result = `${args.name.replace(/[^A-Za-z0-9]/g, "")}${
                            args.inputs.keepers ? createHash("sha256").update(JSON.stringify(args.inputs.keepers)).digest("hex").slice(0, 6) : ""
                        }${"R".repeat(40)}`.slice(0, args.inputs.length as number);
                        break;
                    case "openstack:identity/applicationCredential:ApplicationCredential":
                        // Keystone generates the secret when none is given (base64url; identity_application_credential_v3's `secret`).
                        state.secret = `${args.name.replace(/[^A-Za-z0-9]/g, "")}-AppCredSecret_${"k".repeat(24)}`;
                        break;
                    case "random:index/randomBytes:RandomBytes":
                        state.hex = "ab".repeat(args.inputs.length as number);
                        break;
                }
                const id = `${args.name}-id`;
                answered.set(`${args.type}::${args.name}`, {
                    id,
                    ...Object.fromEntries(Object.entries(state).filter(([key]) => !(key in args.inputs))),
                });
                return { id, state };
            },
            call(args) {
                invoked.push({ token: args.token, inputs: args.inputs });
                switch (args.token) {
                    case "openstack:networking/getNetwork:getNetwork": {
                        const name = args.inputs.name as string;
                        if (!cloud.anyName && !networks.includes(name)) throw new Error("Your query returned no results. Please change your search criteria and try again.");
                        return { id: `net-${name}`, name, subnets: ["subnet-v4", "subnet-ula", ...(cloud.ipv6 ? ["subnet-v6"] : [])] };
                    }
                    case "openstack:networking/getSubnet:getSubnet":
                        return { id: args.inputs.subnetId, ...subnets[args.inputs.subnetId as string] };
                    case "openstack:images/getImage:getImage":
                        if (!cloud.anyName && !images.includes(args.inputs.name as string)) throw new Error("No Image found");
                        return { id: `image-uuid-${String(args.inputs.name).toLowerCase().replace(/[^a-z0-9]+/g, "-")}`, name: args.inputs.name };
                    case "openstack:blockstorage/getVolumeV3:getVolumeV3": {
                        const wanted = args.inputs as { name?: string; status?: string; metadata?: Record<string, string> };
                        const volume = onlyOne(
                            args.token,
                            (cloud.inventory?.volumes ?? []).filter(
                                (v) =>
                                    (wanted.name === undefined || v.name === wanted.name) &&
                                    (wanted.status === undefined || v.status === wanted.status) &&
                                    Object.entries(wanted.metadata ?? {}).every(([k, value]) => v.metadata?.[k] === value),
                            ),
                            "Your openstack_blockstorage_volume_v3 query returned no results",
                            "Your openstack_blockstorage_volume_v3 query returned multiple results",
                        );
                        return { ...volume, metadata: volume.metadata ?? {} };
                    }
                    case "openstack:networking/getPort:getPort": {
                        const wanted = args.inputs as { networkId?: string; description?: string };
                        const found = (cloud.inventory?.ports ?? []).filter((p) => p.networkId === wanted.networkId && p.description === wanted.description);
                        return onlyOne(args.token, found, "No openstack_networking_port_v2 found", `More than one openstack_networking_port_v2 found (${found.length})`);
                    }
                    case "openstack:identity/getAuthScope:getAuthScope": {
                        // The provider's token's catalog: a service per type, each with its interfaces' endpoints.
                        const service = (type: string, url: string) => ({
                            id: `${type}-id`,
                            name: type,
                            type,
                            endpoints: ["internal", "public"].map((face) => ({ id: `${type}-${face}`, interface: face, region: "RegionOne", regionId: "RegionOne", url: face === "public" ? url : url.replace("example.net", "internal.example.net") })),
                        });
                        return {
                            id: args.inputs.name,
                            name: args.inputs.name,
                            region: "RegionOne",
                            projectId: "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
                            serviceCatalogs: [
                                service("identity", MOCK_KEYSTONE),
                                service("compute", "https://nova.example.net:8774/v2.1"),
                                ...(cloud.noObjectStore ? [] : [service("object-store", "https://swift.example.net:8080/v1/AUTH_0f1e2d3c4b5a69788796a5b4c3d2e1f0")]),
                            ],
                        };
                    }
                    case "openstack:compute/getInstanceV2:getInstanceV2":
                        // A bake's builder after its bake: it powered itself off.
                        return { id: args.inputs.id, powerState: "shutoff" };
                    case "openstack:compute/getFlavor:getFlavor": {
                        const flavor = cloud.anyName ? { vcpus: 8, ram: 16384 } : flavors[args.inputs.name as string];
                        if (!flavor) throw new Error("No Flavor found");
                        return { id: `flavor-${args.inputs.name}`, name: args.inputs.name, ...flavor };
                    }
                }
                throw new Error(`unmocked call ${args.token}`);
            },
        },
        "bbb",
        stack,
        false,
    );
    pulumi.runtime.setAllConfig(rawConfig(config), secretKeys);

    const monitor = settings.getMonitor();
    const requests: any[] = [];
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req: any, callback: any) => {
        requests.push(req);
        register(req, callback);
    };
    // Without an engine, the SDK's log functions print "<severity>: [runtime] <message>" to the console.
    const original = { log: console.log, warn: console.warn, error: console.error };
    console.log = console.warn = console.error = (...args: unknown[]) => void logs.push(args.map(String).join(" "));
    // The SDK captures a stack trace for every resource it registers (its source position, for the engine);
    // under jest, whose source maps format every trace, that is most of an evaluation's time (2.7 s of 3 s
    // for prod). Errors keep their messages.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;

    const outputs: Record<string, unknown> = {};
    const secretOutputs: string[] = [];
    let error: Error | undefined;
    try {
        const exported: Record<string, unknown> = await program().catch((err: Error) => {
            error = err;
            return {};
        });
        for (const [key, value] of Object.entries(exported)) {
            const out: import("@pulumi/pulumi").Output<unknown> = pulumi.output(value);
            outputs[key] = await new Promise((resolve) => out.apply(resolve));
            if (await (out as any).isSecret) secretOutputs.push(key);
        }
        await pulumi.runtime.disconnect();
    } finally {
        Object.assign(console, original);
        Error.stackTraceLimit = stackTraceLimit;
    }

    const registered = monitor.getRegisteredResources() as Map<string, { urn: string }>;
    const urnOf = (type: string, name: string) => [...registered.keys()].find((u) => u.endsWith(`${type}::${name}`)) ?? "";
    const resources = requests.map((req): Registered => {
        const object = req.getObject()?.toJavaScript() ?? {};
        return {
            type: req.getType(),
            name: req.getName(),
            urn: urnOf(req.getType(), req.getName()),
            parent: req.getParent(),
            custom: req.getCustom(),
            inputs: unwrapSecrets(object),
            secretInputs: Object.keys(object).filter((k) => containsSecret(object[k])),
            dependsOn: req.getDependenciesList(),
            propertyDependencies: Object.fromEntries(
                req.getPropertydependenciesMap().toArray().map(([key, deps]: [string, any]) => [key, deps[0] ?? []]),
            ),
            deleteBeforeReplace: req.getDeletebeforereplace(),
            ignoreChanges: req.getIgnorechangesList(),
            protect: req.getProtect?.() ?? false,
            retainOnDelete: req.getRetainondelete?.() ?? false,
            outputs: answered.get(`${req.getType()}::${req.getName()}`) ?? {},
            aliases: aliasKeys(req),
        };
    });
    return { resources, outputs, secretOutputs, logs, invoked, error };
}

/** `<type>::<name>` of a URN: its last type (after the parents') and its name. */
function urnKey(urn: string): string {
    const parts = urn.split("::");
    return `${parts[parts.length - 2].split("$").pop()}::${parts[parts.length - 1]}`;
}

/** The `<type>::<name>` of each alias of a registration (structured aliases, or alias URNs). */
function aliasKeys(req: any): string[] {
    const structured = (req.getAliasesList?.() ?? []).map((alias: any) => {
        if (alias.hasUrn()) return urnKey(alias.getUrn());
        const spec = alias.getSpec();
        return `${spec.getType() || req.getType()}::${spec.getName() || req.getName()}`;
    });
    return [...structured, ...(req.getAliasurnsList?.() ?? []).map(urnKey)];
}

export function ofType(run: Run, type: string): Registered[] {
    return run.resources.filter((r) => r.type === type);
}

export function byName(run: Run, name: string): Registered {
    const found = run.resources.find((r) => r.name === name);
    if (!found) throw new Error(`no resource named ${name}; have ${run.resources.map((r) => r.name).join(", ")}`);
    return found;
}

/** Names of every resource `name` waits for, directly or not (explicit and input dependencies). */
export function waitsFor(run: Run, name: string): Set<string> {
    const byUrn = new Map(run.resources.map((r) => [r.urn, r]));
    const seen = new Set<string>();
    const visit = (r: Registered) => {
        const direct = [...r.dependsOn, ...Object.values(r.propertyDependencies).flat()];
        for (const urn of direct) {
            const dep = byUrn.get(urn);
            if (!dep || seen.has(dep.name)) continue;
            seen.add(dep.name);
            visit(dep);
        }
    };
    visit(byName(run, name));
    return seen;
}

/** The inputs a remote step's stdin carries (its `NAME='value'` lines before the script). */
export function stepInputs(stdin: string): Record<string, string> {
    return parseStep(stdin).inputs;
}

/**
 * A step's stdin (components/remote.ts stepStdin) taken apart: the assignments one after the other from the start (a
 * value may hold lines, and "{" lines of its own), then from the "{" line on, lib.sh and the script.
 */
export function parseStep(stdin: string): { inputs: Record<string, string>; script: string } {
    const inputs: Record<string, string> = {};
    const assignment = /([A-Z][A-Z0-9_]*)='((?:[^']|'\\'')*)'\n/y;
    let end = 0;
    for (let m = assignment.exec(stdin); m; m = assignment.exec(stdin)) {
        inputs[m[1]] = m[2].replace(/'\\''/g, "'");
        end = assignment.lastIndex;
    }
    return { inputs, script: stdin.slice(end) };
}

/** The project's root: the nearest directory above this file holding Pulumi.yaml (source tree or bin/). */
export function projectRoot(): string {
    let dir = __dirname;
    while (!fs.existsSync(path.join(dir, "Pulumi.yaml"))) {
        const parent = path.dirname(dir);
        if (parent === dir) throw new Error("no Pulumi.yaml above scripts/");
        dir = parent;
    }
    return dir;
}

/** Placeholder for a private key the stack file holds encrypted (or not at all): never decrypted here. */
export const PLACEHOLDER_PRIVATE_KEY = OFFLINE_PRIVATE_KEY;

/** A short digest of an encrypted value: a new ciphertext (a secret set again) gives a new placeholder. */
function cipherDigest(ciphertext: unknown): string {
    return createHash("sha256").update(String(ciphertext)).digest("hex").slice(0, 12);
}

/** A value with every `{ secure: <ciphertext> }` in it replaced by "[secret-<digest>]" (no space: it stands in for values that must not have one, as a SIP password). */
function withPlaceholders(value: unknown): unknown {
    if (value === null || typeof value !== "object") return value;
    if (!Array.isArray(value) && "secure" in value) return `[secret-${cipherDigest((value as { secure: unknown }).secure)}]`;
    if (Array.isArray(value)) return value.map(withPlaceholders);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withPlaceholders(v)]));
}

/**
 * The configuration of a stack as the program reads it, from <dir>/Pulumi.<stack>.yaml: `<key>: value` for
 * the project's keys. Encrypted (`secure:`) values, at the top or nested (`dialIn.gateway.password`), are not
 * decrypted: the private key gets a placeholder of the right shape, any other secret "[secret-<digest>]". The
 * digest is of the ciphertext, so a secret set again differs from the one before (`npm run impact` sees it).
 * Undefined when the stack file does not exist.
 */
export function stackConfig(dir: string, stack: string): Record<string, unknown> | undefined {
    const file = path.join(dir, `Pulumi.${stack}.yaml`);
    if (!fs.existsSync(file)) return undefined;
    const values = (parseYaml(fs.readFileSync(file, "utf8"))?.config ?? {}) as Record<string, unknown>;
    const config: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(values)) {
        if (key.startsWith("bbb:")) config[key.slice(4)] = withPlaceholders(value);
    }
    const key = values["bbb:sshPrivateKey"] as { secure?: unknown } | undefined;
    config.sshPrivateKey =
        key?.secure === undefined ? PLACEHOLDER_PRIVATE_KEY : PLACEHOLDER_PRIVATE_KEY.replace("offline-placeholder", `offline-placeholder-${cipherDigest(key.secure)}`);
    return config;
}

/**
 * The keys (`bbb:<key>`) of Pulumi.<stack>.yaml whose value is, or holds, an encrypted (`secure:`) value, as the
 * engine lists them for the program (PULUMI_CONFIG_SECRET_KEYS); the private key too when the file has none.
 */
export function stackSecretKeys(dir: string, stack: string): string[] {
    const file = path.join(dir, `Pulumi.${stack}.yaml`);
    const values = (parseYaml(fs.readFileSync(file, "utf8"))?.config ?? {}) as Record<string, unknown>;
    const holdsSecret = (value: unknown): boolean =>
        value !== null && typeof value === "object" && ("secure" in value || Object.values(value).some(holdsSecret));
    // The plan puts its own placeholder in place of a private key the file does not hold: secret, as if set.
    const placeholder = values["bbb:sshPrivateKey"] === undefined ? ["bbb:sshPrivateKey"] : [];
    return [...Object.keys(values).filter((key) => holdsSecret(values[key])), ...placeholder];
}

export interface FirewallRule {
    protocol: string;
    ports: string;
    source: string;
    family: string;
    why: string;
}

/** Each host's effective ingress: the rules of every security group on its port, sorted. */
export function firewallOf(run: Run): Record<string, FirewallRule[]> {
    const rules = ofType(run, "openstack:networking/secGroupRule:SecGroupRule").filter((r) => r.inputs.direction === "ingress");
    const groupNames = new Map(ofType(run, "openstack:networking/secGroup:SecGroup").map((g) => [`${g.name}-id`, g.inputs.name as string]));
    const firewall: Record<string, FirewallRule[]> = {};
    for (const port of ofType(run, "openstack:networking/port:Port")) {
        const groups: string[] = port.inputs.securityGroupIds ?? [];
        firewall[port.name.replace(/-port$/, "")] = rules
            .filter((r) => groups.includes(r.inputs.securityGroupId))
            .map((r) => ({
                protocol: r.inputs.protocol ?? "any",
                ports: r.inputs.portRangeMin === undefined ? "any" : r.inputs.portRangeMin === r.inputs.portRangeMax ? `${r.inputs.portRangeMin}` : `${r.inputs.portRangeMin}-${r.inputs.portRangeMax}`,
                source: r.inputs.remoteIpPrefix ?? (r.inputs.remoteGroupId ? `group ${groupNames.get(r.inputs.remoteGroupId) ?? r.inputs.remoteGroupId}` : "any"),
                family: r.inputs.ethertype,
                why: r.inputs.description ?? "",
            }))
            .sort((a, b) => ruleKey(a).localeCompare(ruleKey(b), undefined, { numeric: true }));
    }
    return firewall;
}

/** A rule's identity: what it lets in (the reason is commentary). */
export function ruleKey(rule: FirewallRule): string {
    return `${rule.ports} ${rule.protocol} ${rule.family} ${rule.source}`;
}

/** The inputs of a resource without its ignoreChanges paths (e.g. `blockDevices[0].uuid`), or without those given. */
function compared(resource: Registered, ignoreChanges = resource.ignoreChanges): Record<string, unknown> {
    const inputs = JSON.parse(JSON.stringify(resource.inputs));
    for (const path of ignoreChanges) {
        const keys = path.split(/\.|\[(\d+)\]/).filter((k) => k !== undefined && k !== "");
        const holder = keys.slice(0, -1).reduce<any>((at, key) => (at === undefined ? undefined : at[key]), inputs);
        if (holder !== undefined) delete holder[keys[keys.length - 1]];
    }
    return inputs;
}

/**
 * The top-level inputs of a resource whose values differ between two runs, leaving out the ignoreChanges
 * paths of the later run (the engine applies the program's new options to the old and the new inputs alike).
 */
export function changedInputs(before: Registered, after: Registered): string[] {
    const [a, b] = [compared(before, after.ignoreChanges), compared(after)];
    return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k])).sort();
}

/**
 * What `pulumi up` would do going from one program run to the next: resources added, removed, changed (an input
 * differs, compared as the engine does: changedInputs).
 */
export function diff(before: Pick<Run, "resources">, after: Pick<Run, "resources">) {
    const byKey = (run: Pick<Run, "resources">) => new Map(run.resources.filter((r) => r.custom).map((r) => [`${r.type}::${r.name}`, r]));
    const [a, b] = [byKey(before), byKey(after)];
    const name = (key: string) => key.split("::")[1];
    return {
        added: [...b.keys()].filter((k) => !a.has(k)).map(name).sort(),
        removed: [...a.keys()].filter((k) => !b.has(k)).map(name).sort(),
        changed: [...b.keys()].filter((k) => a.has(k) && changedInputs(a.get(k)!, b.get(k)!).length > 0).map(name).sort(),
    };
}
