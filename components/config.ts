// The configuration schema, its defaults and its validation. Pure: `parseConfig` takes the raw values the
// engine hands a program (strings; JSON for arrays and objects) and returns every problem at once.
// Only `loadConfig` touches the Pulumi runtime, and only index.ts calls it.
import * as pulumi from "@pulumi/pulumi";
import * as ipaddr from "ipaddr.js";
import { relayRangeProblem, SIP_PORT } from "./ports";
import { bbbHostName } from "./names";

export const PROJECT = "bbb";

export type Role = "turn" | "bbb" | "scalelite" | "greenlight";
export const ROLES: readonly Role[] = ["turn", "bbb", "scalelite", "greenlight"];

export interface NetworkSettings {
    /** `provider`: the VMs sit on a network with public addresses; `floating`: tenant network + floating IPs. */
    mode: "provider" | "floating";
    /** The network the hosts' ports are created on. */
    name: string;
    /** The external network floating IPs come from (floating mode only). */
    floatingIpPool?: string;
}

export interface DnsSettings {
    /** `cloudflare` creates the records; `none` lists the records the operator must create. */
    provider: "cloudflare" | "none";
    /** Cloudflare zone id of `domain` (cloudflare only). */
    zoneId?: string;
}

export interface PortRange {
    from: number;
    to: number;
}

/** The validated configuration, secrets wrapped as Pulumi secrets. */
export interface Settings {
    domain: string;
    hostnamePrefix: string;
    /** The name consumers call the API on, <prefix><apiHostname>.<domain>: bbb-1 alone, Scalelite in a pool. */
    apiHostname: string;
    letsEncryptEmail: string;
    sshAllowedCidrs: string[];
    allowSshFromAnywhere: boolean;
    sshPublicKey: string;
    sshPrivateKey: pulumi.Output<string>;
    image: string;
    flavors: Record<Role, string>;
    volumeSizes: Record<Role, number>;
    bbbVersion: string;
    network: NetworkSettings;
    poolSize: number;
    scalelite: boolean;
    greenlight: boolean;
    dns: DnsSettings;
    turnRelayPorts: PortRange;
    bbbInstallerRef: string;
    forceReinstall: boolean;
    bbbRelease: number;
    /** Absent: no rolling upgrade under way. */
    upgrade?: UpgradeSettings;
    scaleliteVersion: string;
    greenlightVersion: string;
    consumers: string[];
    drain: string[];
    forceRemove: boolean;
    /** The prod stack: let pulumi up replace or delete BBB servers and unprotected data volumes. */
    allowDestructiveChanges: boolean;
    dataVolumeSizes: Record<DataRole, number>;
    protectData: boolean;
    privacy: "strict" | "standard";
    recordings: RecordingSettings;
    /** Absent: no phone dial-in. */
    dialIn?: DialInSettings;
    webhooks: boolean;
    webhookUrls: string[];
    secretGeneration: number;
    consumerSecretGenerations: Record<string, number>;
}

/** A rolling upgrade of the pool to bbbRelease, `servers` at a time. */
export interface UpgradeSettings {
    /** bbb-1 .. bbb-<servers> run bbbRelease; the others still run the release before. */
    servers: number;
    /** What the release before was built from (defaults: bbbVersion, image, bbbInstallerRef). */
    from: { bbbVersion: string; image: string; installerRef: string };
}

export interface RecordingSettings {
    /** Record meetings (refused with privacy strict). */
    enabled: boolean;
    /** Days a published recording is kept. */
    retentionDays: number;
    /** Also render every recording as a downloadable video (BBB's video playback format). */
    video: boolean;
}

export interface DialInSettings {
    /** The phone number callers dial, as shown in the welcome message, e.g. +49 30 1234567. */
    number: string;
    /** The SIP provider's addresses: the only sources allowed to the SIP port. */
    sipProviderCidrs: string[];
    gateway: { host: string; username: string; password: pulumi.Output<string> };
}

/** Roles that keep data on a volume of their own: databases and Redis, or bbb's recordings (single topology). */
export type DataRole = "bbb" | "scalelite" | "greenlight";
export const DATA_ROLES: readonly DataRole[] = ["bbb", "scalelite", "greenlight"];

type KeyType = "string" | "boolean" | "integer" | "array" | "object";

export interface KeySpec {
    type: KeyType;
    description: string;
    /** Absent: the key is required, unless `optional`. */
    default?: unknown;
    /** The key may be left unset (no default: the feature is off). */
    optional?: boolean;
    secret?: boolean;
    /** A value that passes validation, used in the README and in every "fix" hint. */
    example: unknown;
}

export type ConfigKey = keyof Settings;

/** The schema. Pulumi.yaml declares the same keys with the same defaults (a test keeps them together). */
export const CONFIG_SCHEMA: Record<ConfigKey, KeySpec> = {
    domain: {
        type: "string",
        description: "DNS zone the hosts are named in, e.g. example.org.",
        example: "example.org",
    },
    hostnamePrefix: {
        type: "string",
        default: "",
        description: "Prefix of every host name: <prefix><host>.<domain> (dev uses dev-).",
        example: "dev-",
    },
    apiHostname: {
        type: "string",
        default: "bbb",
        description:
            "Host name consumers call the API on, <prefix><apiHostname>.<domain>: bbb-1 answers it alone, Scalelite in a pool, so growing to a pool changes nothing for them.",
        example: "meet",
    },
    letsEncryptEmail: {
        type: "string",
        description: "E-mail address for Let's Encrypt certificates.",
        example: "ops@example.org",
    },
    sshAllowedCidrs: {
        type: "array",
        description: "IPv4/IPv6 CIDRs allowed to reach SSH (22/tcp) on every host.",
        example: ["198.51.100.0/24", "2001:db8:100::/48"],
    },
    allowSshFromAnywhere: {
        type: "boolean",
        default: false,
        description: "Allow a world range (0.0.0.0/0, ::/0) in sshAllowedCidrs.",
        example: true,
    },
    sshPublicKey: {
        type: "string",
        description: "OpenSSH public key installed on every host (user ubuntu).",
        example: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB6Yp3pQ7nHc5oQ3lQe8Y5jv1mN0w2kq6d0hTqX9c6sZ ops@example.org",
    },
    sshPrivateKey: {
        type: "string",
        secret: true,
        description: "Private key matching sshPublicKey, used to run the install steps (a secret).",
        example: "-----BEGIN OPENSSH PRIVATE KEY-----",
    },
    image: {
        type: "string",
        default: "Ubuntu 22.04",
        description: "Glance image name of every host (Ubuntu 22.04 for BBB 3.0).",
        example: "Ubuntu 22.04 Jammy Jellyfish",
    },
    flavors: {
        type: "object",
        default: { turn: "m1.medium", bbb: "m1.xlarge", scalelite: "m1.large", greenlight: "m1.medium" },
        description: "Nova flavor per role (turn, bbb, scalelite, greenlight).",
        example: { bbb: "m1.2xlarge" },
    },
    volumeSizes: {
        type: "object",
        default: { turn: 20, bbb: 80, scalelite: 40, greenlight: 30 },
        description: "Boot volume size in GB per role (turn, bbb, scalelite, greenlight).",
        example: { bbb: 200 },
    },
    bbbVersion: {
        type: "string",
        default: "jammy-300",
        description: "BigBlueButton package line for bbb-install.sh -v (jammy-30x needs Ubuntu 22.04).",
        example: "jammy-300",
    },
    network: {
        type: "object",
        description: "Where the hosts' ports live: { mode: provider or floating, name, floatingIpPool }.",
        example: { mode: "floating", name: "private", floatingIpPool: "public" },
    },
    poolSize: {
        type: "integer",
        default: 1,
        description: "Number of BigBlueButton servers (bbb-1 .. bbb-N); more than 1 needs scalelite.",
        example: 3,
    },
    scalelite: {
        type: "boolean",
        default: false,
        description: "Put a Scalelite load balancer in front of the BBB pool.",
        example: true,
    },
    greenlight: {
        type: "boolean",
        default: false,
        description: "Deploy Greenlight (on bbb-1 without Scalelite, on its own host with it).",
        example: true,
    },
    dns: {
        type: "object",
        description: "DNS records: { provider: cloudflare or none, zoneId } (token in cloudflare:apiToken).",
        example: { provider: "cloudflare", zoneId: "023e105f4ecef8ad9ca31a8372d0c353" },
    },
    turnRelayPorts: {
        type: "string",
        default: "32769-65535",
        description: "UDP relay port range of coturn, opened on the TURN host's security group.",
        example: "32769-65535",
    },
    bbbInstallerRef: {
        type: "string",
        default: "",
        description: "Git ref (branch, tag or commit) of bbb-install.sh to run; empty: the commit of bbbVersion's release branch this program was checked against.",
        example: "v3.0.x-release",
    },
    forceReinstall: {
        type: "boolean",
        default: false,
        description: "Restart BigBlueButton (installer, new secret or properties, a single server's resize) even while meetings are running or its API does not say (they end).",
        example: true,
    },
    bbbRelease: {
        type: "integer",
        default: 1,
        description: "Release of the pool's BBB servers, in their names from 2 on (bbb-1-r2); raise it to replace them by new ones.",
        example: 2,
    },
    upgrade: {
        type: "object",
        optional: true,
        description: "Rolling upgrade to bbbRelease: { servers, from: { bbbVersion, image, bbbInstallerRef } }; bbb-1 .. bbb-<servers> are replaced, the others keep the release before.",
        example: { servers: 1, from: { bbbVersion: "jammy-300" } },
    },
    scaleliteVersion: {
        type: "string",
        default: "v1.8.5",
        description: "Tag of the Scalelite images (blindsidenetwks/scalelite:<tag>-api, -nginx, -poller, -recording-importer).",
        example: "v1.8.5",
    },
    greenlightVersion: {
        type: "string",
        default: "v3.8.2.4",
        description: "Tag of the Greenlight image (bigbluebutton/greenlight:<tag>), on its own host in a pool, on bbb-1 in the single topology.",
        example: "v3.8.2.4",
    },
    consumers: {
        type: "array",
        default: ["default"],
        description: "Scalelite consumers (e.g. mattermost, pod, moodle), each with its own load-balancer secret.",
        example: ["mattermost", "pod"],
    },
    drain: {
        type: "array",
        default: [],
        description: "BBB servers to drain (cordon in Scalelite: no new meetings) before scaling down, e.g. [bbb-3].",
        example: ["bbb-3"],
    },
    forceRemove: {
        type: "boolean",
        default: false,
        description: "Remove BBB servers from the pool, or delete or replace their VMs, even while meetings are running on them or they do not answer (they end).",
        example: true,
    },
    allowDestructiveChanges: {
        type: "boolean",
        default: false,
        description:
            "In the prod stack, let pulumi up replace or delete BBB servers (scale-down, a release, a new boot volume size, --replace) and data volumes once protectData is false; without it their VMs are protected there and the policy pack refuses unprotected ones.",
        example: true,
    },
    dataVolumeSizes: {
        type: "object",
        default: { bbb: 100, scalelite: 20, greenlight: 10 },
        description: "Data volume size in GB: bbb-1's recordings (single topology), Scalelite's and Greenlight's databases.",
        example: { scalelite: 50 },
    },
    protectData: {
        type: "boolean",
        default: true,
        description: "Protect the data volumes from deletion (pulumi destroy and replacements stop at them).",
        example: false,
    },
    privacy: {
        type: "string",
        default: "strict",
        description: "strict: no recordings, access logs off, quiet logs kept one day; standard: BigBlueButton's defaults.",
        example: "standard",
    },
    recordings: {
        type: "object",
        default: { enabled: false, retentionDays: 14, video: false },
        description: "Recordings: { enabled, retentionDays, video } (enabled needs privacy standard).",
        example: { enabled: true, retentionDays: 30, video: true },
    },
    dialIn: {
        type: "object",
        optional: true,
        description: "Phone dial-in: { number, sipProviderCidrs, gateway: { host, username, password } } (password secret).",
        example: { number: "+49 30 1234567", sipProviderCidrs: ["192.0.2.0/24"], gateway: { host: "sip.example.net", username: "4930123", password: "[secret]" } },
    },
    webhooks: {
        type: "boolean",
        default: false,
        description: "Install bbb-webhooks on every BBB server.",
        example: true,
    },
    webhookUrls: {
        type: "array",
        default: [],
        description: "Permanent webhook URLs (https) every BBB server calls for every event (needs webhooks).",
        example: ["https://hooks.example.org/bbb"],
    },
    secretGeneration: {
        type: "integer",
        default: 1,
        description: "Raise it to replace the BBB servers' API secrets (single topology: the one secret), server by server.",
        example: 2,
    },
    consumerSecretGenerations: {
        type: "object",
        default: {},
        description: "Per consumer, a number to raise to replace that consumer's Scalelite secret alone, e.g. { pod: 2 }.",
        example: { pod: 2 },
    },
};

export const CONFIG_KEYS = Object.keys(CONFIG_SCHEMA) as ConfigKey[];

/**
 * The largest pool one stack declares (npm run bench measures pools up to 64): each BBB server is about a dozen
 * resources (VM, port, addresses, DNS records, steps), so a typo of 1000 would declare some 13,000; a larger
 * platform is several stacks.
 */
export const MAX_POOL_SIZE = 100;

/**
 * BBB package lines this program installs: the Ubuntu release each needs and the bbb-install.sh it runs by
 * default, a commit of the line's release branch: the head of it when docs/upstream.md was read, so that what
 * the steps rely on does not move under them. BigBlueButton 3.0 only: 2.7 (focal-27x) was never checked, and
 * its installer's yq (v3) does not read the \`yq e\` the steps use.
 */
export const BBB_LINES: Record<string, { ubuntu: string; codename: string; installerBranch: string; installerRef: string }> = {
    "jammy-30": { ubuntu: "22.04", codename: "jammy", installerBranch: "v3.0.x-release", installerRef: "26ce2d16c2a82ef962d685525b0c20bb89d4d151" },
};

const UBUNTU_CODENAMES: Record<string, string> = { focal: "20.04", jammy: "22.04", noble: "24.04" };

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
    const items = problems.map(
        (p) => `  ${p.key}\n    expected: ${p.expected}\n    given:    ${p.given}\n    fix:      ${p.fix}`,
    );
    return [head, ...items].join("\n");
}

/** What a user typed, for messages; never the value of a secret key. */
function show(value: unknown): string {
    if (value === undefined) return "nothing (the key is not set)";
    const text = JSON.stringify(value);
    return text.length > 100 ? `${text.slice(0, 97)}...` : text;
}

function setCommand(key: string, value: unknown, secret = false): string {
    const flag = secret ? " --secret" : "";
    if (typeof value === "object" && value !== null) {
        return `pulumi config set${flag} --path ${key}... (e.g. ${key}: ${JSON.stringify(value)} in Pulumi.<stack>.yaml)`;
    }
    const text = String(value);
    return `pulumi config set${flag} ${key} ${/[\s"']/.test(text) ? `'${text}'` : text}`;
}

/** Raw values as the engine gives them: `bbb:<key>` -> string. */
export type RawConfig = Record<string, string | undefined>;

/** Dial-in settings before the password is wrapped as a Pulumi secret. */
type PlainDialIn = Omit<DialInSettings, "gateway"> & { gateway: { host: string; username: string; password: string } };

interface Parsed {
    /** The settings, secrets still plain (loadConfig wraps them). */
    settings?: Omit<Settings, "sshPrivateKey" | "dialIn"> & { sshPrivateKey: string; dialIn?: PlainDialIn };
    problems: ConfigProblem[];
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const SSH_PUBLIC_KEY = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( .*)?$/;
const PRIVATE_KEY = /^-----BEGIN (OPENSSH|RSA|EC) PRIVATE KEY-----\r?\n[\s\S]+\n-----END \1 PRIVATE KEY-----\s*$/;
const ZONE_ID = /^[0-9a-f]{32}$/;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
/** The longest host name but the BBB servers', whose names grow with the pool and its release. */
const LONGEST_HOST = "greenlight";
/** Every name a host of a stack can have (components/names.ts). */
const HOST_NAME = /^(turn|scalelite|greenlight|bbb-[0-9]+(-r[0-9]+)?)$/;

/**
 * Validates raw configuration and returns the settings only when there is no problem. That a secret key
 * holds an encrypted value is the CLI's check (Pulumi.yaml declares it `secret: true`).
 */
export function parseConfig(raw: RawConfig): Parsed {
    const problems: ConfigProblem[] = [];
    const problem = (key: string, expected: string, given: string, fix: string) =>
        problems.push({ key, expected, given, fix });

    // Unknown keys in our namespace are typos more often than not.
    for (const fullKey of Object.keys(raw)) {
        if (!fullKey.startsWith(`${PROJECT}:`)) continue;
        const key = fullKey.slice(PROJECT.length + 1);
        if (!(key in CONFIG_SCHEMA)) {
            const near = CONFIG_KEYS.find((k) => k.toLowerCase() === key.toLowerCase() || editDistance(k, key) <= 2);
            problem(
                key,
                `one of the known keys (${CONFIG_KEYS.join(", ")})`,
                `an unknown key ${show(key)}`,
                near
                    ? `rename it: pulumi config rm ${key} && pulumi config set ${near} ...`
                    : `remove it: pulumi config rm ${key}`,
            );
        }
    }

    // Step 1: types and defaults, key by key.
    const values: Record<string, unknown> = {};
    for (const key of CONFIG_KEYS) {
        const spec = CONFIG_SCHEMA[key];
        const text = raw[`${PROJECT}:${key}`];
        const exampleFix = setCommand(key, spec.example, spec.secret);
        if (text === undefined || (spec.type === "string" && text === "" && spec.default === undefined)) {
            if (spec.optional) continue;
            if (spec.default === undefined) {
                problem(key, `a value (${spec.description})`, show(undefined), exampleFix);
            } else {
                values[key] = spec.default;
            }
            continue;
        }
        const given = spec.secret ? "a secret value" : show(text);
        const typed = parseTyped(spec.type, text);
        if (typed === undefined) {
            problem(key, `${article(spec.type)} ${spec.type} (${spec.description})`, given, exampleFix);
            continue;
        }
        values[key] = typed;
    }

    // Step 2: the value of each key, and rules that tie keys together.
    const str = (key: ConfigKey) => (typeof values[key] === "string" ? (values[key] as string) : undefined);

    const domain = str("domain");
    if (domain !== undefined) {
        const labels = domain.split(".");
        if (domain !== domain.toLowerCase()) {
            problem("domain", "a lower-case DNS name", show(domain), setCommand("domain", domain.toLowerCase()));
        } else if (labels.length < 2 || !labels.every((l) => LABEL.test(l)) || domain.length > 200) {
            problem(
                "domain",
                "a DNS zone name such as example.org (letters, digits, hyphens; at least two labels)",
                show(domain),
                setCommand("domain", "example.org"),
            );
        }
    }

    const prefix = str("hostnamePrefix");
    if (prefix !== undefined && prefix !== "") {
        const whole = (key: ConfigKey) => (Number.isInteger(values[key]) && (values[key] as number) >= 1 ? (values[key] as number) : 1);
        const longest = Math.max(LONGEST_HOST.length, bbbHostName(whole("poolSize"), whole("bbbRelease")).length);
        if (!/^[a-z0-9][a-z0-9-]*$/.test(prefix) || prefix.length + longest > 63) {
            problem(
                "hostnamePrefix",
                `empty, or lower-case letters, digits and hyphens, starting with a letter or digit, at most ${63 - longest} characters`,
                show(prefix),
                setCommand("hostnamePrefix", "dev-"),
            );
        }
    }

    const apiHostname = str("apiHostname");
    if (apiHostname !== undefined) {
        const room = 63 - (prefix !== undefined && LABEL.test(`${prefix}x`) ? prefix.length : 0);
        if (!LABEL.test(apiHostname) || apiHostname.length > room || HOST_NAME.test(apiHostname)) {
            problem(
                "apiHostname",
                `a DNS label of its own (lower-case letters, digits, hyphens; at most ${room} characters with hostnamePrefix), not a host's name (turn, scalelite, greenlight, bbb-<n>)`,
                show(apiHostname),
                setCommand("apiHostname", "meet"),
            );
        }
    }

    const email = str("letsEncryptEmail");
    if (email !== undefined && !EMAIL.test(email)) {
        problem("letsEncryptEmail", "an e-mail address", show(email), setCommand("letsEncryptEmail", "ops@example.org"));
    }

    const cidrs = values.sshAllowedCidrs;
    if (Array.isArray(cidrs)) {
        if (cidrs.length === 0) {
            problem(
                "sshAllowedCidrs",
                "at least one CIDR (the addresses you administer the hosts from)",
                show(cidrs),
                `pulumi config set --path 'sshAllowedCidrs[0]' 198.51.100.0/24`,
            );
        }
        cidrs.forEach((cidr, i) => {
            const checked = checkCidr(cidr);
            if (typeof checked === "string") {
                problem(`sshAllowedCidrs[${i}]`, checked, show(cidr), `pulumi config set --path 'sshAllowedCidrs[${i}]' 198.51.100.0/24`);
            } else if (checked.canonical !== cidr) {
                problem(
                    `sshAllowedCidrs[${i}]`,
                    "a CIDR in canonical form (network address, lower case, compressed)",
                    show(cidr),
                    `pulumi config set --path 'sshAllowedCidrs[${i}]' ${checked.canonical}`,
                );
            } else if (cidrs.indexOf(cidr) < i) {
                problem(
                    `sshAllowedCidrs[${i}]`,
                    `each range once (a firewall rule per range: two would share a name, which Pulumi refuses); it is sshAllowedCidrs[${cidrs.indexOf(cidr)}] already`,
                    show(cidr),
                    `pulumi config rm --path 'sshAllowedCidrs[${i}]'`,
                );
            } else if (checked.prefix === 0 && values.allowSshFromAnywhere !== true) {
                problem(
                    `sshAllowedCidrs[${i}]`,
                    "a range narrower than the whole Internet: SSH is never open to the world by default",
                    show(cidr),
                    `pulumi config set --path 'sshAllowedCidrs[${i}]' 198.51.100.0/24  (or, knowingly: pulumi config set allowSshFromAnywhere true)`,
                );
            }
        });
    }

    const publicKey = str("sshPublicKey");
    if (publicKey !== undefined && !SSH_PUBLIC_KEY.test(publicKey.trim())) {
        problem(
            "sshPublicKey",
            "an OpenSSH public key line (ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp*)",
            show(publicKey),
            `pulumi config set sshPublicKey "$(cat ~/.ssh/id_ed25519.pub)"`,
        );
    }

    const privateKey = str("sshPrivateKey");
    if (privateKey !== undefined && !PRIVATE_KEY.test(privateKey)) {
        problem(
            "sshPrivateKey",
            "a PEM/OpenSSH private key without passphrase (-----BEGIN ... PRIVATE KEY----- ... -----END ... PRIVATE KEY-----)",
            "a secret value that is not such a key (not shown)",
            "pulumi config set --secret sshPrivateKey < ~/.ssh/id_ed25519",
        );
    }

    const image = str("image");
    if (image !== undefined && image.trim() === "") {
        problem("image", "a Glance image name", show(image), setCommand("image", CONFIG_SCHEMA.image.default));
    }

    const flavors = checkRoleMap(values, "flavors", problem, (v) =>
        typeof v === "string" && v.trim() !== "" ? undefined : "a flavor name",
    ) as Record<Role, string> | undefined;
    const volumeSizes = checkRoleMap(values, "volumeSizes", problem, (v) =>
        Number.isInteger(v) && (v as number) >= 10 && (v as number) <= 16384 ? undefined : "a whole number of GB from 10 to 16384",
    ) as Record<Role, number> | undefined;

    // A package line bbb-install.sh knows, on an image of the Ubuntu release it needs.
    const checkVersion = (key: string, version: unknown, imageName: string | undefined) => {
        const line = typeof version === "string" ? BBB_LINES[version.slice(0, -1)] : undefined;
        if (!line || !/^[a-z]+-\d{3}$/.test(version as string)) {
            problem(
                key,
                `a BigBlueButton package line: ${Object.keys(BBB_LINES).map((l) => `${l}x`).join(" or ")} (BigBlueButton 3.0; 2.7, focal-27x, is not supported)`,
                show(version),
                key === "bbbVersion" ? setCommand(key, CONFIG_SCHEMA.bbbVersion.default) : `pulumi config set --path ${key} ${CONFIG_SCHEMA.bbbVersion.default}`,
            );
            return;
        }
        const release = imageName === undefined ? undefined : ubuntuReleaseOf(imageName);
        if (release !== undefined && release !== line.ubuntu) {
            const matching = Object.entries(BBB_LINES).find(([, l]) => l.ubuntu === release);
            const imageKey = key === "bbbVersion" ? "image" : "upgrade.from.image";
            problem(
                key,
                `an image of Ubuntu ${line.ubuntu} (${line.codename}) for ${String(version)}`,
                `${imageKey} ${show(imageName)}, which is Ubuntu ${release}`,
                `pulumi config set${imageKey === "image" ? "" : " --path"} ${imageKey} 'Ubuntu ${line.ubuntu}'` +
                    (matching ? `  (or: pulumi config set${key === "bbbVersion" ? "" : " --path"} ${key} ${matching[0]}0)` : ""),
            );
        }
    };
    const bbbVersion = str("bbbVersion");
    if (bbbVersion !== undefined) checkVersion("bbbVersion", bbbVersion, image);

    const network = checkObject(values, "network", ["mode", "name", "floatingIpPool"], problem);
    if (network) {
        const example = CONFIG_SCHEMA.network.example;
        if (network.mode !== "provider" && network.mode !== "floating") {
            problem("network.mode", `"provider" or "floating"`, show(network.mode), `pulumi config set --path network.mode floating`);
        }
        if (typeof network.name !== "string" || network.name === "") {
            problem("network.name", "the name of the network the hosts are attached to", show(network.name), `pulumi config set --path network.name private`);
        }
        if (network.mode === "floating" && (typeof network.floatingIpPool !== "string" || network.floatingIpPool === "")) {
            problem(
                "network.floatingIpPool",
                "the external network floating IPs come from (network.mode is floating)",
                show(network.floatingIpPool),
                `pulumi config set --path network.floatingIpPool public`,
            );
        }
        if (network.mode === "provider" && network.floatingIpPool !== undefined) {
            problem(
                "network.floatingIpPool",
                "no floating IP pool with network.mode provider (the hosts get public addresses from the network)",
                show(network.floatingIpPool),
                `pulumi config rm --path network.floatingIpPool  (or: pulumi config set --path network.mode floating; see ${JSON.stringify(example)})`,
            );
        }
    }

    const poolSize = values.poolSize;
    if (typeof poolSize === "number" && poolSize < 1) {
        problem("poolSize", "a whole number of at least 1", show(poolSize), setCommand("poolSize", 1));
    } else if (typeof poolSize === "number" && poolSize > MAX_POOL_SIZE) {
        problem("poolSize", `a whole number from 1 to ${MAX_POOL_SIZE} (more servers: another stack)`, show(poolSize), setCommand("poolSize", MAX_POOL_SIZE));
    }
    if (typeof poolSize === "number" && poolSize > 1 && values.scalelite === false) {
        problem(
            "poolSize",
            "scalelite: true when poolSize is more than 1 (a pool is reached through Scalelite)",
            `poolSize ${poolSize} with scalelite false`,
            `pulumi config set scalelite true  (or: pulumi config set poolSize 1)`,
        );
    }

    const dns = checkObject(values, "dns", ["provider", "zoneId"], problem);
    if (dns) {
        if (dns.provider !== "cloudflare" && dns.provider !== "none") {
            problem("dns.provider", `"cloudflare" or "none"`, show(dns.provider), `pulumi config set --path dns.provider cloudflare`);
        }
        if (dns.provider === "cloudflare" && !(typeof dns.zoneId === "string" && ZONE_ID.test(dns.zoneId))) {
            problem(
                "dns.zoneId",
                "the zone's id from Cloudflare's dashboard (32 lower-case hex digits) when dns.provider is cloudflare",
                show(dns.zoneId),
                `pulumi config set --path dns.zoneId 023e105f4ecef8ad9ca31a8372d0c353`,
            );
        }
    }

    let relay: PortRange | undefined;
    const relayText = str("turnRelayPorts");
    if (relayText !== undefined) {
        relay = parseRange(relayText);
        const expected = relay ? relayRangeProblem(relay) : "a port range FROM-TO with 1024 <= FROM < TO <= 65535";
        if (expected) {
            problem("turnRelayPorts", expected, show(relayText), setCommand("turnRelayPorts", CONFIG_SCHEMA.turnRelayPorts.default));
            relay = undefined;
        }
    }

    const scaleliteVersion = str("scaleliteVersion");
    if (scaleliteVersion !== undefined && !/^v\d+\.\d+\.\d+(\.\d+)?$/.test(scaleliteVersion)) {
        problem("scaleliteVersion", "a Scalelite release tag such as v1.8.5", show(scaleliteVersion), setCommand("scaleliteVersion", CONFIG_SCHEMA.scaleliteVersion.default));
    }
    const greenlightVersion = str("greenlightVersion");
    if (greenlightVersion !== undefined && !/^v3(\.\d+){0,3}$/.test(greenlightVersion)) {
        problem("greenlightVersion", "a Greenlight 3 image tag such as v3.8.2.4", show(greenlightVersion), setCommand("greenlightVersion", CONFIG_SCHEMA.greenlightVersion.default));
    }

    const consumers = values.consumers;
    if (Array.isArray(consumers)) {
        const example = `pulumi config set --path 'consumers[0]' mattermost`;
        if (consumers.length === 0) problem("consumers", "at least one consumer name", show(consumers), example);
        consumers.forEach((c, i) => {
            if (typeof c !== "string" || !/^[a-z][a-z0-9-]{0,30}$/.test(c)) {
                problem(`consumers[${i}]`, "a lower-case name (letters, digits, hyphens), e.g. mattermost", show(c), example);
            } else if (consumers.indexOf(c) !== i) {
                problem(`consumers[${i}]`, "names that differ from each other", show(c), `pulumi config rm --path 'consumers[${i}]'`);
            }
        });
        if (values.scalelite === false && JSON.stringify(consumers) !== JSON.stringify(CONFIG_SCHEMA.consumers.default)) {
            problem(
                "consumers",
                "scalelite: true for consumers of their own (without Scalelite there is one API secret)",
                `consumers ${show(consumers)} with scalelite false`,
                "pulumi config set scalelite true  (or: pulumi config rm consumers)",
            );
        }
    }

    const drain = values.drain;
    if (Array.isArray(drain)) {
        drain.forEach((node, i) => {
            const n = typeof node === "string" ? /^bbb-(\d+)$/.exec(node) : null;
            const size = typeof poolSize === "number" ? poolSize : 1;
            if (!n || Number(n[1]) < 1 || Number(n[1]) > size) {
                problem(`drain[${i}]`, `the name of a BBB server of the pool (bbb-1 .. bbb-${size})`, show(node), `pulumi config rm --path 'drain[${i}]'`);
            }
        });
        if (drain.length > 0 && values.scalelite === false) {
            problem("drain", "scalelite: true (draining is done in Scalelite)", show(drain), "pulumi config rm drain");
        }
    }

    const installerRef = str("bbbInstallerRef");
    const gitRef = (ref: string) => ref.split("/").every((part) => /^[A-Za-z0-9._-]+$/.test(part) && !/^\.+$/.test(part));
    const bbbRelease = values.bbbRelease;
    if (typeof bbbRelease === "number" && (bbbRelease < 1 || bbbRelease > 999)) {
        problem("bbbRelease", "a whole number from 1 to 999 (raise it to replace the pool's servers)", show(bbbRelease), setCommand("bbbRelease", 2));
    } else if (typeof bbbRelease === "number" && bbbRelease > 1 && values.scalelite === false) {
        problem(
            "bbbRelease",
            "1 without scalelite: a single server is upgraded in place, since its name is the API's (bbbApiUrl)",
            show(bbbRelease),
            "pulumi config rm bbbRelease",
        );
    }

    let upgrade: UpgradeSettings | undefined;
    const upgradeGiven = checkObject(values, "upgrade", ["servers", "from"], problem);
    if (upgradeGiven) {
        const size = typeof poolSize === "number" ? poolSize : 1;
        const servers = upgradeGiven.servers;
        if (!Number.isInteger(servers) || (servers as number) < 0 || (servers as number) > size) {
            problem(
                "upgrade.servers",
                `how many servers, from bbb-1 on, run the new release: a whole number from 0 to poolSize (${size})`,
                show(servers),
                "pulumi config set --path upgrade.servers 1",
            );
        }
        const from = upgradeGiven.from ?? {};
        if (typeof from !== "object" || from === null || Array.isArray(from)) {
            problem("upgrade.from", "{ bbbVersion, image, bbbInstallerRef }: what the servers not yet upgraded run", show(from), "pulumi config set --path upgrade.from.bbbVersion jammy-300");
        } else {
            const fromGiven = from as Record<string, unknown>;
            const fromFields = ["bbbVersion", "image", "bbbInstallerRef"];
            for (const field of Object.keys(fromGiven).filter((f) => !fromFields.includes(f))) {
                problem(`upgrade.from.${field}`, `one of the fields ${fromFields.join(", ")}`, `an unknown field ${show(field)}`, `pulumi config rm --path upgrade.from.${field}`);
            }
            const fromImage = fromGiven.image ?? image;
            if (typeof fromImage !== "string" || fromImage.trim() === "") {
                problem("upgrade.from.image", "the Glance image name the servers not yet upgraded were built from", show(fromImage), "pulumi config set --path upgrade.from.image 'Ubuntu 22.04'");
            }
            const fromVersion = fromGiven.bbbVersion ?? bbbVersion;
            if (fromGiven.bbbVersion !== undefined) checkVersion("upgrade.from.bbbVersion", fromVersion, typeof fromImage === "string" ? fromImage : undefined);
            const fromRef = fromGiven.bbbInstallerRef ?? installerRef;
            if (typeof fromRef !== "string" || (fromRef !== "" && !gitRef(fromRef))) {
                problem(
                    "upgrade.from.bbbInstallerRef",
                    "empty, or the git ref of bbb-install.sh the servers not yet upgraded were installed with",
                    show(fromRef),
                    "pulumi config set --path upgrade.from.bbbInstallerRef v3.0.x-release",
                );
            }
            upgrade = {
                servers: servers as number,
                from: { bbbVersion: fromVersion as string, image: fromImage as string, installerRef: installerRefFor(fromRef as string, fromVersion as string) },
            };
        }
        if (values.scalelite === false) {
            problem("upgrade", "scalelite: true (single topology re-runs the installer in place when bbbVersion changes)", show(upgradeGiven), "pulumi config rm upgrade");
        } else if (typeof bbbRelease === "number" && bbbRelease < 2) {
            problem(
                "upgrade",
                "bbbRelease raised to the new release (at least 2): the upgrade replaces the servers of the release before",
                `upgrade with bbbRelease ${show(bbbRelease)}`,
                "pulumi config set bbbRelease 2",
            );
        }
    }

    const dataVolumeSizes = checkObject(values, "dataVolumeSizes", [...DATA_ROLES], problem);
    const dataSizes = { ...(CONFIG_SCHEMA.dataVolumeSizes.default as Record<DataRole, number>) };
    if (dataVolumeSizes) {
        for (const role of DATA_ROLES) {
            if (!(role in dataVolumeSizes)) continue;
            const v = dataVolumeSizes[role];
            if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 16384) {
                problem(`dataVolumeSizes.${role}`, "a whole number of GB from 1 to 16384", show(v), `pulumi config set --path dataVolumeSizes.${role} ${dataSizes[role]}`);
            } else {
                dataSizes[role] = v as number;
            }
        }
    }

    const privacy = values.privacy;
    if (typeof privacy === "string" && privacy !== "strict" && privacy !== "standard") {
        problem("privacy", `"strict" or "standard"`, show(privacy), setCommand("privacy", "strict"));
    }

    const recordingsGiven = checkObject(values, "recordings", ["enabled", "retentionDays", "video"], problem);
    let recordings: RecordingSettings | undefined;
    if (recordingsGiven) {
        recordings = { ...(CONFIG_SCHEMA.recordings.default as RecordingSettings), ...(recordingsGiven as Partial<RecordingSettings>) };
        for (const flag of ["enabled", "video"] as const) {
            if (typeof recordings[flag] !== "boolean") problem(`recordings.${flag}`, "true or false", show(recordings[flag]), `pulumi config set --path recordings.${flag} false`);
        }
        if (!Number.isInteger(recordings.retentionDays) || recordings.retentionDays < 1 || recordings.retentionDays > 3650) {
            problem("recordings.retentionDays", "a whole number of days from 1 to 3650", show(recordings.retentionDays), "pulumi config set --path recordings.retentionDays 14");
        }
        if (recordings.enabled === true && privacy === "strict") {
            problem(
                "recordings.enabled",
                "privacy: standard to record meetings (strict privacy means no recordings at all)",
                "recordings.enabled true with privacy strict",
                "pulumi config set privacy standard  (or: pulumi config set --path recordings.enabled false)",
            );
        }
    }

    let dialIn: PlainDialIn | undefined;
    const dialGiven = checkObject(values, "dialIn", ["number", "sipProviderCidrs", "gateway"], problem);
    if (dialGiven) {
        const fixDial = (field: string, example: string) => `pulumi config set --path dialIn.${field} ${example}`;
        const number = dialGiven.number;
        if (typeof number !== "string" || !/^\+?[0-9][0-9 ()/-]{4,30}$/.test(number)) {
            problem("dialIn.number", "the phone number callers dial, digits with an optional leading +", show(number), fixDial("number", "'+49 30 1234567'"));
        }
        const cidrsGiven = dialGiven.sipProviderCidrs;
        if (!Array.isArray(cidrsGiven) || cidrsGiven.length === 0) {
            problem(
                "dialIn.sipProviderCidrs",
                `the SIP provider's address ranges (${SIP_PORT} is open to them only): at least one CIDR`,
                show(cidrsGiven),
                fixDial("'sipProviderCidrs[0]'", "192.0.2.0/24"),
            );
        } else {
            cidrsGiven.forEach((cidr, i) => {
                const checked = checkCidr(cidr);
                if (typeof checked === "string" || checked.canonical !== cidr || checked.prefix === 0) {
                    problem(
                        `dialIn.sipProviderCidrs[${i}]`,
                        "a CIDR of the SIP provider in canonical form, not the whole Internet",
                        show(cidr),
                        fixDial(`'sipProviderCidrs[${i}]'`, typeof checked === "string" || checked.prefix === 0 ? "192.0.2.0/24" : checked.canonical),
                    );
                } else if (cidrsGiven.indexOf(cidr) < i) {
                    problem(
                        `dialIn.sipProviderCidrs[${i}]`,
                        `each range once (a firewall rule per range: two would share a name, which Pulumi refuses); it is sipProviderCidrs[${cidrsGiven.indexOf(cidr)}] already`,
                        show(cidr),
                        `pulumi config rm --path 'dialIn.sipProviderCidrs[${i}]'`,
                    );
                }
            });
        }
        const gateway = (dialGiven.gateway ?? {}) as Record<string, unknown>;
        for (const field of ["host", "username", "password"]) {
            const v = gateway[field];
            if (typeof v !== "string" || v === "" || /[\s<>&"']/.test(v)) {
                problem(
                    `dialIn.gateway.${field}`,
                    `the SIP account's ${field}, without spaces or XML special characters`,
                    // A password is never shown: only whether there is one, and what is wrong with it.
                    field !== "password" ? show(v) : typeof v !== "string" || v === "" ? "none" : "a secret value (not shown) with spaces or XML special characters",
                    field === "password" ? "pulumi config set --secret --path dialIn.gateway.password <password>" : fixDial(`gateway.${field}`, "<value>"),
                );
            }
        }
        dialIn = {
            number: number as string,
            sipProviderCidrs: cidrsGiven as string[],
            gateway: { host: gateway.host as string, username: gateway.username as string, password: gateway.password as string },
        };
    }

    const webhookUrls = values.webhookUrls;
    if (Array.isArray(webhookUrls)) {
        webhookUrls.forEach((url, i) => {
            if (typeof url !== "string" || !/^https:\/\/[^\s/]+(\/\S*)?$/.test(url)) {
                problem(`webhookUrls[${i}]`, "an https:// URL", show(url), `pulumi config set --path 'webhookUrls[${i}]' https://hooks.example.org/bbb`);
            }
        });
        if (webhookUrls.length > 0 && values.webhooks === false) {
            problem("webhookUrls", "webhooks: true (the URLs are bbb-webhooks' permanent hooks)", show(webhookUrls), "pulumi config set webhooks true");
        }
    }

    const secretGeneration = values.secretGeneration;
    if (typeof secretGeneration === "number" && secretGeneration < 1) {
        problem("secretGeneration", "a whole number of at least 1 (raise it to rotate)", show(secretGeneration), setCommand("secretGeneration", 2));
    }
    const generations = (values.consumerSecretGenerations ?? {}) as Record<string, unknown>;
    const rotatable = [...(Array.isArray(consumers) ? consumers : []), ...(values.greenlight === true ? ["greenlight"] : [])];
    for (const [consumer, generation] of Object.entries(generations)) {
        if (!rotatable.includes(consumer)) {
            problem(`consumerSecretGenerations.${consumer}`, `a consumer of this stack (${rotatable.join(", ")})`, show(consumer), `pulumi config rm --path consumerSecretGenerations.${consumer}`);
        } else if (!Number.isInteger(generation) || (generation as number) < 1) {
            problem(`consumerSecretGenerations.${consumer}`, "a whole number of at least 1", show(generation), `pulumi config set --path consumerSecretGenerations.${consumer} 2`);
        }
    }

    if (installerRef !== undefined && installerRef !== "" && !gitRef(installerRef)) {
        problem(
            "bbbInstallerRef",
            "empty, or a git branch, tag or commit of bigbluebutton/bbb-install",
            show(installerRef),
            setCommand("bbbInstallerRef", CONFIG_SCHEMA.bbbInstallerRef.example),
        );
    }

    if (problems.length > 0) return { problems };
    return {
        problems,
        settings: {
            domain: domain!,
            hostnamePrefix: prefix!,
            apiHostname: apiHostname!,
            letsEncryptEmail: email!,
            sshAllowedCidrs: cidrs as string[],
            allowSshFromAnywhere: values.allowSshFromAnywhere as boolean,
            sshPublicKey: publicKey!.trim(),
            sshPrivateKey: privateKey!,
            image: image!,
            flavors: flavors!,
            volumeSizes: volumeSizes!,
            bbbVersion: bbbVersion!,
            network: network as unknown as NetworkSettings,
            poolSize: poolSize as number,
            scalelite: values.scalelite as boolean,
            greenlight: values.greenlight as boolean,
            dns: dns as unknown as DnsSettings,
            turnRelayPorts: relay!,
            bbbInstallerRef: installerRefFor(installerRef!, bbbVersion!),
            forceReinstall: values.forceReinstall as boolean,
            bbbRelease: bbbRelease as number,
            ...(upgrade ? { upgrade } : {}),
            scaleliteVersion: scaleliteVersion!,
            greenlightVersion: greenlightVersion!,
            consumers: consumers as string[],
            drain: drain as string[],
            forceRemove: values.forceRemove as boolean,
            allowDestructiveChanges: values.allowDestructiveChanges as boolean,
            dataVolumeSizes: dataSizes,
            protectData: values.protectData as boolean,
            privacy: values.privacy as "strict" | "standard",
            recordings: recordings!,
            ...(dialIn ? { dialIn } : {}),
            webhooks: values.webhooks as boolean,
            webhookUrls: values.webhookUrls as string[],
            secretGeneration: secretGeneration as number,
            consumerSecretGenerations: generations as Record<string, number>,
        },
    };
}

/** Reads the stack's configuration through the Pulumi runtime; throws one error naming every problem. */
export function loadConfig(): Settings {
    const { settings, problems } = parseConfig(pulumi.runtime.allConfig());
    if (!settings) throw new ConfigError(problems);
    const { dialIn, ...rest } = settings;
    return {
        ...rest,
        sshPrivateKey: pulumi.secret(settings.sshPrivateKey),
        ...(dialIn ? { dialIn: { ...dialIn, gateway: { ...dialIn.gateway, password: pulumi.secret(dialIn.gateway.password) } } } : {}),
    };
}

/** The git ref of bbb-install.sh to run: the one given, else the release branch of the version's package line. */
function installerRefFor(ref: string, version: string): string {
    return ref || (BBB_LINES[version.slice(0, -1)]?.installerRef ?? "");
}

/** The Ubuntu release an image name states ("Ubuntu 22.04", "ubuntu-jammy-..."), if any. */
export function ubuntuReleaseOf(image: string): string | undefined {
    const lower = image.toLowerCase();
    const numbered = /(?:^|[^0-9])(\d{2}\.\d{2})(?:[^0-9]|$)/.exec(lower);
    if (numbered) return numbered[1];
    const codename = Object.keys(UBUNTU_CODENAMES).find((c) => lower.includes(c));
    return codename ? UBUNTU_CODENAMES[codename] : undefined;
}

/** "N-M" to a range, or undefined. */
export function parseRange(text: string): PortRange | undefined {
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(text.trim());
    return m ? { from: Number(m[1]), to: Number(m[2]) } : undefined;
}

function parseTyped(type: KeyType, text: string): unknown {
    switch (type) {
        case "string":
            return text;
        case "boolean":
            return text === "true" ? true : text === "false" ? false : undefined;
        case "integer":
            return /^-?\d+$/.test(text.trim()) ? Number(text) : undefined;
        case "array":
        case "object": {
            let parsed: unknown;
            try {
                parsed = JSON.parse(text);
            } catch {
                return undefined;
            }
            const isArray = Array.isArray(parsed);
            if (type === "array") return isArray ? parsed : undefined;
            return typeof parsed === "object" && parsed !== null && !isArray ? parsed : undefined;
        }
    }
}

function article(type: string): string {
    return /^[aeiou]/.test(type) ? "an" : "a";
}

type Problem = (key: string, expected: string, given: string, fix: string) => void;

function checkObject(
    values: Record<string, unknown>,
    key: ConfigKey,
    fields: string[],
    problem: Problem,
): Record<string, unknown> | undefined {
    const value = values[key] as Record<string, unknown> | undefined;
    if (value === undefined) return undefined;
    for (const field of Object.keys(value)) {
        if (!fields.includes(field)) {
            problem(`${key}.${field}`, `one of the fields ${fields.join(", ")}`, `an unknown field ${show(field)}`, `pulumi config rm --path ${key}.${field}`);
        }
    }
    return value;
}

/** A per-role map with defaults: unknown roles and bad values are problems. */
function checkRoleMap(
    values: Record<string, unknown>,
    key: "flavors" | "volumeSizes",
    problem: Problem,
    checkValue: (v: unknown) => string | undefined,
): Record<Role, unknown> | undefined {
    const given = checkObject(values, key, [...ROLES], problem);
    if (given === undefined) return undefined;
    const defaults = CONFIG_SCHEMA[key].default as Record<Role, unknown>;
    const merged = { ...defaults };
    let ok = true;
    for (const role of ROLES) {
        if (!(role in given)) continue;
        const expected = checkValue(given[role]);
        if (expected) {
            ok = false;
            problem(`${key}.${role}`, expected, show(given[role]), `pulumi config set --path ${key}.${role} ${String(defaults[role])}`);
        } else {
            merged[role] = given[role];
        }
    }
    return ok && Object.keys(given).every((r) => (ROLES as readonly string[]).includes(r)) ? merged : undefined;
}

/** A CIDR's canonical form and prefix, or what is wrong with it. */
export function checkCidr(value: unknown): { canonical: string; prefix: number } | string {
    const expected = "an IPv4 or IPv6 CIDR such as 198.51.100.0/24 or 2001:db8::/48";
    if (typeof value !== "string" || !value.includes("/")) return expected;
    let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
    try {
        parsed = ipaddr.parseCIDR(value);
    } catch {
        return expected;
    }
    const [address, prefix] = parsed;
    const network =
        address.kind() === "ipv4"
            ? ipaddr.IPv4.networkAddressFromCIDR(value)
            : ipaddr.IPv6.networkAddressFromCIDR(value);
    return { canonical: `${network.toString()}/${prefix}`, prefix };
}

function editDistance(a: string, b: string): number {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0][j] = j;
    for (let i = 1; i <= a.length; i++) {
        for (let j = 1; j <= b.length; j++) {
            d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
        }
    }
    return d[a.length][b.length];
}
