// The rules of the bbb policy pack, as plain functions over plain resource descriptions: no Pulumi runtime
// call, no PolicyPack. Each returns the violation messages of one resource (none: it passes, or the rule
// does not apply to it). policy/index.ts registers them; test/policy.test.ts calls them directly.
//
// The firewall rules read the port matrix of components/ports.ts, the table the security groups are made
// from, so the policy and the firewall cannot drift apart.
import { CONFIG_SCHEMA, KeySpec, PROJECT, PortRange, parseRange, reachesEveryone } from "../components/config";
import { PROD_STACK } from "../components/names";
import { PORT_MATRIX, Protocol, relayRangeProblem, Source } from "../components/ports";

export { PROD_STACK };

/** Resource types the rules look at (the providers' type tokens). */
export const TYPES = {
    secGroupRule: "openstack:networking/secGroupRule:SecGroupRule",
    dnsRecord: "cloudflare:index/dnsRecord:DnsRecord",
    volume: "openstack:blockstorage/volume:Volume",
    instance: "openstack:compute/instance:Instance",
    remoteCommand: "command:remote:Command",
} as const;

/** What a rule needs to know of a resource: what Pulumi registers, as plain data. */
export interface ResourceDescription {
    /** Type token, e.g. `openstack:networking/secGroupRule:SecGroupRule`. */
    type: string;
    /** `urn:pulumi:<stack>::<project>::<type>::<name>`; gives the stack when `stack` is absent. */
    urn?: string;
    name?: string;
    /** Inputs. Rules read only the fields they need (during a preview, reading an unknown value throws). */
    props: Readonly<Record<string, unknown>>;
    /** The `protect` resource option. */
    protect?: boolean;
    /** Stack name; wins over the URN's. */
    stack?: string;
    /** The URN of its parent: a security group rule's SecurityGroup component (its group's id may be unknown in a preview). */
    parent?: string;
}

/** The stack named in a URN (`urn:pulumi:<stack>::<project>::...`), or undefined. */
export function stackFromUrn(urn: string | undefined): string | undefined {
    const prefix = "urn:pulumi:";
    if (!urn || !urn.startsWith(prefix)) return undefined;
    const end = urn.indexOf("::", prefix.length);
    return end > prefix.length ? urn.slice(prefix.length, end) : undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Firewall: the port matrix as (protocol, range) entries.

/** turnRelayPorts' default (coturn's min-port/max-port), from the config schema. */
export const DEFAULT_TURN_RELAY: PortRange = parseRange(String(CONFIG_SCHEMA.turnRelayPorts.default))!;

export interface MatrixEntry {
    protocol: Protocol;
    from: number;
    to: number;
    source: Source;
    /** The TURN relay row (its range is the turnRelayPorts setting). */
    relay: boolean;
}

/** Every (protocol, range, source) the matrix opens, the relay row at `turnRelayPorts`. */
export function matrixEntries(turnRelayPorts: PortRange = DEFAULT_TURN_RELAY): MatrixEntry[] {
    return PORT_MATRIX.flatMap((row) => {
        const range = row.ports === "turnRelay" ? turnRelayPorts : row.ports;
        return row.protocols.map((protocol) => ({ protocol, from: range.from, to: range.to, source: row.source, relay: row.ports === "turnRelay" }));
    });
}

/**
 * Whether a UDP ingress range can be the TURN relay row. turnRelayPorts is a setting, so the policy cannot
 * know the stack's value: it accepts any UDP range the configuration itself accepts (relayRangeProblem in
 * components/ports.ts): 1024-65535, leaving out every other port of the matrix (so a widened media range,
 * 16384-40000, is never taken for a relay range) and every port never open to the world.
 */
export function isRelayRange(protocol: string, range: PortRange): boolean {
    return protocol === "udp" && relayRangeProblem(range) === undefined;
}

/** Protocol numbers Neutron accepts in place of names. */
const PROTOCOL_NAMES: Record<string, string> = { "1": "icmp", "6": "tcp", "17": "udp", "58": "ipv6-icmp" };

/** A rule's protocol, lower-case and named; undefined when it allows every protocol (absent, "", "any", "0"). */
export function protocolOf(value: unknown): string | undefined {
    if (value === undefined || value === null) return undefined;
    const text = String(value).trim().toLowerCase();
    if (text === "" || text === "any" || text === "0") return undefined;
    return PROTOCOL_NAMES[text] ?? text;
}

/** A rule's port range: "all" when neither end is set (Neutron: absent or 0 is every port). */
export function rangeOf(min: unknown, max: unknown): PortRange | "all" {
    const from = min === undefined || min === null || min === "" ? 0 : Number(min);
    const to = max === undefined || max === null || max === "" ? 0 : Number(max);
    if (from === 0 && to === 0) return "all";
    return { from, to };
}

/**
 * Whether a rule's source is the whole Internet: a prefix that reaches every public address of its family
 * (0.0.0.0/0, ::/0, but also ::/1 or 0::/2, which hold all of IPv6's global unicast 2000::/3: ipaddr.js's
 * ranges, as the configuration check reads them), any /0, or no prefix and no remote group, which Neutron
 * treats as any address.
 */
export function isWorldSource(remoteIpPrefix: unknown, remoteGroupId?: unknown): boolean {
    const prefix = remoteIpPrefix === undefined || remoteIpPrefix === null ? "" : String(remoteIpPrefix).trim();
    if (prefix !== "") return reachesEveryone([prefix]) !== undefined || /\/0+$/.test(prefix);
    return remoteGroupId === undefined || remoteGroupId === null || String(remoteGroupId).trim() === "";
}

const show = (range: PortRange) => (range.from === range.to ? `${range.from}` : `${range.from}-${range.to}`);

/** The ingress rule's fields the firewall rules read, or undefined for an egress rule or another type. */
function ingressRule(resource: ResourceDescription) {
    if (resource.type !== TYPES.secGroupRule) return undefined;
    const { props } = resource;
    // Anything but an explicit egress is judged as ingress.
    if (String(props.direction ?? "").toLowerCase() === "egress") return undefined;
    const protocol = protocolOf(props.protocol);
    const range = rangeOf(props.portRangeMin, props.portRangeMax);
    const prefix = props.remoteIpPrefix;
    const hasPrefix = prefix !== undefined && prefix !== null && String(prefix).trim() !== "";
    // The remote group is read only when there is no prefix (it may be unknown during a preview).
    const world = hasPrefix ? isWorldSource(prefix) : isWorldSource(undefined, props.remoteGroupId);
    const label = `${resource.name ?? "security group rule"}: ingress ${protocol ?? "any protocol"} ${range === "all" ? "all ports" : show(range)}`;
    return { protocol, range, world, prefix: hasPrefix ? String(prefix) : "any address", label };
}

/** Whether (protocol, range) is exactly one of `entries`, or a relay range. */
function inMatrix(protocol: string, range: PortRange, entries: readonly MatrixEntry[]): boolean {
    return entries.some((e) => e.protocol === protocol && e.from === range.from && e.to === range.to) || isRelayRange(protocol, range);
}

const WORLD_ENTRIES = matrixEntries().filter((e) => e.source === "world");
const ALL_ENTRIES = matrixEntries();
const SSH_PORT = 22;

/**
 * Policy 1, no admin port open to the world: an ingress rule from the world (0.0.0.0/0, ::/0, or no source)
 * must be exactly (protocol, from, to) of a world row of the matrix, or a relay range (isRelayRange). SSH
 * and everything else the matrix does not open to the world are violations.
 */
export function worldAdminPortViolations(resource: ResourceDescription): string[] {
    const rule = ingressRule(resource);
    if (!rule || !rule.world) return [];
    const { protocol, range } = rule;
    const opens = `${rule.label} from ${rule.prefix} is open to the world`;
    if (protocol === undefined) return [`${opens} for every protocol; the port matrix (components/ports.ts) opens single tcp/udp ports`];
    if (range === "all") return [`${opens} on every port; the port matrix (components/ports.ts) opens single ports and ranges`];
    if (inMatrix(protocol, range, WORLD_ENTRIES)) return [];
    const ssh = range.from <= SSH_PORT && SSH_PORT <= range.to && protocol === "tcp" ? "; SSH (22/tcp) is open only to sshAllowedCidrs" : "";
    return [`${opens}, but ${protocol} ${show(range)} is not a world row of the port matrix (components/ports.ts)${ssh}`];
}

/**
 * Policy 1b, no port open to the world in pieces: ingress rules of one security group for the same protocol and
 * ports, each from a narrower range, whose ranges together reach every public address of a family (0.0.0.0/1
 * and 128.0.0.0/1 are 0.0.0.0/0), for ports that are not a world row of the matrix. Rules are grouped by their
 * parent (the SecurityGroup component), which is known during a preview when the group's id is not. A stack
 * policy runs once every resource is registered: it stops a preview, but in `pulumi up --skip-preview` (the
 * automation API's up) it reports after the rules exist; the configuration check refuses such ranges first.
 */
export function worldInPiecesViolations(resources: readonly ResourceDescription[]): string[] {
    const pieces = new Map<string, { label: string; prefixes: string[] }>();
    for (const resource of resources) {
        // A rule from a remote group has no prefix: left out before ingressRule reads its remoteGroupId, which a
        // preview may not know yet (reading an unknown value throws, and the SDK would skip the whole policy).
        const prefix = resource.props.remoteIpPrefix;
        if (prefix === undefined || prefix === null || String(prefix).trim() === "") continue;
        const rule = ingressRule(resource);
        if (!rule || rule.world || rule.protocol === undefined || rule.range === "all") continue;
        if (inMatrix(rule.protocol, rule.range, WORLD_ENTRIES)) continue;
        const key = `${resource.parent ?? ""} ${rule.protocol} ${show(rule.range)}`;
        const group = pieces.get(key) ?? { label: `${resource.parent?.split("::").pop() ?? "a security group"}: ingress ${rule.protocol} ${show(rule.range)}`, prefixes: [] };
        group.prefixes.push(rule.prefix);
        pieces.set(key, group);
    }
    return [...pieces.values()].flatMap(({ label, prefixes }) => {
        const family = reachesEveryone(prefixes);
        return family ? [`${label} is open to every public ${family} address through ${prefixes.length} rules (${prefixes.join(", ")}), which is open to the world`] : [];
    });
}

/**
 * Policy 2, no rule wider than the matrix: whatever its source, an ingress rule must name a protocol and a
 * port range, and its (protocol, from, to) must be exactly a row of the matrix (or a relay range). Egress
 * rules are not judged.
 */
export function widerThanMatrixViolations(resource: ResourceDescription): string[] {
    const rule = ingressRule(resource);
    if (!rule) return [];
    const { protocol, range } = rule;
    const problems: string[] = [];
    if (protocol === undefined) problems.push(`${rule.label} allows every protocol; name tcp or udp as the port matrix does`);
    if (range === "all") problems.push(`${rule.label} allows every port; give the port matrix's range`);
    if (problems.length > 0 || protocol === undefined || range === "all") return problems;
    if (inMatrix(protocol, range, ALL_ENTRIES)) return [];
    const covered = ALL_ENTRIES.filter((e) => e.protocol === protocol && range.from <= e.from && e.to <= range.to);
    const wider = covered.length > 0 ? `, wider than the matrix's ${protocol} ${show(covered[0])}` : "";
    return [`${rule.label} is not a row of the port matrix (components/ports.ts)${wider}`];
}

// ---------------------------------------------------------------------------------------------------------
// DNS and data.

/**
 * Policy 3, no proxied DNS record: media, TURN and the installers' address checks need the host's own
 * address, not Cloudflare's proxy.
 */
export function proxiedDnsViolations(resource: ResourceDescription): string[] {
    if (resource.type !== TYPES.dnsRecord) return [];
    const proxied = resource.props.proxied;
    if (proxied !== true && String(proxied).toLowerCase() !== "true") return [];
    return [
        `${resource.name ?? "DNS record"} is proxied by Cloudflare: media (UDP), TURN and the installers' address checks need the host's own address; set proxied: false`,
    ];
}

/**
 * Policy 4, no unprotected data volume in prod: a block storage volume in the stack named "prod" must have
 * `protect`, but for the volumes of a bake (metadata `bbb-bake`: a golden volume, its builder's disk, a baked
 * server's boot disk), which hold what the bake or the golden volume makes again, and go with their server.
 */
/** The config key that lets the prod stack replace or delete BBB servers and unprotected data volumes. */
export const DESTRUCTIVE_KEY = "allowDestructiveChanges";

export function unprotectedProdVolumeViolations(resource: ResourceDescription, destructiveAllowed = false): string[] {
    if (resource.type !== TYPES.volume || destructiveAllowed) return [];
    if ((resource.props.metadata as Record<string, unknown> | undefined)?.["bbb-bake"] !== undefined) return [];
    const stack = resource.stack ?? stackFromUrn(resource.urn);
    if (stack !== PROD_STACK || resource.protect === true) return [];
    return [
        `${resource.name ?? "volume"} is a data volume of the ${PROD_STACK} stack without protect: pulumi destroy or a replacement would delete its databases; keep protectData true, or set ${DESTRUCTIVE_KEY}: true for this change`,
    ];
}

/** A BBB server's VM (metadata role bbb) of the prod stack must be protected: replacing or deleting it ends its meetings. */
export function unprotectedProdServerViolations(resource: ResourceDescription, destructiveAllowed = false): string[] {
    if (resource.type !== TYPES.instance || destructiveAllowed) return [];
    const stack = resource.stack ?? stackFromUrn(resource.urn);
    if (stack !== PROD_STACK || resource.protect === true) return [];
    const metadata = resource.props.metadata as Record<string, unknown> | undefined;
    if (metadata?.role !== "bbb") return [];
    return [
        `${resource.name ?? "instance"} is a BigBlueButton server of the ${PROD_STACK} stack without protect: a replacement or deletion would end its meetings; set ${DESTRUCTIVE_KEY}: true for the change that needs it`,
    ];
}

// ---------------------------------------------------------------------------------------------------------
// Recordings and privacy.

/** The `privacy` value under which recordings must be off. */
export const STRICT_PRIVACY = "strict";
/** The config key (bbb:privacy) a later change adds. */
export const PRIVACY_KEY = "privacy";
/** The remote step that writes bbb-web.properties overrides (components/bbb.ts). */
export const CONFIGURE_STEP = "bbb-configure";

/** `key=value` lines (blank lines and # comments skipped; the last of a key wins). */
export function parseProperties(lines: string): Record<string, string> {
    const properties: Record<string, string> = {};
    for (const line of lines.split(/\r?\n/)) {
        const text = line.trim();
        if (text === "" || text.startsWith("#")) continue;
        const eq = text.indexOf("=");
        if (eq <= 0) continue;
        properties[text.slice(0, eq).trim()] = text.slice(eq + 1).trim();
    }
    return properties;
}

/** Recordings are off when bbb-web ignores the API's record=true: disableRecordingDefault=true. */
export function recordingsOff(properties: string | Readonly<Record<string, string>>): boolean {
    const map = typeof properties === "string" ? parseProperties(properties) : properties;
    return (map.disableRecordingDefault ?? "").trim().toLowerCase() === "true";
}

/**
 * Policy 5, recordings off when privacy is strict: with `privacy` strict, the properties the configure step
 * writes must turn recordings off (disableRecordingDefault=true; bbb-web's own default is false). Any other
 * privacy value, or none, passes.
 */
export function recordingViolations(privacy: string | undefined, properties: string | Readonly<Record<string, string>>): string[] {
    if ((privacy ?? "").trim().toLowerCase() !== STRICT_PRIVACY) return [];
    if (recordingsOff(properties)) return [];
    const map = typeof properties === "string" ? parseProperties(properties) : properties;
    const value = map.disableRecordingDefault;
    const now = value === undefined ? "leaves disableRecordingDefault unset (bbb-web's default: false)" : `sets disableRecordingDefault=${value}`;
    return [`privacy is ${STRICT_PRIVACY} but BigBlueButton's properties record meetings: the configure step ${now}; it must set disableRecordingDefault=true`];
}

/**
 * The inputs a remote step's stdin carries (components/remote.ts stepStdin): its leading `NAME='value'`
 * shell assignments, single-quoted with `'\''` for a quote, up to the script's `{` line.
 */
export function stepInputs(stdin: string): Record<string, string> {
    const inputs: Record<string, string> = {};
    let i = 0;
    for (;;) {
        const m = /^([A-Z][A-Z0-9_]*)='/.exec(stdin.slice(i, i + 200));
        if (!m) return inputs;
        i += m[0].length;
        let value = "";
        for (;;) {
            const quote = stdin.indexOf("'", i);
            if (quote < 0) return inputs;
            value += stdin.slice(i, quote);
            if (stdin.startsWith("'\\''", quote)) {
                value += "'";
                i = quote + 4;
                continue;
            }
            i = quote + 1;
            break;
        }
        inputs[m[1]] = value;
        if (stdin[i] !== "\n") return inputs;
        i += 1;
    }
}

/** Whether a resource is the bbb-configure step: a remote command whose create command names it. */
export function isConfigureStep(resource: ResourceDescription): boolean {
    if (resource.type !== TYPES.remoteCommand) return false;
    return new RegExp(`#\\s*${CONFIGURE_STEP}\\s*$`).test(String(resource.props.create ?? ""));
}

/**
 * The PROPERTIES lines of a bbb-configure step (from its stdin), or undefined for any other resource. Reads
 * stdin only for that step: other steps' stdin may be unknown during a preview.
 */
export function configureStepProperties(resource: ResourceDescription): string | undefined {
    if (!isConfigureStep(resource)) return undefined;
    const inputs = stepInputs(String(resource.props.stdin ?? ""));
    if (inputs.STEP !== undefined && inputs.STEP !== CONFIGURE_STEP) return undefined;
    return inputs.PROPERTIES ?? "";
}

/** Policy 5 on a resource: the configure step's properties against `privacy`. */
export function privacyRecordingViolations(privacy: string | undefined, resource: ResourceDescription): string[] {
    if ((privacy ?? "").trim().toLowerCase() !== STRICT_PRIVACY) return [];
    const properties = configureStepProperties(resource);
    if (properties === undefined) return [];
    return recordingViolations(privacy, properties).map((m) => `${resource.name ?? CONFIGURE_STEP}: ${m}`);
}

/** A key of the stack's configuration (the JSON the engine hands a policy pack in PULUMI_CONFIG), if set. */
function configValue(pulumiConfigJson: string | undefined, key: string): unknown {
    try {
        const parsed: unknown = JSON.parse(pulumiConfigJson ?? "{}");
        return parsed && typeof parsed === "object" ? (parsed as Record<string, unknown>)[`${PROJECT}:${key}`] : undefined;
    } catch {
        return undefined;
    }
}

/**
 * The stack's `privacy` setting, when it can be known: `bbb:privacy` in the stack's configuration, else the
 * config schema's default once the program declares the key. Undefined otherwise: policy 5 is then not registered.
 */
export function privacySetting(
    pulumiConfigJson: string | undefined,
    schema: Readonly<Record<string, KeySpec | undefined>> = CONFIG_SCHEMA,
): string | undefined {
    const value = configValue(pulumiConfigJson, PRIVACY_KEY);
    if (typeof value === "string") return value;
    const fallback = schema[PRIVACY_KEY]?.default;
    return typeof fallback === "string" ? fallback : undefined;
}

/** `bbb:allowDestructiveChanges` is true in the stack's configuration (PULUMI_CONFIG holds it as a string). */
export function destructiveChangesAllowed(pulumiConfigJson: string | undefined): boolean {
    const value = configValue(pulumiConfigJson, DESTRUCTIVE_KEY);
    return value === true || value === "true";
}
