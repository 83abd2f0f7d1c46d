// The configuration schema: one entry per key, with its type, default, descriptions, example and whether it is
// a secret, and the zod schema that checks its value alone. The settings' type, the checks, Pulumi.yaml's
// `config:` and `template:` blocks and the README's configuration table all come from this table
// (scripts/schema.ts writes the files; test/project-files.test.ts keeps them equal). Rules that tie keys
// together are in rules.ts.
import { z } from "zod";
import { relayRangeProblem, SIP_PORT } from "../ports";
import { DataRole, PortRange, Role, ROLES } from "./types";
import {
    checkCidr,
    forwardUrlProblem,
    isGitRef,
    parseRange,
    phoneNumberProblem,
    publicKeyOf,
    webhookUrlProblem,
    zoneProblem,
} from "./values";

export type KeyType = "string" | "boolean" | "integer" | "array" | "object";

export interface KeySpec {
    type: KeyType;
    /** One line: Pulumi.yaml's description, and what `pulumi new` asks. */
    description: string;
    /** The README's description (Markdown), when it says more than `description`. */
    readme?: string;
    /** Absent: the key is required, unless `optional`. */
    default?: unknown;
    /** The key may be left unset (no default: the feature is off). */
    optional?: boolean;
    secret?: boolean;
    /** Fields of an object key that are secrets (set with --secret --path), never shown. */
    secretFields?: string[];
    /** A value that passes validation, used in the README and in every "fix" hint. */
    example: unknown;
    /** What `pulumi new` says when it asks for the key, when the description alone would not do. */
    prompt?: string;
}

export interface KeyDef<S extends z.ZodType = z.ZodType> extends KeySpec {
    /** The value's checks, on the value as the engine gives it (JSON parsed for arrays and objects). */
    schema: S;
}

/** What a check refuses: what was expected, and how to fix it when the example alone would not say. */
export interface Refusal {
    expected: string;
    /** A whole command; `{path}` stands for the value's path, quoted (`'sshAllowedCidrs[1]'`). */
    fix?: string;
}

/** A zod refinement made of a check that returns what it expected (or a refusal), or undefined when fine. */
export function refuse<T>(check: (value: T) => string | Refusal | undefined) {
    return (value: T, ctx: z.core.$RefinementCtx<T>) => {
        const refused = check(value);
        if (refused === undefined) return;
        const { expected, fix } = typeof refused === "string" ? { expected: refused, fix: undefined } : refused;
        ctx.addIssue({ code: "custom", message: expected, params: fix ? { fix } : {}, input: value });
    };
}

/** An object with exactly these fields: an unknown one is a typo more often than not. */
function fields<T extends z.core.$ZodLooseShape>(shape: T) {
    const names = Object.keys(shape).join(", ");
    return z.strictObject(shape, {
        error: (issue) => (issue.code === "unrecognized_keys" ? `one of the fields ${names}` : issue.code === "invalid_type" ? `an object with the fields ${names}` : undefined),
    });
}

const wholeNumber = (from: number, to: number, what: string) =>
    z
        .number({ error: `a whole number${what}` })
        .int({ error: `a whole number${what}` })
        .min(from, { error: `a whole number${what} from ${from} to ${to}` })
        .max(to, { error: `a whole number${what} from ${from} to ${to}` });

const name = (what: string) => z.string({ error: what }).refine((v) => v.trim() !== "", { error: what });

/** A list of CIDRs in canonical form, each once; `which` names the list in messages. */
/**
 * The most ranges a list takes: each is a security group rule in every group that has the port, and Neutron's
 * default quota is 100 rules a project (neutron/conf/quota.py, quota_security_group_rule).
 */
export const MAX_CIDRS = 20;

function cidrList(which: string, atLeastOne: string) {
    return z
        .array(
            z.unknown().superRefine(
                refuse((cidr: unknown) => {
                    const checked = checkCidr(cidr);
                    if (typeof checked === "string") return { expected: checked, fix: `pulumi config set --path {path} 198.51.100.0/24` };
                    if (checked.canonical !== cidr) {
                        return { expected: "a CIDR in canonical form (network address, lower case, compressed)", fix: `pulumi config set --path {path} ${checked.canonical}` };
                    }
                    return undefined;
                }),
            ),
            { error: `a list of CIDRs (${atLeastOne})` },
        )
        .min(1, { error: `at least one CIDR (${atLeastOne})` })
        .max(MAX_CIDRS, { error: `at most ${MAX_CIDRS} CIDRs (each is a firewall rule in every group that has the port; Neutron's default quota is 100 rules a project): merge them into wider ranges` })
        .superRefine((cidrs, ctx) => {
            cidrs.forEach((cidr, i) => {
                const first = cidrs.indexOf(cidr);
                if (first < i) {
                    ctx.addIssue({
                        code: "custom",
                        path: [i],
                        input: cidr,
                        message: `each range once (a firewall rule per range: two would share a name, which Pulumi refuses); it is ${which}[${first}] already`,
                        params: { fix: "pulumi config rm --path {path}" },
                    });
                }
            });
        })
        .transform((cidrs) => cidrs as string[]);
}

/** A map from each role to a value, given for some roles only: the others keep their default. */
function perRole<T extends z.ZodType>(value: T, defaults: Record<Role, z.output<T>>) {
    return fields(Object.fromEntries(ROLES.map((r) => [r, value.optional()])) as Record<Role, z.ZodOptional<T>>).transform(
        (given) => ({ ...defaults, ...given }) as Record<Role, z.output<T>>,
    );
}

const FLAVORS: Record<Role, string> = { turn: "m1.medium", bbb: "m1.xlarge", scalelite: "m1.large", greenlight: "m1.medium", monitoring: "m1.medium", streaming: "m1.large" };
const VOLUMES: Record<Role, number> = { turn: 20, bbb: 80, scalelite: 40, greenlight: 30, monitoring: 40, streaming: 80 };
const DATA_VOLUMES: Record<DataRole, number> = { bbb: 100, scalelite: 20, greenlight: 10 };
const RECORDINGS = { enabled: false, retentionDays: 14, video: false };
const dataSize = wholeNumber(1, 16384, " of GB");

/** A BBB package line's name; whether bbb-install.sh knows it, and the image, are rules.ts's. */
const packageLine = z.string();

const gitRef = z.string().superRefine(
    refuse((ref: string) => (ref === "" || isGitRef(ref) ? undefined : "empty, or a git branch, tag or commit of bigbluebutton/bbb-install")),
);

/**
 * The largest pool one stack declares (npm run bench measures pools up to 64): each BBB server is about a dozen
 * resources (VM, port, addresses, DNS records, steps), so a typo of 1000 would declare some 13,000; a larger
 * platform is several stacks.
 */
export const MAX_POOL_SIZE = 100;
/** Size in GB of a baked golden volume and its builder's disk: Ubuntu and BigBlueButton's packages, with room; servers' boot volumes are clones of at least this size (Cinder refuses a clone smaller than its source). */
export const BAKE_VOLUME_GB = 30;

/** An e-mail address as certbot, Let's Encrypt and Alertmanager take it in practice: no quotes, no shell or URL characters. */
const emailAddress = z.string({ error: "an e-mail address such as ops@example.org" }).regex(/^[A-Za-z0-9._%+-]+@([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}$/, {
    error: "an e-mail address such as ops@example.org",
});

const BACKUPS = { enabled: true, time: "02:30", keepDaily: 7, keepWeekly: 4, keepMonthly: 6 };
/**
 * Two concurrent streams at 4 Mbit/s: what the default flavor (m1.large, 4 vCPUs) carries at BSS's 2 vCPUs a stream.
 * `record` has no default here: it follows `privacy` (components/topology.ts).
 */
const STREAMING = { enabled: false, workers: 2, bitrate: 4, keepDays: 14 };
/** Most workers on one streaming host (at 2 vCPUs each, a 32-vCPU flavor). */
export const MAX_STREAMING_WORKERS = 16;

const CONFIG = {
    domain: {
        type: "string",
        description: "DNS zone the hosts are named in, e.g. example.org.",
        example: "example.org",
        schema: z.string().superRefine(
            refuse((domain: string) => {
                if (domain === domain.toLowerCase()) return zoneProblem(domain);
                // The lower-case name is the fix only when it is a zone: never echo anything else that was given.
                const lower = domain.toLowerCase();
                return { expected: "a lower-case DNS name", fix: `pulumi config set domain ${zoneProblem(lower) ? "example.org" : lower}` };
            }),
        ),
    },
    hostnamePrefix: {
        type: "string",
        default: "",
        description: "Prefix of every host name: <prefix><host>.<domain> (dev uses dev-).",
        readme: "Prefix of every host name: `<prefix><host>.<domain>` (dev uses `dev-`).",
        example: "dev-",
        schema: z.string().superRefine(
            refuse((prefix: string) =>
                prefix === "" || /^[a-z0-9][a-z0-9-]*$/.test(prefix) ? undefined : "empty, or lower-case letters, digits and hyphens, starting with a letter or digit",
            ),
        ),
    },
    apiHostname: {
        type: "string",
        default: "bbb",
        description:
            "Host name consumers call the API on, <prefix><apiHostname>.<domain>: bbb-1 answers it alone, Scalelite in a pool, so growing to a pool changes nothing for them.",
        readme: "Host name consumers call the API on, `<prefix><apiHostname>.<domain>`: bbb-1 answers it alone, Scalelite in a pool, so growing to a pool changes nothing for them.",
        example: "meet",
        schema: z.string(),
    },
    letsEncryptEmail: {
        type: "string",
        description: "E-mail address for Let's Encrypt certificates.",
        example: "ops@example.org",
        schema: emailAddress,
    },
    sshAllowedCidrs: {
        type: "array",
        description: "IPv4/IPv6 CIDRs allowed to reach SSH (22/tcp) on every host.",
        readme:
            "IPv4/IPv6 CIDRs allowed to reach SSH (22/tcp) on every host; canonical form, each once, at most 20. Without `allowSshFromAnywhere`, none wider than an IPv4 `/8` or an IPv6 `/16` (so no set of them adds up to everyone) and none carrying IPv4 through IPv6 (`::ffff:0:0/96`, `64:ff9b::/96`, `2002::/16`, `2001::/32`).",
        example: ["198.51.100.0/24", "2001:db8:100::/48"],
        schema: cidrList("sshAllowedCidrs", "the addresses you administer the hosts from"),
    },
    allowSshFromAnywhere: {
        type: "boolean",
        default: false,
        description: "Allow a world range (0.0.0.0/0, ::/0) in sshAllowedCidrs.",
        readme: "Allow the whole Internet (`0.0.0.0/0`, `::/0`) and ranges wider than a `/8` or a `/16` in `sshAllowedCidrs`.",
        example: true,
        schema: z.boolean(),
    },
    sshPublicKey: {
        type: "string",
        description: "OpenSSH public key installed on every host (user ubuntu).",
        readme: "OpenSSH public key installed on every host (user `ubuntu`): ed25519, ECDSA or RSA of at least 2048 bits.",
        example: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB6Yp3pQ7nHc5oQ3lQe8Y5jv1mN0w2kq6d0hTqX9c6sZ ops@example.org",
        schema: z.string().superRefine(
            refuse((key: string) => {
                const parsed = publicKeyOf(key);
                return typeof parsed === "string" ? { expected: parsed, fix: `pulumi config set sshPublicKey "$(cat ~/.ssh/bbb_deploy.pub)"` } : undefined;
            }),
        ),
    },
    sshPrivateKey: {
        type: "string",
        secret: true,
        description: "Private key matching sshPublicKey, used to run the install steps (a secret).",
        prompt: "Private key matching sshPublicKey (a secret). It spans several lines: press Enter here, then run pulumi config set --secret sshPrivateKey < ~/.ssh/bbb_deploy",
        readme: "Private key matching `sshPublicKey`, without a passphrase, used to run the install steps; checked against `sshPublicKey` before anything is created.",
        example: "-----BEGIN OPENSSH PRIVATE KEY-----",
        // Its checks need sshPublicKey: rules.ts.
        schema: z.string(),
    },
    image: {
        type: "string",
        default: "Ubuntu 22.04",
        description: "Glance image name of every host (Ubuntu 22.04 for BBB 3.0).",
        example: "Ubuntu 22.04 Jammy Jellyfish",
        schema: name("a Glance image name"),
    },
    flavors: {
        type: "object",
        default: FLAVORS,
        description: "Nova flavor per role (turn, bbb, scalelite, greenlight, monitoring, streaming).",
        readme:
            "Nova flavor per role; give only the roles you change. BBB needs at least 4 vCPUs / 4 GB (8 / 16 GB recommended). A new flavor resizes a host in place (it reboots), except a pool's BBB servers: there it applies to new servers only (scale-up, a release: see \"Upgrades in a pool\"), never to all at once.",
        example: { bbb: "m1.2xlarge" },
        schema: perRole(name("a flavor name"), FLAVORS),
    },
    volumeSizes: {
        type: "object",
        default: VOLUMES,
        description: "Boot volume size in GB per role (turn, bbb, scalelite, greenlight, monitoring, streaming).",
        readme:
            "Boot volume size in GB per role. A new size replaces the host's VM, except a pool's BBB servers: there it applies to new servers only, as `flavors` does.",
        example: { bbb: 200 },
        schema: perRole(wholeNumber(10, 16384, " of GB"), VOLUMES),
    },
    bbbVersion: {
        type: "string",
        default: "jammy-300",
        description: "BigBlueButton package line for bbb-install.sh -v (jammy-30x needs Ubuntu 22.04).",
        readme:
            "BigBlueButton package line for `bbb-install.sh -v`; must match the image's Ubuntu release (`jammy-30x`: 22.04). BigBlueButton 3.0 only: nothing of 2.7 (`focal-27x`) was checked (docs/upstream.md), and its installer's yq does not read what the steps ask.",
        example: "jammy-300",
        schema: packageLine,
    },
    network: {
        type: "object",
        description: "Where the hosts' ports live: { mode: provider or floating, name, floatingIpPool }.",
        readme:
            "`{ mode: provider or floating, name, floatingIpPool }`: a network with public addresses, or a tenant network plus floating IPs from `floatingIpPool`.",
        example: { mode: "floating", name: "private", floatingIpPool: "public" },
        schema: fields({
            mode: z.enum(["provider", "floating"], { error: `"provider" or "floating"` }),
            name: name("the name of the network the hosts are attached to"),
            floatingIpPool: z.string().optional(),
        }).superRefine((network, ctx) => {
            if (network.mode === "floating" && !network.floatingIpPool) {
                ctx.addIssue({ code: "custom", path: ["floatingIpPool"], input: network.floatingIpPool, message: "the external network floating IPs come from (network.mode is floating)" });
            }
            if (network.mode === "provider" && network.floatingIpPool !== undefined) {
                ctx.addIssue({
                    code: "custom",
                    path: ["floatingIpPool"],
                    input: network.floatingIpPool,
                    message: "no floating IP pool with network.mode provider (the hosts get public addresses from the network)",
                    params: { fix: "pulumi config rm --path network.floatingIpPool  (or: pulumi config set --path network.mode floating)" },
                });
            }
        }),
    },
    poolSize: {
        type: "integer",
        default: 1,
        description: "Number of BigBlueButton servers (bbb-1 .. bbb-N); more than 1 needs scalelite.",
        readme: `Number of BigBlueButton servers (\`bbb-1\` .. \`bbb-N\`); more than 1 needs \`scalelite\`; at most ${MAX_POOL_SIZE} (a larger platform: several stacks).`,
        example: 3,
        schema: z
            .number()
            .int()
            .min(1, { error: "a whole number of at least 1" })
            .max(MAX_POOL_SIZE, { error: `a whole number from 1 to ${MAX_POOL_SIZE} (more servers: another stack)` }),
    },
    scalelite: {
        type: "boolean",
        default: false,
        description: "Put a Scalelite load balancer in front of the BBB pool.",
        example: true,
        schema: z.boolean(),
    },
    greenlight: {
        type: "boolean",
        default: false,
        description: "Deploy Greenlight (on bbb-1 without Scalelite, on its own host with it).",
        readme: "Deploy Greenlight (on `bbb-1` without Scalelite, on its own host with it).",
        example: true,
        schema: z.boolean(),
    },
    dns: {
        type: "object",
        description: "DNS records: { provider: cloudflare or none, zoneId } (token in cloudflare:apiToken).",
        readme: "`{ provider: cloudflare or none, zoneId }`; the token stays in `cloudflare:apiToken`.",
        example: { provider: "cloudflare", zoneId: "023e105f4ecef8ad9ca31a8372d0c353" },
        schema: fields({
            provider: z.enum(["cloudflare", "none"], { error: `"cloudflare" or "none"` }),
            zoneId: z.string().optional(),
        }).superRefine((dns, ctx) => {
            if (dns.provider === "cloudflare" && !/^[0-9a-f]{32}$/.test(dns.zoneId ?? "")) {
                ctx.addIssue({
                    code: "custom",
                    path: ["zoneId"],
                    input: dns.zoneId,
                    message: "the zone's id from Cloudflare's dashboard (32 lower-case hex digits) when dns.provider is cloudflare",
                });
            }
        }),
    },
    turnRelayPorts: {
        type: "string",
        default: "32769-65535",
        description: "UDP relay port range of coturn, opened on the TURN host's security group.",
        example: "32769-65535",
        schema: z
            .string()
            .superRefine(refuse((text: string) => (parseRange(text) ? relayRangeProblem(parseRange(text)!) : "a port range FROM-TO with 1024 <= FROM < TO <= 65535")))
            .transform((text): PortRange => parseRange(text)!),
    },
    bbbInstallerRef: {
        type: "string",
        default: "",
        description:
            "Git ref (branch, tag or commit) of bbb-install.sh to run; empty: the commit of bbbVersion's release branch this program was checked against.",
        readme:
            "Git ref (branch, tag or commit) of `bbb-install.sh` to run; empty: the commit of `bbbVersion`'s release branch this program was checked against (`26ce2d16` of `v3.0.x-release`, [docs/upstream.md](docs/upstream.md)). A new ref alone does not reinstall running servers: it is used by new servers and the next time the installer runs.",
        example: "v3.0.x-release",
        schema: gitRef,
    },
    forceReinstall: {
        type: "boolean",
        default: false,
        description:
            "Restart BigBlueButton (installer, new secret or properties, a single server's resize) even while meetings are running or its API does not say (they end).",
        readme:
            "Restart BigBlueButton (installer, new secret or properties, a single server's resize) even while meetings are running, or when its API does not say (they end).",
        example: true,
        schema: z.boolean(),
    },
    bbbRelease: {
        type: "integer",
        default: 1,
        description: "Release of the pool's BBB servers, in their names from 2 on (bbb-1-r2); raise it to replace them by new ones.",
        readme:
            "Release of the pool's BBB servers, part of their names from 2 on (`bbb-1-r2`); raise it (with `bbbVersion` or `image`) to replace the servers by new ones, one at a time with `upgrade` (see the runbook). Pool only; at most 999.",
        example: 2,
        schema: z.number().int().min(1).max(999, { error: "a whole number from 1 to 999 (raise it to replace the pool's servers)" }),
    },
    bake: {
        type: "boolean",
        default: true,
        description:
            "Pool only: boot new BBB servers from a volume with BigBlueButton's packages already installed (baked once per bbbVersion, installer and image), finalised for their own name and addresses in minutes.",
        readme:
            "Pool topology only (a single server upgrades in place). New BBB servers (a scale-up, a release) boot from a clone of a golden Cinder volume that holds BigBlueButton's packages and no host identity, baked once per `bbbVersion`, installer ref and base image by a builder VM (about 30 minutes, deleted by the next `pulumi up`), and are finalised for their own name, addresses and secrets in minutes (see \"Baked servers\"). Servers that exist keep their disks. `false`: every new server runs the whole installer, as before. Needs `volumeSizes.bbb` of at least " + String(BAKE_VOLUME_GB) + " GB.",
        example: false,
        schema: z.boolean(),
    },
    upgrade: {
        type: "object",
        optional: true,
        description:
            "Rolling upgrade to bbbRelease: { servers, from: { bbbVersion, image, bbbInstallerRef } }; bbb-1 .. bbb-<servers> are replaced, the others keep the release before.",
        readme:
            "A rolling upgrade to `bbbRelease`: `{ servers, from: { bbbVersion, image, bbbInstallerRef } }`; `bbb-1` .. `bbb-<servers>` run the new release, the others keep the release before, built from `from` (unset fields: today's values). Remove it once `servers` is `poolSize`.",
        example: { servers: 1, from: { bbbVersion: "jammy-300" } },
        schema: fields({
            servers: z.number({ error: "how many servers, from bbb-1 on, run the new release: a whole number" }).int().min(0),
            from: fields({
                bbbVersion: packageLine.optional(),
                image: name("the Glance image name the servers not yet upgraded were built from").optional(),
                bbbInstallerRef: gitRef.optional(),
            }).optional(),
        }),
    },
    scaleliteVersion: {
        type: "string",
        default: "v1.8.5",
        description: "Tag of the Scalelite images (blindsidenetwks/scalelite:<tag>-api, -nginx, -poller, -recording-importer).",
        readme: "Tag of the Scalelite images (`blindsidenetwks/scalelite:<tag>-api`, `-nginx`, `-poller`, `-recording-importer`).",
        example: "v1.8.5",
        schema: z.string().regex(/^v\d+\.\d+\.\d+(\.\d+)?$/, { error: "a Scalelite release tag such as v1.8.5" }),
    },
    greenlightVersion: {
        type: "string",
        default: "v3.8.2.4",
        description: "Tag of the Greenlight image (bigbluebutton/greenlight:<tag>), on its own host in a pool, on bbb-1 in the single topology.",
        readme: "Tag of `bigbluebutton/greenlight`: on its own host in a pool, on bbb-1 in the single topology.",
        example: "v3.8.2.4",
        schema: z.string().regex(/^v3(\.\d+){0,3}$/, { error: "a Greenlight 3 image tag such as v3.8.2.4" }),
    },
    consumers: {
        type: "array",
        default: ["default"],
        description: "Scalelite consumers (e.g. mattermost, pod, moodle), each with its own load-balancer secret.",
        readme: "Scalelite consumers (e.g. `mattermost`, `pod`, `moodle`), each with its own load-balancer secret (output `consumerSecrets`). Pool only.",
        example: ["mattermost", "pod"],
        schema: z
            .array(z.string().regex(/^[a-z][a-z0-9-]{0,30}$/), { error: "a list of consumer names" })
            .min(1, { error: "at least one consumer name" })
            .superRefine((names, ctx) =>
                names.forEach((n, i) => {
                    if (names.indexOf(n) < i) ctx.addIssue({ code: "custom", path: [i], input: n, message: "names that differ from each other", params: { fix: "pulumi config rm --path {path}" } });
                }),
            ),
    },
    drain: {
        type: "array",
        default: [],
        description: "BBB servers to drain (cordon in Scalelite: no new meetings) before scaling down, e.g. [bbb-3].",
        readme:
            "BBB servers to drain (cordoned in Scalelite: no new meetings, running ones go on), e.g. `[\"bbb-3\"]`, before scaling down; a name is a place in the pool, written as the pool writes it, whatever its release (`bbb-3` drains `bbb-3-r2` too); never every server.",
        example: ["bbb-3"],
        // Which names exist depends on poolSize: rules.ts.
        schema: z.array(z.unknown(), { error: "a list of BBB server names" }),
    },
    forceRemove: {
        type: "boolean",
        default: false,
        description: "Remove BBB servers from the pool, or delete or replace their VMs, even while meetings are running on them or they do not answer (they end).",
        readme:
            "Remove BBB servers from the pool, or delete or replace a BBB server's VM, even while meetings are running on them or they do not answer (they end).",
        example: true,
        schema: z.boolean(),
    },
    allowDestructiveChanges: {
        type: "boolean",
        default: false,
        description:
            "In the prod stack, let pulumi up replace or delete BBB servers (scale-down, a release, a new boot volume size, --replace) and data volumes once protectData is false; without it their VMs are protected there and the policy pack refuses unprotected ones.",
        example: true,
        schema: z.boolean(),
    },
    dataVolumeSizes: {
        type: "object",
        default: DATA_VOLUMES,
        description: "Data volume size in GB: bbb-1's recordings (single topology), Scalelite's and Greenlight's databases.",
        readme:
            "Size in GB of the data volumes: `bbb-1`'s recordings (single topology, with recordings on), Scalelite's and Greenlight's PostgreSQL and Redis (Greenlight's on `bbb-1` in the single topology). A larger size grows the volume and its filesystem, online.",
        example: { scalelite: 50 },
        schema: fields({ bbb: dataSize.optional(), scalelite: dataSize.optional(), greenlight: dataSize.optional() }).transform(
            (given) => ({ ...DATA_VOLUMES, ...given }) as Record<DataRole, number>,
        ),
    },
    protectData: {
        type: "boolean",
        default: true,
        description: "Protect the data volumes from deletion (pulumi destroy and replacements stop at them).",
        readme: "Protect the data volumes from deletion: `pulumi destroy` and any replacement stop at them. Set `false` for throw-away stacks.",
        example: false,
        schema: z.boolean(),
    },
    privacy: {
        type: "string",
        default: "strict",
        description: "strict: no recordings, access logs off, quiet logs kept one day; standard: BigBlueButton's defaults.",
        readme:
            "`strict`: no recordings (BBB and Scalelite), nginx access logs off (every host), BBB, media servers, Scalelite and Greenlight logging warnings only, coturn logging nothing, logs and raw data kept one day, deleted recordings purged; re-applied after every installer run. `standard`: BigBlueButton's defaults.",
        example: "standard",
        schema: z.enum(["strict", "standard"], { error: `"strict" or "standard"` }),
    },
    recordings: {
        type: "object",
        default: RECORDINGS,
        description: "Recordings: { enabled, retentionDays, video } (enabled needs privacy standard).",
        readme:
            "`enabled` records meetings (needs `privacy: standard`); `/var/bigbluebutton` on its own volume (single) or Scalelite's NFS share (pool); `retentionDays` keeps published recordings that long; `video` also renders a downloadable video.",
        example: { enabled: true, retentionDays: 30, video: true },
        schema: fields({
            enabled: z.boolean({ error: "true or false" }).optional(),
            retentionDays: wholeNumber(1, 3650, " of days").optional(),
            video: z.boolean({ error: "true or false" }).optional(),
        }).transform((given) => ({ ...RECORDINGS, ...given })),
    },
    dialIn: {
        type: "object",
        optional: true,
        secretFields: ["gateway.password"],
        description: "Phone dial-in: { number, sipProviderCidrs, gateway: { host, username, password } } (password secret).",
        readme: `Phone dial-in: \`{ number, sipProviderCidrs, gateway: { host, username, password } }\`; ${SIP_PORT} opens to \`sipProviderCidrs\` only. \`number\` is international (E.164, e.g. \`+49 30 1234567\`). Set the password with \`pulumi config set --secret --path dialIn.gateway.password\`.`,
        example: { number: "+49 30 1234567", sipProviderCidrs: ["192.0.2.0/24"], gateway: { host: "sip.example.net", username: "4930123", password: "[secret]" } },
        schema: fields({
            number: z
                .string({
                    error: (issue) =>
                        typeof issue.input === "number"
                            ? "the phone number as text: pulumi config set --path stored it as a number, without its + (set it again with --type string)"
                            : "the phone number callers dial",
                })
                .superRefine(refuse(phoneNumberProblem)),
            sipProviderCidrs: cidrList("sipProviderCidrs", `the SIP provider's address ranges: ${SIP_PORT} is open to them only`),
            gateway: fields({
                host: sipField("host"),
                username: sipField("username"),
                password: sipField("password"),
            }),
        }),
    },
    webhooks: {
        type: "boolean",
        default: false,
        description: "Install bbb-webhooks on every BBB server.",
        example: true,
        schema: z.boolean(),
    },
    webhookUrls: {
        type: "array",
        default: [],
        description: "Permanent webhook URLs (https) every BBB server calls for every event (needs webhooks).",
        readme:
            "Permanent hook URLs (https) every BBB server calls for every event (needs `webhooks`): public hosts only (no loopback, link-local, private or reserved address), no user or password in the URL.",
        example: ["https://hooks.example.org/bbb"],
        schema: z.array(
            z.string({ error: "an https:// URL" }).superRefine(
                refuse((url: string) => {
                    const problem = webhookUrlProblem(url);
                    return problem ? { expected: problem, fix: "pulumi config set --path {path} https://hooks.example.org/bbb" } : undefined;
                }),
            ),
            { error: "a list of https:// URLs" },
        ),
    },
    monitoring: {
        type: "boolean",
        default: false,
        description: "A monitoring host: Prometheus, Alertmanager and Grafana (https://<prefix>monitoring.<domain>), exporters on every host.",
        readme:
            "A `monitoring` host (one more VM): Prometheus (15 days), Alertmanager and Grafana at `https://<prefix>monitoring.<domain>` (output `grafanaUrl`, admin password `grafanaAdminPassword`), the node exporter on every host and the BigBlueButton exporter on every BBB server, reachable from the monitoring host only (see \"Monitoring\").",
        example: true,
        schema: z.boolean(),
    },
    alerts: {
        type: "object",
        optional: true,
        secretFields: ["smtp.password"],
        description: "Alert e-mails (needs monitoring): { email, smtp: { server, from, username, password } } (password secret).",
        readme:
            "Alert e-mails from Alertmanager (needs `monitoring`): `{ email, smtp: { server, from, username, password } }`; `server` is `host:port` (587: STARTTLS, 465: TLS; TLS is required). Set the password with `pulumi config set --secret --path alerts.smtp.password`.",
        example: { email: "ops@example.org", smtp: { server: "smtp.example.org:587", from: "bbb-alerts@example.org", username: "bbb-alerts", password: "[secret]" } },
        schema: fields({
            email: emailAddress,
            smtp: fields({
                server: z
                    .string({ error: "the SMTP server as host:port" })
                    .regex(/^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}:[0-9]{1,5}$/, { error: "the SMTP server as host:port, e.g. smtp.example.org:587" })
                    .refine((v) => Number(v.split(":")[1]) >= 1 && Number(v.split(":")[1]) <= 65535, { error: "the SMTP server as host:port, with a port from 1 to 65535" }),
                from: emailAddress,
                username: z.string({ error: "the SMTP user name" }).regex(/^[^\s"'\\]+$/, { error: "the SMTP user name, without spaces or quotes" }).optional(),
                password: z
                    .string({ error: "the SMTP password (a secret)" })
                    // The host refuses what its [[:cntrl:]] matches in C.UTF-8 (C0, C1, U+2028, U+2029), and YAML folds NEL.
                    .regex(/^[^\p{Cc}\u2028\u2029\uFEFF]+$/u, { error: "the SMTP password (a secret), without control characters or line separators (Alertmanager's configuration holds it)" })
                    .optional(),
            }),
        }),
    },
    backups: {
        type: "object",
        default: BACKUPS,
        description: "Nightly restic backups of Scalelite's and Greenlight's databases to a Swift container: { enabled, time, keepDaily, keepWeekly, keepMonthly }.",
        readme:
            "Nightly, encrypted restic backups of Scalelite's and Greenlight's PostgreSQL, Scalelite's Redis and Greenlight's uploads, each host to a Swift container of its own made by the stack (see \"Backups\"). `time` is the hour in UTC (`HH:MM`, a random delay of up to 10 minutes is added); `keepDaily`, `keepWeekly`, `keepMonthly`: how many of each restic keeps. On wherever there is a database (a pool, or Greenlight).",
        example: { enabled: true, time: "03:15", keepDaily: 14 },
        schema: fields({
            enabled: z.boolean({ error: "true or false" }).optional(),
            time: z.string({ error: "a time of day HH:MM (UTC)" }).regex(/^([01][0-9]|2[0-3]):[0-5][0-9]$/, { error: "a time of day HH:MM (UTC), e.g. 02:30" }).optional(),
            keepDaily: wholeNumber(1, 366, " of daily backups kept").optional(),
            keepWeekly: wholeNumber(0, 520, " of weekly backups kept").optional(),
            keepMonthly: wholeNumber(0, 240, " of monthly backups kept").optional(),
        }).transform((given) => ({ ...BACKUPS, ...given })),
    },
    streaming: {
        type: "object",
        default: STREAMING,
        secretFields: ["forward"],
        description: "Live streams of meetings to viewers without accounts: { enabled, workers, bitrate, record, keepDays, forward } (forward secret).",
        readme:
            "A `streaming` host (one more VM) that streams a meeting live to viewers without accounts, and records it (see \"Live streams\"): `workers` streams at once (each needs 2 vCPUs and 2 GB), `bitrate` in Mbit/s per stream, `record` each stream kept as an MP4 on the streaming host (default: on under `privacy: standard`, off under `strict`), `keepDays` how long recordings are kept there, `forward` an `rtmp://` URL the stream is also pushed to (a PeerTube instance, a streaming provider; it holds the stream key: set it with `pulumi config set --secret --path streaming.forward`). Start and stop with `npm run stream`.",
        example: { enabled: true, workers: 1, bitrate: 4, record: true, keepDays: 30, forward: "[secret]" },
        schema: fields({
            enabled: z.boolean({ error: "true or false" }).optional(),
            workers: wholeNumber(1, MAX_STREAMING_WORKERS, " of streams at once").optional(),
            bitrate: wholeNumber(1, 20, " of Mbit/s a stream").optional(),
            record: z.boolean({ error: "true or false" }).optional(),
            keepDays: wholeNumber(1, 366, " of days a recording is kept").optional(),
            forward: z
                .string({ error: "an rtmp:// URL (a secret: it holds the stream key)" })
                .superRefine(
                    refuse((url: string) => {
                        const problem = forwardUrlProblem(url);
                        return problem ? { expected: problem, fix: "pulumi config set --secret --path {path}  (no value: it asks without echo)" } : undefined;
                    }),
                )
                .optional(),
        }).transform((given) => ({ ...STREAMING, ...given })),
    },
    secretGeneration: {
        type: "integer",
        default: 1,
        description: "Raise it to replace the BBB servers' API secrets (single topology: the one secret), server by server.",
        readme: "Raise it to replace the BBB servers' API secrets (single topology: the one secret, `bbbSecret`); see the runbook.",
        example: 2,
        schema: z.number().int().min(1, { error: "a whole number of at least 1 (raise it to rotate)" }),
    },
    consumerSecretGenerations: {
        type: "object",
        default: {},
        description: "Per consumer, a number to raise to replace that consumer's Scalelite secret alone, e.g. { pod: 2 }.",
        readme: "Per consumer, a number to raise to replace that consumer's Scalelite secret alone, e.g. `{\"pod\":2}`.",
        example: { pod: 2 },
        schema: z.record(z.string().regex(/^[a-z][a-z0-9-]{0,30}$/, { error: "a consumer's name" }), z.number({ error: "a whole number of at least 1" }).int({ error: "a whole number of at least 1" }).min(1, { error: "a whole number of at least 1" })),
    },
} satisfies Record<string, KeyDef>;

/**
 * A field of the SIP account: written into FreeSWITCH's XML, so no spaces or XML special characters. Text:
 * `pulumi config set --path` stores a number (a numeric user name) as a number, which a leading zero would not
 * survive, so a number is refused with a fix that keeps it text.
 */
function sipField(field: "host" | "username" | "password") {
    return z
        .string({
            error: (issue) =>
                typeof issue.input === "number"
                    ? `the SIP account's ${field} as text: pulumi config set --path stored it as a number (set it again with --type string)`
                    : `the SIP account's ${field}`,
        })
        .regex(/^[^\s<>&"']+$/, { error: `the SIP account's ${field}, without spaces or XML special characters` });
}

export type ConfigKey = keyof typeof CONFIG;

/** Every key's definition, checks included. */
export const CONFIG_DEFS: Record<ConfigKey, KeyDef> = CONFIG;

/** Every key's description, without its checks (Pulumi.yaml, the README, the policy pack and the workflows read it). */
export const CONFIG_SCHEMA: Record<ConfigKey, KeySpec> = CONFIG;

export const CONFIG_KEYS = Object.keys(CONFIG) as ConfigKey[];

/** Each key's value once its own checks passed (defaults applied, secrets still plain). */
export type Values = { [K in ConfigKey]: z.output<(typeof CONFIG)[K]["schema"]> };

