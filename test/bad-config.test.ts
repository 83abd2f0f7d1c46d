// The bad-configuration corpus: what a careless or hostile operator could set, each refused before anything is
// declared, with the key named, what was expected, what was given (never a secret) and a fix for the stack.
// Every case changes one thing of a valid configuration (BASE_CONFIG, or a pool of three) and expects exactly
// the problem it names: a check that stops refusing, or refuses the wrong key, fails its case.
import * as pulumi from "@pulumi/pulumi";
import { formatProblems, parseConfig } from "../components/config";
import { BASE_CONFIG, evaluate, keyPair, rawConfig, ROTATED_KEYS, secretKeysOf, TEST_PRIVATE_KEY } from "./harness";

type Config = Record<string, unknown>;

interface Case {
    name: string;
    /** The configuration: BASE_CONFIG (or POOL) changed; `undefined` removes a key. */
    config: Config;
    /** Raw engine values set over it (a value of the wrong type, as the engine passes it). */
    raw?: Record<string, string>;
    /** The keys the stack holds encrypted, when not every secret key. */
    secretKeys?: string[];
    /** The key of the one problem expected. */
    key: string;
    /** Words the expectation must contain. */
    expected?: RegExp;
}

const POOL: Config = { ...BASE_CONFIG, scalelite: true, poolSize: 3 };
const DIAL_IN = { number: "+49 30 1234567", sipProviderCidrs: ["192.0.2.0/24"], gateway: { host: "sip.example.net", username: "4930123", password: "Gw-Pa55word-7f3a9c" } };
const WEBHOOKS = { webhooks: true };
const without = (key: string): Config => ({ ...BASE_CONFIG, [key]: undefined });
const base = (change: Config): Config => ({ ...BASE_CONFIG, ...change });
const pool = (change: Config): Config => ({ ...POOL, ...change });
const dialIn = (change: Record<string, unknown>): Config => base({ dialIn: { ...DIAL_IN, ...change } });
const hook = (url: string): Config => base({ ...WEBHOOKS, webhookUrls: [url] });
const stream = (change: Record<string, unknown>): Config => base({ streaming: { enabled: true, ...change } });

// Keys made by ssh-keygen: what OpenSSH itself writes, not what a regex expects.
const RSA_1024 = keyPair("rsa", "-b", "1024");
const WITH_PASSPHRASE = keyPair("ed25519", "-N", "a passphrase");

const CASES: Case[] = [
    // Required keys.
    ...["domain", "letsEncryptEmail", "sshAllowedCidrs", "sshPublicKey", "sshPrivateKey", "network", "dns"].map((key) => ({ name: `${key} missing`, config: without(key), key })),

    // A value of another type: the engine passes lists and maps as JSON, whatever the key.
    { name: "poolSize as a word", config: BASE_CONFIG, raw: { poolSize: "three" }, key: "poolSize", expected: /an integer/ },
    { name: "poolSize 1e20 (as YAML writes it)", config: BASE_CONFIG, raw: { poolSize: "1e20" }, key: "poolSize" },
    { name: "scalelite as yes", config: BASE_CONFIG, raw: { scalelite: "yes" }, key: "scalelite" },
    { name: "network as a string", config: BASE_CONFIG, raw: { network: "private" }, key: "network" },
    { name: "domain as a YAML list", config: base({ domain: ["example.org"] }), key: "domain", expected: /a string/ },
    { name: "image as a YAML map", config: base({ image: { name: "Ubuntu 22.04" } }), key: "image", expected: /a string/ },
    { name: "letsEncryptEmail as a YAML list", config: base({ letsEncryptEmail: ["ops@example.org"] }), key: "letsEncryptEmail" },
    { name: "sshAllowedCidrs as one string", config: base({ sshAllowedCidrs: "198.51.100.0/24" }), key: "sshAllowedCidrs", expected: /an array/ },
    { name: "an unknown key (a typo)", config: base({ poolsize: 3 }), key: "poolsize" },
    { name: "an unknown field of an object", config: base({ network: { mode: "provider", name: "public", subnet: "x" } }), key: "network.subnet" },

    // The domain and the host names.
    { name: "domain in capitals", config: base({ domain: "Example.ORG" }), key: "domain" },
    { name: "domain an IPv4 address", config: base({ domain: "203.0.113.10" }), key: "domain", expected: /not an IP address/ },
    { name: "domain under .local", config: base({ domain: "bbb.local" }), key: "domain", expected: /special-use/ },
    { name: "domain under .internal", config: base({ domain: "meet.internal" }), key: "domain", expected: /special-use/ },
    { name: "domain localhost", config: base({ domain: "localhost" }), key: "domain" },
    { name: "a private key pasted as the domain", config: base({ domain: TEST_PRIVATE_KEY }), key: "domain" },
    { name: "network nested deeper than JSON can show", config: BASE_CONFIG, raw: { network: `${"[".repeat(5000)}${"]".repeat(5000)}` }, key: "network" },
    { name: "domain with an underscore", config: base({ domain: "exa_mple.org" }), key: "domain" },
    { name: "domain too long for its host names", config: base({ domain: `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(50)}.org` }), key: "domain", expected: /at most \d+ characters/ },
    { name: "hostnamePrefix starting with a hyphen", config: base({ hostnamePrefix: "-dev" }), key: "hostnamePrefix" },
    { name: "hostnamePrefix too long for greenlight's label", config: base({ hostnamePrefix: "x".repeat(54) }), key: "hostnamePrefix" },
    { name: "apiHostname a server's name", config: base({ apiHostname: "bbb-2" }), key: "apiHostname" },
    { name: "apiHostname with a dot", config: base({ apiHostname: "meet.example" }), key: "apiHostname" },
    { name: "letsEncryptEmail without a domain", config: base({ letsEncryptEmail: "ops" }), key: "letsEncryptEmail" },
    { name: "letsEncryptEmail with shell in it", config: base({ letsEncryptEmail: "o'p$(id)@example.org" }), key: "letsEncryptEmail" },
    { name: "letsEncryptEmail with a command after it", config: base({ letsEncryptEmail: "ops@example.org;rm" }), key: "letsEncryptEmail" },
    { name: "a key of Object's prototype", config: BASE_CONFIG, raw: { constructor: "x" }, key: "constructor" },

    // SSH ranges: never everyone, unless knowingly.
    { name: "SSH from 0.0.0.0/0", config: base({ sshAllowedCidrs: ["0.0.0.0/0"] }), key: "sshAllowedCidrs[0]" },
    { name: "SSH from ::/0", config: base({ sshAllowedCidrs: ["::/0"] }), key: "sshAllowedCidrs[0]" },
    { name: "SSH from both halves of IPv4", config: base({ sshAllowedCidrs: ["0.0.0.0/1", "128.0.0.0/1"] }), key: "sshAllowedCidrs[0]", expected: /no wider than \/8/ },
    { name: "SSH from three ranges that add up to IPv4", config: base({ sshAllowedCidrs: ["198.51.100.0/24", "128.0.0.0/2", "192.0.0.0/2", "0.0.0.0/1"] }), key: "sshAllowedCidrs[1]" },
    { name: "SSH from a /7", config: base({ sshAllowedCidrs: ["8.0.0.0/7"] }), key: "sshAllowedCidrs[0]" },
    { name: "SSH from IPv6's global unicast space in halves", config: base({ sshAllowedCidrs: ["2000::/4", "3000::/4"] }), key: "sshAllowedCidrs[0]", expected: /no wider than \/16/ },
    { name: "SSH from ::/1, which holds all of 2000::/3", config: base({ sshAllowedCidrs: ["::/1"] }), key: "sshAllowedCidrs[0]" },
    { name: "SSH from IPv4-mapped IPv6 (all of IPv4)", config: base({ sshAllowedCidrs: ["::ffff:0:0/96"] }), key: "sshAllowedCidrs[0]", expected: /ipv4Mapped/ },
    { name: "SSH from 6to4 (any IPv4 host through a relay)", config: base({ sshAllowedCidrs: ["2002::/16"] }), key: "sshAllowedCidrs[0]", expected: /6to4/ },
    { name: "SSH from NAT64's prefix", config: base({ sshAllowedCidrs: ["64:ff9b::/96"] }), key: "sshAllowedCidrs[0]", expected: /rfc6052/ },
    { name: "SSH from more ranges than the security group quota takes", config: base({ sshAllowedCidrs: Array.from({ length: 21 }, (_, i) => `198.51.${i}.0/24`) }), key: "sshAllowedCidrs", expected: /at most 20 CIDRs/ },
    { name: "the same SSH range twice", config: base({ sshAllowedCidrs: ["198.51.100.0/24", "198.51.100.0/24"] }), key: "sshAllowedCidrs[1]" },
    { name: "an SSH range with host bits", config: base({ sshAllowedCidrs: ["198.51.100.7/24"] }), key: "sshAllowedCidrs[0]", expected: /canonical/ },
    { name: "an SSH address without a prefix", config: base({ sshAllowedCidrs: ["198.51.100.7"] }), key: "sshAllowedCidrs[0]" },
    { name: "no SSH range at all", config: base({ sshAllowedCidrs: [] }), key: "sshAllowedCidrs" },

    // SSH keys, read by sshpk.
    { name: "a public key that is not one", config: base({ sshPublicKey: "not a key" }), key: "sshPublicKey" },
    { name: "a public key with an empty body", config: base({ sshPublicKey: "ssh-ed25519 " }), key: "sshPublicKey" },
    { name: "a public key cut short", config: base({ sshPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 ops@example.org" }), key: "sshPublicKey" },
    { name: "an RSA key of 1024 bits", config: base({ sshPublicKey: RSA_1024.publicKey, sshPrivateKey: RSA_1024.privateKey }), key: "sshPublicKey", expected: /at least 2048 bits/ },
    { name: "a private key with a passphrase", config: base({ sshPublicKey: WITH_PASSPHRASE.publicKey, sshPrivateKey: WITH_PASSPHRASE.privateKey }), key: "sshPrivateKey", expected: /passphrase/ },
    { name: "a private key that is not sshPublicKey's", config: base({ sshPrivateKey: ROTATED_KEYS.sshPrivateKey }), key: "sshPrivateKey", expected: /private half of sshPublicKey/ },
    { name: "a private key that is not a key", config: base({ sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n" }), key: "sshPrivateKey" },
    { name: "the private key in plain text in the stack file", config: BASE_CONFIG, secretKeys: [], key: "sshPrivateKey", expected: /encrypted/ },

    // Image, versions, flavors, volumes.
    { name: "an empty image name", config: base({ image: " " }), key: "image" },
    { name: "BigBlueButton 2.7", config: base({ bbbVersion: "focal-270" }), key: "bbbVersion" },
    { name: "BigBlueButton 3.0 on Ubuntu 20.04", config: base({ image: "Ubuntu 20.04 Focal" }), key: "bbbVersion", expected: /Ubuntu 22.04/ },
    { name: "a flavor for an unknown role", config: base({ flavors: { bbbb: "m1.large" } }), key: "flavors.bbbb" },
    { name: "a boot volume of 5 GB", config: base({ volumeSizes: { bbb: 5 } }), key: "volumeSizes.bbb" },
    { name: "a data volume of 0 GB", config: base({ dataVolumeSizes: { scalelite: 0 } }), key: "dataVolumeSizes.scalelite" },
    { name: "a relay range over SIP's port", config: base({ turnRelayPorts: "5000-6000" }), key: "turnRelayPorts" },
    { name: "an installer ref with shell in it", config: base({ bbbInstallerRef: "main; rm -rf /" }), key: "bbbInstallerRef" },
    { name: "an installer ref out of the repository", config: base({ bbbInstallerRef: "../../evil" }), key: "bbbInstallerRef" },
    { name: "Scalelite's latest tag", config: base({ scaleliteVersion: "latest" }), key: "scaleliteVersion" },
    { name: "Greenlight 2", config: base({ greenlightVersion: "v2.14" }), key: "greenlightVersion" },

    // Network and DNS.
    { name: "a network mode that does not exist", config: base({ network: { mode: "public", name: "x" } }), key: "network.mode" },
    { name: "floating mode without a pool", config: base({ network: { mode: "floating", name: "private" } }), key: "network.floatingIpPool" },
    { name: "a DNS provider that is not supported", config: base({ dns: { provider: "route53" } }), key: "dns.provider" },
    { name: "a Cloudflare zone id that is a name", config: base({ dns: { provider: "cloudflare", zoneId: "example.org" } }), key: "dns.zoneId" },

    // The pool.
    { name: "poolSize 0", config: base({ poolSize: 0 }), key: "poolSize" },
    { name: "poolSize 1000 (a typo)", config: pool({ poolSize: 1000 }), key: "poolSize", expected: /from 1 to 100/ },
    { name: "a pool without Scalelite", config: base({ poolSize: 3 }), key: "poolSize", expected: /scalelite: true/ },
    { name: "bbbRelease 1000", config: pool({ bbbRelease: 1000 }), key: "bbbRelease" },
    { name: "a consumer name in capitals", config: pool({ consumers: ["Mattermost"] }), key: "consumers[0]" },
    { name: "a drain name with a leading zero", config: pool({ drain: ["bbb-01"] }), key: "drain[0]", expected: /as the pool names it/ },
    { name: "a drain name with the release", config: pool({ drain: ["bbb-3-r2"] }), key: "drain[0]" },
    { name: "a drain name beyond the pool", config: pool({ drain: ["bbb-4"] }), key: "drain[0]", expected: /bbb-1 \.\. bbb-3/ },
    { name: "every server of the pool drained", config: pool({ drain: ["bbb-1", "bbb-2", "bbb-3"] }), key: "drain", expected: /starts no meeting/ },
    { name: "a server drained twice", config: pool({ drain: ["bbb-2", "bbb-2"] }), key: "drain[1]" },
    { name: "three names drained in a pool of three, one of them not the pool's (not every server)", config: pool({ drain: ["bbb-1", "bbb-2", "bbb-9"] }), key: "drain[2]" },
    { name: "a consumer named greenlight beside Greenlight", config: pool({ greenlight: true, consumers: ["default", "greenlight"] }), key: "consumers[1]" },
    { name: "a consumer secret generation for __proto__", config: pool({ consumerSecretGenerations: JSON.parse('{"__proto__": 2}') }), key: "consumerSecretGenerations", expected: /__proto__/ },
    { name: "an upgrade of more servers than the pool has", config: pool({ bbbRelease: 2, upgrade: { servers: 5 } }), key: "upgrade.servers" },
    { name: "an upgrade without a new release", config: pool({ upgrade: { servers: 1 } }), key: "upgrade" },
    { name: "a secret generation for a consumer that does not exist", config: pool({ consumerSecretGenerations: { nobody: 2 } }), key: "consumerSecretGenerations.nobody" },
    { name: "secretGeneration 0", config: base({ secretGeneration: 0 }), key: "secretGeneration" },

    // Privacy and recordings.
    { name: "recordings with strict privacy", config: base({ recordings: { enabled: true } }), key: "recordings.enabled" },
    { name: "recordings kept 0 days", config: base({ privacy: "standard", recordings: { retentionDays: 0 } }), key: "recordings.retentionDays" },
    { name: "a privacy level that does not exist", config: base({ privacy: "paranoid" }), key: "privacy" },

    // Dial-in.
    { name: "a dial-in number of 1 digit", config: dialIn({ number: "1" }), key: "dialIn.number", expected: /E\.164/ },
    { name: "a dial-in number of 31 digits", config: dialIn({ number: `+${"1".repeat(31)}` }), key: "dialIn.number" },
    { name: "a national dial-in number", config: dialIn({ number: "030 1234567" }), key: "dialIn.number" },
    { name: "SIP from the whole Internet", config: dialIn({ sipProviderCidrs: ["0.0.0.0/0"] }), key: "dialIn.sipProviderCidrs[0]" },
    { name: "SIP from both halves of IPv4", config: dialIn({ sipProviderCidrs: ["0.0.0.0/1", "128.0.0.0/1"] }), key: "dialIn.sipProviderCidrs[0]" },
    { name: "a SIP user name the CLI stored as a number (--path)", config: dialIn({ gateway: { ...DIAL_IN.gateway, username: 4930123 } }), key: "dialIn.gateway.username", expected: /--type string/ },
    { name: "a dial-in number the CLI stored as a number (--path)", config: dialIn({ number: 4930123456 }), key: "dialIn.number", expected: /--type string/ },
    { name: "the SIP gateway as one string holding the password", config: dialIn({ gateway: "4930123:Gw-Pa55word-7f3a9c@sip.example.net" }), key: "dialIn.gateway" },
    { name: "the SIP gateway as a list", config: dialIn({ gateway: [DIAL_IN.gateway] }), key: "dialIn.gateway" },
    { name: "dial-in as a list", config: base({ dialIn: [DIAL_IN] }), key: "dialIn" },
    { name: "a SIP gateway without a password", config: dialIn({ gateway: { host: "sip.example.net", username: "4930123" } }), key: "dialIn.gateway.password" },
    { name: "a SIP password with a space", config: dialIn({ gateway: { ...DIAL_IN.gateway, password: "pass word" } }), key: "dialIn.gateway.password" },
    { name: "the SIP password in plain text in the stack file", config: base({ dialIn: DIAL_IN }), secretKeys: ["bbb:sshPrivateKey"], key: "dialIn.gateway.password", expected: /encrypted/ },

    // Webhooks: public https hosts, no credentials.
    { name: "a webhook over http", config: hook("http://hooks.example.org/bbb"), key: "webhookUrls[0]" },
    { name: "a webhook to loopback", config: hook("https://127.0.0.1/hook"), key: "webhookUrls[0]", expected: /loopback/ },
    { name: "a webhook to the metadata service", config: hook("https://169.254.169.254/latest/meta-data"), key: "webhookUrls[0]", expected: /linkLocal/ },
    { name: "a webhook to a private address", config: hook("https://10.0.0.5/hook"), key: "webhookUrls[0]", expected: /private/ },
    { name: "a webhook to IPv6 loopback", config: hook("https://[::1]/hook"), key: "webhookUrls[0]" },
    { name: "a webhook to loopback written as a number", config: hook("https://2130706433/hook"), key: "webhookUrls[0]", expected: /loopback/ },
    { name: "a webhook to IPv4-mapped loopback", config: hook("https://[::ffff:127.0.0.1]/hook"), key: "webhookUrls[0]", expected: /loopback/ },
    { name: "a webhook to localhost", config: hook("https://localhost/hook"), key: "webhookUrls[0]" },
    { name: "a webhook to a .internal name", config: hook("https://metadata.google.internal/hook"), key: "webhookUrls[0]" },
    { name: "a webhook with credentials", config: hook("https://user:pass@hooks.example.org/bbb"), key: "webhookUrls[0]", expected: /without user or password/ },
    { name: "a webhook to localhost with a final dot", config: hook("https://localhost./hook"), key: "webhookUrls[0]" },
    { name: "a webhook with an upper-case scheme (bbb-webhooks.sh refuses it)", config: hook("HTTPS://hooks.example.org/bbb"), key: "webhookUrls[0]" },
    { name: "a webhook without its slashes", config: hook("https:hooks.example.org/bbb"), key: "webhookUrls[0]" },
    { name: "a webhook with backslashes", config: hook("https:\\\\hooks.example.org\\bbb"), key: "webhookUrls[0]" },
    { name: "webhook URLs without webhooks", config: base({ webhookUrls: ["https://hooks.example.org/bbb"] }), key: "webhookUrls" },

    // Streaming: the forward URL lands in nginx's configuration; its stream key is a secret.
    { name: "a forward target over rtmps (nginx's RTMP module has no TLS)", config: stream({ workers: 1, forward: "rtmps://live.example.net/app/KEY-4f2a" }), key: "streaming.forward", expected: /plain rtmp/ },
    { name: "a forward target over http", config: stream({ workers: 1, forward: "https://live.example.net/app/KEY-4f2a" }), key: "streaming.forward" },
    { name: "a forward URL that ends nginx's directive", config: stream({ workers: 1, forward: "rtmp://live.example.net/app/KEY;include /etc/shadow" }), key: "streaming.forward" },
    { name: "a forward URL without application and key", config: stream({ workers: 1, forward: "rtmp://live.example.net" }), key: "streaming.forward" },
    { name: "a forward target on loopback", config: stream({ workers: 1, forward: "rtmp://127.0.0.1/live/KEY-4f2a" }), key: "streaming.forward", expected: /itself/ },
    { name: "a forward URL with a user and password", config: stream({ workers: 1, forward: "rtmp://me:pw@live.example.net/app/KEY-4f2a" }), key: "streaming.forward" },
    { name: "a forward target with streaming off", config: base({ streaming: { forward: "rtmp://live.example.net/app/KEY-4f2a" } }), key: "streaming.forward", expected: /streaming.enabled true/ },
    { name: "the forward URL in plain text in the stack file", config: stream({ workers: 1, forward: "rtmp://live.example.net/app/KEY-4f2a" }), secretKeys: ["bbb:sshPrivateKey"], key: "streaming.forward", expected: /encrypted/ },
    { name: "no streaming worker", config: stream({ workers: 0 }), key: "streaming.workers" },
    { name: "two streams at once forwarded to one stream key", config: stream({ forward: "rtmp://live.example.net/app/KEY-4f2a" }), key: "streaming.workers", expected: /its stream key takes one stream/ },
    { name: "more streaming workers than a host carries", config: stream({ workers: 40 }), key: "streaming.workers" },
    { name: "a stream's bitrate in kbit/s", config: stream({ bitrate: 4000 }), key: "streaming.bitrate" },
    { name: "recordings kept no day", config: stream({ keepDays: 0 }), key: "streaming.keepDays" },
    { name: "streaming as true", config: base({ streaming: true }), key: "streaming" },
];

/** The engine's values for a case: its configuration, then its raw values over it. */
function rawOf(c: Case): Record<string, string> {
    const config = Object.fromEntries(Object.entries(c.config).filter(([, v]) => v !== undefined));
    return { ...rawConfig(config), ...Object.fromEntries(Object.entries(c.raw ?? {}).map(([k, v]) => [`bbb:${k}`, v])) };
}

const secretKeysFor = (c: Case) => c.secretKeys ?? secretKeysOf(Object.fromEntries(Object.entries(c.config).filter(([, v]) => v !== undefined)));

describe("the bad-configuration corpus", () => {
    test("has at least 60 cases, each named once", () => {
        expect(CASES.length).toBeGreaterThanOrEqual(60);
        expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
    });

    test("the configurations it changes are valid as they are", () => {
        for (const config of [BASE_CONFIG, POOL, base({ dialIn: DIAL_IN }), hook("https://hooks.example.org/bbb")]) {
            expect(parseConfig(rawConfig(config), { stack: "dev", secretKeys: secretKeysOf(config) }).problems).toEqual([]);
        }
    });

    test.each(CASES)("$name: refused, naming $key", (c) => {
        const { settings, problems } = parseConfig(rawOf(c), { stack: "dev", secretKeys: secretKeysFor(c) });
        expect(settings).toBeUndefined();
        expect(problems.map((p) => p.key)).toEqual([c.key]);
        const [p] = problems;
        if (c.expected) expect(p.expected).toMatch(c.expected);
        expect(p.given).not.toBe("");
        expect(p.fix).toMatch(/pulumi config (set|rm) -s dev /);
        // No secret in the message: the private keys, the SIP password.
        const message = formatProblems(problems);
        for (const secret of [TEST_PRIVATE_KEY, ROTATED_KEYS.sshPrivateKey, WITH_PASSPHRASE.privateKey, DIAL_IN.gateway.password, "pass word", "KEY-4f2a"]) {
            for (const line of secret.split("\n").filter((l) => l.length > 8 && !l.startsWith("-----"))) expect(message.toLowerCase()).not.toContain(line.toLowerCase());
        }
    });
});

describe("refused up front: the program declares nothing and throws no stack trace", () => {
    test.each(CASES.filter((_, i) => i % 15 === 0))("$name", async (c) => {
        const config = Object.fromEntries(Object.entries(c.config).filter(([, v]) => v !== undefined));
        const run = await evaluate({ ...config, ...c.raw });
        expect(run.resources).toEqual([]);
        // A RunError: Pulumi prints its message alone, without a stack trace.
        expect(pulumi.RunError.isInstance(run.error)).toBe(true);
        expect(run.error!.message).toMatch(/^1 configuration problem; nothing was created:\n {2}\S/);
        expect(run.error!.message).toContain(`  ${c.key}\n`);
        expect(run.error!.message).toContain("pulumi config");
    });
});
