// Rules that tie keys together, each a small named function over the values whose own checks passed (a key
// that failed its own check is absent, and the rules that need it say nothing more of it).
import { bbbHostName } from "../names";
import { SIP_PORT } from "../ports";
import { ConfigProblem, show } from "./problems";
import { BAKE_VOLUME_GB, CONFIG_SCHEMA, Values } from "./schema";
import { LABEL, MAX_NAME, privateKeyProblem, publicKeyOf, tooWideProblem, ubuntuReleaseOf } from "./values";

/**
 * BBB package lines this program installs: the Ubuntu release each needs and the bbb-install.sh it runs by
 * default, a commit of the line's release branch: the head of it when docs/upstream.md was read, so that what
 * the steps rely on does not move under them. BigBlueButton 3.0 only: 2.7 (focal-27x) was never checked, and
 * its installer's yq (v3) does not read the `yq e` the steps use.
 */
export const BBB_LINES: Record<string, { ubuntu: string; codename: string; installerBranch: string; installerRef: string }> = {
    "jammy-30": { ubuntu: "22.04", codename: "jammy", installerBranch: "v3.0.x-release", installerRef: "26ce2d16c2a82ef962d685525b0c20bb89d4d151" },
};

type Given = Partial<Values>;
type Report = (problem: ConfigProblem) => void;

/** The longest host name but the BBB servers', whose names grow with the pool and its release. */
const LONGEST_HOST = "greenlight";
/** Every name a host of a stack can have (components/names.ts). */
const HOST_NAME = /^(turn|scalelite|greenlight|monitoring|streaming|bbb-[0-9]+(-r[0-9]+)?)$/;

/**
 * A list of one party's own ranges: never the whole Internet, nor a range wider than a /8 or a /16 or carrying
 * IPv4 through IPv6 (tooWideProblem). At most MAX_CIDRS such ranges cannot add up to everyone; the policy
 * pack, which sees rules from anywhere, checks that too (reachesEveryone).
 */
function ownRanges(report: Report, key: string, cidrs: readonly string[], purpose: string, example: string, alternative = ""): void {
    const i = cidrs.findIndex((cidr) => tooWideProblem(cidr) !== undefined);
    if (i < 0) return;
    const why = cidrs[i].endsWith("/0") ? "a range narrower than the whole Internet" : tooWideProblem(cidrs[i]);
    report({ key: `${key}[${i}]`, expected: `${why}: ${purpose}`, given: show(cidrs[i]), fix: `pulumi config set --path '${key}[${i}]' ${example}${alternative}` });
}

/** SSH from the world, or from a range no administrator has, only with allowSshFromAnywhere. */
function sshNotFromEveryone(v: Given, report: Report): void {
    if (!v.sshAllowedCidrs || v.allowSshFromAnywhere === true) return;
    const purpose = "SSH is never open to the world by default, only to the ranges you administer from";
    ownRanges(report, "sshAllowedCidrs", v.sshAllowedCidrs, purpose, "198.51.100.0/24", "  (or, knowingly: pulumi config set allowSshFromAnywhere true)");
}

/** The SIP port is for the provider alone. */
function sipNotFromEveryone(v: Given, report: Report): void {
    if (v.dialIn) ownRanges(report, "dialIn.sipProviderCidrs", v.dialIn.sipProviderCidrs, `${SIP_PORT} is open to the SIP provider's own ranges only`, "192.0.2.0/24");
}

/** The private key has no passphrase and is the other half of sshPublicKey. */
function keysArePair(v: Given, report: Report): void {
    if (v.sshPrivateKey === undefined) return;
    const publicKey = v.sshPublicKey === undefined ? undefined : publicKeyOf(v.sshPublicKey);
    const problem = privateKeyProblem(v.sshPrivateKey, typeof publicKey === "string" ? undefined : publicKey);
    if (problem) {
        report({
            key: "sshPrivateKey",
            expected: problem,
            given: "a secret value (not shown)",
            fix: "pulumi config set --secret sshPrivateKey < ~/.ssh/bbb_deploy  (a key without passphrase, whose .pub is sshPublicKey)",
        });
    }
}

/** Every host name fits DNS: each label at most 63 characters, each name at most 253. */
function hostNamesFit(v: Given, report: Report): void {
    const prefix = v.hostnamePrefix;
    const longestBbb = bbbHostName(v.poolSize ?? 1, v.bbbRelease ?? 1);
    const longest = Math.max(LONGEST_HOST.length, longestBbb.length);
    if (prefix !== undefined && prefix.length + longest > 63) {
        report({
            key: "hostnamePrefix",
            expected: `empty, or lower-case letters, digits and hyphens, starting with a letter or digit, at most ${63 - longest} characters`,
            given: show(prefix),
            fix: "pulumi config set hostnamePrefix dev-",
        });
    }
    const api = v.apiHostname;
    const room = 63 - (prefix ?? "").length;
    if (api !== undefined && (!LABEL.test(api) || api.length > room || HOST_NAME.test(api))) {
        report({
            key: "apiHostname",
            expected: `a DNS label of its own (lower-case letters, digits, hyphens; at most ${room} characters with hostnamePrefix), not a host's name (turn, scalelite, greenlight, bbb-<n>)`,
            given: show(api),
            fix: "pulumi config set apiHostname meet",
        });
    }
    if (v.domain !== undefined) {
        const label = Math.max(longest, api?.length ?? 0) + (prefix ?? "").length;
        if (label + 1 + v.domain.length > MAX_NAME) {
            report({
                key: "domain",
                expected: `a zone short enough for every host name (${label} characters and a dot before it, ${MAX_NAME} in all): at most ${MAX_NAME - label - 1} characters`,
                given: show(v.domain),
                fix: "pulumi config set domain example.org",
            });
        }
    }
}

/** A package line bbb-install.sh knows, on an image of the Ubuntu release it needs. */
function versionFitsImage(report: Report, key: "bbbVersion" | "upgrade.from.bbbVersion", version: string, image: string | undefined): void {
    const line = BBB_LINES[version.slice(0, -1)];
    const path = key === "bbbVersion" ? "" : " --path";
    if (!line || !/^[a-z]+-\d{3}$/.test(version)) {
        report({
            key,
            expected: `a BigBlueButton package line: ${Object.keys(BBB_LINES).map((l) => `${l}x`).join(" or ")} (BigBlueButton 3.0; 2.7, focal-27x, is not supported)`,
            given: show(version),
            fix: `pulumi config set${path} ${key} ${CONFIG_SCHEMA.bbbVersion.default}`,
        });
        return;
    }
    const release = image === undefined ? undefined : ubuntuReleaseOf(image);
    if (release !== undefined && release !== line.ubuntu) {
        const matching = Object.entries(BBB_LINES).find(([, l]) => l.ubuntu === release);
        const imageKey = key === "bbbVersion" ? "image" : "upgrade.from.image";
        report({
            key,
            expected: `an image of Ubuntu ${line.ubuntu} (${line.codename}) for ${version}`,
            given: `${imageKey} ${show(image)}, which is Ubuntu ${release}`,
            fix: `pulumi config set${path} ${imageKey} 'Ubuntu ${line.ubuntu}'` + (matching ? `  (or: pulumi config set${path} ${key} ${matching[0]}0)` : ""),
        });
    }
}

function versionsFitImages(v: Given, report: Report): void {
    if (v.bbbVersion !== undefined) versionFitsImage(report, "bbbVersion", v.bbbVersion, v.image);
    const from = v.upgrade?.from;
    if (from?.bbbVersion !== undefined) versionFitsImage(report, "upgrade.from.bbbVersion", from.bbbVersion, from.image ?? v.image);
}

/** What only a pool has: more than one server, consumers of their own, drains, releases and rolling upgrades. */
function poolOnly(v: Given, report: Report): void {
    if (v.scalelite !== false) return;
    if (v.poolSize !== undefined && v.poolSize > 1) {
        report({
            key: "poolSize",
            expected: "scalelite: true when poolSize is more than 1 (a pool is reached through Scalelite)",
            given: `poolSize ${v.poolSize} with scalelite false`,
            fix: "pulumi config set scalelite true  (or: pulumi config set poolSize 1)",
        });
    }
    if (v.consumers && JSON.stringify(v.consumers) !== JSON.stringify(CONFIG_SCHEMA.consumers.default)) {
        report({
            key: "consumers",
            expected: "scalelite: true for consumers of their own (without Scalelite there is one API secret)",
            given: `consumers ${show(v.consumers)} with scalelite false`,
            fix: "pulumi config set scalelite true  (or: pulumi config rm consumers)",
        });
    }
    if (v.drain && v.drain.length > 0) {
        report({ key: "drain", expected: "scalelite: true (draining is done in Scalelite)", given: show(v.drain), fix: "pulumi config rm drain" });
    }
    if (v.bbbRelease !== undefined && v.bbbRelease > 1) {
        report({
            key: "bbbRelease",
            expected: "1 without scalelite: a single server is upgraded in place, since its name is the API's (bbbApiUrl)",
            given: show(v.bbbRelease),
            fix: "pulumi config rm bbbRelease",
        });
    }
    if (v.upgrade) {
        report({
            key: "upgrade",
            expected: "scalelite: true (single topology re-runs the installer in place when bbbVersion changes)",
            given: show(v.upgrade),
            fix: "pulumi config rm upgrade",
        });
    }
}

/**
 * A drained server is one of the pool's, named exactly as the pool names it (bbb-3, not bbb-03 or bbb-3-r2),
 * once; and one server at least is left to take new meetings.
 */
function drainNamesServers(v: Given, report: Report): void {
    const size = v.poolSize ?? 1;
    const drain = v.drain ?? [];
    const servers = Array.from({ length: size }, (_, i) => `bbb-${i + 1}`);
    if (v.scalelite !== false && servers.every((server) => drain.includes(server))) {
        report({
            key: "drain",
            expected: `fewer servers than the pool has (${size}): a pool with every server drained starts no meeting at all`,
            given: show(drain),
            fix: `pulumi config rm --path 'drain[${drain.length - 1}]'  (or: pulumi config set poolSize ${size + 1} first, to drain onto the new server)`,
        });
    }
    drain.forEach((node, i) => {
        if (drain.indexOf(node) < i) {
            report({ key: `drain[${i}]`, expected: `each server once; it is drain[${drain.indexOf(node)}] already`, given: show(node), fix: `pulumi config rm --path 'drain[${i}]'` });
            return;
        }
        const n = typeof node === "string" ? /^bbb-([1-9][0-9]*)$/.exec(node) : null;
        if (!n || Number(n[1]) > size) {
            const near = typeof node === "string" ? /^bbb-0*([1-9][0-9]*)(-r\d+)?$/.exec(node) : null;
            report({
                key: `drain[${i}]`,
                expected: `the name of a BBB server of the pool, as the pool names it (bbb-1 .. bbb-${size}; a place in the pool, whatever its release)`,
                given: show(node),
                fix: near && Number(near[1]) <= size ? `pulumi config set --path 'drain[${i}]' bbb-${Number(near[1])}` : `pulumi config rm --path 'drain[${i}]'`,
            });
        }
    });
}

/** A rolling upgrade replaces some of the pool's servers by those of a raised bbbRelease. */
function upgradeFitsPool(v: Given, report: Report): void {
    const upgrade = v.upgrade;
    if (!upgrade || v.scalelite === false) return;
    const size = v.poolSize ?? 1;
    if (upgrade.servers > size) {
        report({
            key: "upgrade.servers",
            expected: `how many servers, from bbb-1 on, run the new release: a whole number from 0 to poolSize (${size})`,
            given: show(upgrade.servers),
            fix: "pulumi config set --path upgrade.servers 1",
        });
    }
    if (v.bbbRelease !== undefined && v.bbbRelease < 2) {
        report({
            key: "upgrade",
            expected: "bbbRelease raised to the new release (at least 2): the upgrade replaces the servers of the release before",
            given: `upgrade with bbbRelease ${show(v.bbbRelease)}`,
            fix: "pulumi config set bbbRelease 2",
        });
    }
}

/** A baked server's boot volume is a clone of the golden volume: Cinder refuses a clone smaller than its source. */
function bakedVolumesFit(v: Given, report: Report): void {
    const size = v.volumeSizes?.bbb;
    if (v.scalelite !== true || v.bake === false || size === undefined || size >= BAKE_VOLUME_GB) return;
    report({
        key: "volumeSizes.bbb",
        expected: `at least ${BAKE_VOLUME_GB} GB with bake on: a server's boot volume is a clone of the ${BAKE_VOLUME_GB} GB golden volume, and Cinder makes no clone smaller than its source`,
        given: show(size),
        fix: `pulumi config set --path volumeSizes.bbb ${BAKE_VOLUME_GB}  (or: pulumi config set bake false)`,
    });
}

function recordingsNeedStandardPrivacy(v: Given, report: Report): void {
    if (v.recordings?.enabled === true && v.privacy === "strict") {
        report({
            key: "recordings.enabled",
            expected: "privacy: standard to record meetings (strict privacy means no recordings at all)",
            given: "recordings.enabled true with privacy strict",
            fix: "pulumi config set privacy standard  (or: pulumi config set --path recordings.enabled false)",
        });
    }
}

function webhookUrlsNeedWebhooks(v: Given, report: Report): void {
    if (v.webhookUrls && v.webhookUrls.length > 0 && v.webhooks === false) {
        report({ key: "webhookUrls", expected: "webhooks: true (the URLs are bbb-webhooks' permanent hooks)", given: show(v.webhookUrls), fix: "pulumi config set webhooks true" });
    }
}

/** Greenlight has its own Scalelite secret: a consumer of that name would share it. */
function consumersBesideGreenlight(v: Given, report: Report): void {
    const i = (v.consumers ?? []).indexOf("greenlight");
    if (i >= 0 && v.greenlight === true && v.scalelite !== false) {
        report({
            key: `consumers[${i}]`,
            expected: "a name other than greenlight: Greenlight, which is on, has the Scalelite secret of that name",
            given: show("greenlight"),
            fix: `pulumi config set --path 'consumers[${i}]' lms`,
        });
    }
}

/** A secret generation names a consumer of this stack (or greenlight). */
function generationsNameConsumers(v: Given, report: Report): void {
    const rotatable = [...(v.consumers ?? []), ...(v.greenlight === true ? ["greenlight"] : [])];
    for (const consumer of Object.keys(v.consumerSecretGenerations ?? {})) {
        if (!rotatable.includes(consumer)) {
            report({
                key: `consumerSecretGenerations.${consumer}`,
                expected: `a consumer of this stack (${rotatable.join(", ")})`,
                given: show(consumer),
                fix: `pulumi config rm --path consumerSecretGenerations.${consumer}`,
            });
        }
    }
}

/** Alert e-mails are sent by the monitoring host's Alertmanager; an SMTP login is a user name and a password together. */
function alertsNeedMonitoring(v: Given, report: Report): void {
    if (!v.alerts) return;
    if (v.monitoring === false) {
        report({ key: "alerts", expected: "monitoring: true (the monitoring host's Alertmanager sends the alert e-mails)", given: "alerts set with monitoring false", fix: "pulumi config set monitoring true  (or: pulumi config rm alerts)" });
    }
    const { username, password } = v.alerts.smtp;
    if ((username === undefined) !== (password === undefined)) {
        report(
            username === undefined
                ? { key: "alerts.smtp.username", expected: "the SMTP user name, since alerts.smtp.password is set", given: show(undefined), fix: "pulumi config set --path alerts.smtp.username bbb-alerts" }
                : { key: "alerts.smtp.password", expected: "the SMTP password (a secret), since alerts.smtp.username is set", given: show(undefined), fix: "pulumi config set --secret --path alerts.smtp.password  (no value: it asks without echo)" },
        );
    }
}

/**
 * A forward target for streams nobody runs: a half-done setting, as often as not. And one for several streams at
 * once: its URL names one stream key, where nginx pushes every stream (ngx_rtmp_relay_module.c: a push URL's own
 * name replaces the stream's), so a second stream would be refused by the target or mixed into the first.
 */
function forwardNeedsStreaming(v: Given, report: Report): void {
    const s = v.streaming;
    if (!s || s.forward === undefined) return;
    if (!s.enabled) {
        report({ key: "streaming.forward", expected: "streaming.enabled true (the streaming host pushes its streams there)", given: "streaming.forward set with streaming.enabled false", fix: "pulumi config set --path streaming.enabled true  (or: pulumi config rm --path streaming.forward)" });
    } else if (s.workers > 1) {
        report({
            key: "streaming.workers",
            expected: "1 with streaming.forward (its stream key takes one stream: a second one at the same time would be refused by the target, or mixed into the first)",
            given: show(s.workers),
            fix: "pulumi config set --path streaming.workers 1  (or: pulumi config rm --path streaming.forward)",
        });
    }
}

/** The rules, in the order their problems are told. */
export const RULES: readonly ((v: Given, report: Report) => void)[] = [
    hostNamesFit,
    sshNotFromEveryone,
    keysArePair,
    versionsFitImages,
    poolOnly,
    drainNamesServers,
    consumersBesideGreenlight,
    upgradeFitsPool,
    bakedVolumesFit,
    recordingsNeedStandardPrivacy,
    sipNotFromEveryone,
    webhookUrlsNeedWebhooks,
    generationsNameConsumers,
    alertsNeedMonitoring,
    forwardNeedsStreaming,
];
