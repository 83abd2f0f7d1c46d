import * as pulumi from "@pulumi/pulumi";
import { ConfigError, ConfigProblem, formatProblems, loadConfig, MAX_POOL_SIZE, parseConfig, ubuntuReleaseOf } from "../components/config";
import { BASE_CONFIG, keyPair, rawConfig, TEST_PRIVATE_KEY } from "./harness";

function parse(overrides: Record<string, unknown>, without: string[] = []) {
    const config: Record<string, unknown> = { ...BASE_CONFIG, ...overrides };
    for (const key of without) delete config[key];
    return parseConfig(rawConfig(config), { stack: "dev" });
}

function problems(overrides: Record<string, unknown>, without: string[] = []): ConfigProblem[] {
    return parse(overrides, without).problems;
}

// loadConfig reads `<project>:<key>`: the project is bbb, as under the engine (outside one the SDK says "project").
beforeAll(() => pulumi.runtime.setMocks({ newResource: (a) => ({ id: a.name, state: a.inputs }), call: (a) => a.inputs }, "bbb", "dev"));

/** The one problem a bad value causes; fails when there is none or more than one. */
const DIAL_SETTINGS = { number: "+49 30 1234567", sipProviderCidrs: ["192.0.2.0/24"], gateway: { host: "sip.example.net", username: "4930123", password: "pw-secret-1" } };

function only(overrides: Record<string, unknown>, without: string[] = []): ConfigProblem {
    const found = problems(overrides, without);
    expect(found).toHaveLength(1);
    return found[0];
}

describe("a valid configuration", () => {
    test("passes with every default applied", () => {
        const { settings, problems } = parse({});
        expect(problems).toEqual([]);
        expect(settings).toMatchObject({
            hostnamePrefix: "",
            allowSshFromAnywhere: false,
            image: "Ubuntu 22.04",
            bbbVersion: "jammy-300",
            poolSize: 1,
            scalelite: false,
            greenlight: false,
            turnRelayPorts: { from: 32769, to: 65535 },
            flavors: { turn: "m1.medium", bbb: "m1.xlarge", scalelite: "m1.large", greenlight: "m1.medium" },
            volumeSizes: { turn: 20, bbb: 80, scalelite: 40, greenlight: 30 },
        });
    });

    test("a partial per-role map keeps the defaults of the other roles", () => {
        const { settings } = parse({ flavors: { bbb: "m1.2xlarge" }, volumeSizes: { bbb: 500 } });
        expect(settings?.flavors).toEqual({ turn: "m1.medium", bbb: "m1.2xlarge", scalelite: "m1.large", greenlight: "m1.medium", monitoring: "m1.medium", streaming: "m1.large" });
        expect(settings?.volumeSizes.bbb).toBe(500);
        expect(settings?.volumeSizes.turn).toBe(20);
    });

    test("a pool with Scalelite and Greenlight, on a provider network, without DNS automation", () => {
        const { problems } = parse({
            poolSize: 5,
            scalelite: true,
            greenlight: true,
            network: { mode: "provider", name: "public" },
            dns: { provider: "none" },
        });
        expect(problems).toEqual([]);
    });
});

describe("every problem names the key, what was expected, what was given and a fix", () => {
    test("the issue's example: a pool without Scalelite and SSH from the world, both reported at once", () => {
        const found = problems({ poolSize: 3, sshAllowedCidrs: ["0.0.0.0/0"] });
        expect(found.map((p) => p.key)).toEqual(["sshAllowedCidrs[0]", "poolSize"]);
        const message = formatProblems(found);
        expect(message).toMatch(/^2 configuration problems; nothing was created:/);
        expect(message).toContain("pulumi config set -s dev scalelite true");
        expect(message).toContain("allowSshFromAnywhere");
        for (const p of found) {
            expect(p.expected).not.toBe("");
            expect(p.given).not.toBe("");
            expect(p.fix).toMatch(/pulumi config/);
        }
    });

    test.each(["domain", "letsEncryptEmail", "sshAllowedCidrs", "sshPublicKey", "sshPrivateKey", "network", "dns"])(
        "required key %s is reported when missing",
        (key) => {
            const p = only({}, [key]);
            expect(p.key).toBe(key);
            expect(p.given).toBe("nothing (the key is not set)");
            expect(p.fix).toContain(key);
        },
    );

    test("a value of the wrong type", () => {
        const found = parseConfig({ ...rawConfig(BASE_CONFIG), "bbb:poolSize": "three", "bbb:scalelite": "yes", "bbb:network": "private" }).problems;
        expect(found.map((p) => [p.key, p.expected.split(" (")[0], p.given])).toEqual([
            ["network", "an object", '"private"'],
            ["poolSize", "an integer", '"three"'],
            ["scalelite", "a boolean", '"yes"'],
        ]);
    });

    test("an unknown key is reported with the key it resembles", () => {
        const found = parseConfig({ ...rawConfig(BASE_CONFIG), "bbb:poolsize": "3" }, { stack: "dev" }).problems;
        expect(found).toHaveLength(1);
        expect(found[0].key).toBe("poolsize");
        expect(found[0].fix).toContain("pulumi config set -s dev poolSize");
    });

    test("keys of other namespaces (providers) are not ours to judge", () => {
        expect(parseConfig({ ...rawConfig(BASE_CONFIG), "cloudflare:apiToken": "x", "openstack:authUrl": "y" }).problems).toEqual([]);
    });
});

describe("rules", () => {
    test("domain must be a lower-case DNS zone name", () => {
        expect(only({ domain: "Example.ORG" }).fix).toBe("pulumi config set -s dev domain example.org");
        expect(only({ domain: "localhost" }).key).toBe("domain");
        expect(only({ domain: "exa_mple.org" }).key).toBe("domain");
    });

    test("apiHostname is a DNS label of its own: not a host's name, not too long with the prefix", () => {
        expect(problems({ apiHostname: "meet" })).toEqual([]);
        for (const taken of ["turn", "scalelite", "greenlight", "bbb-1", "bbb-12-r3"]) expect(only({ apiHostname: taken }).key).toBe("apiHostname");
        expect(only({ apiHostname: "Meet" }).given).toBe('"Meet"');
        expect(only({ apiHostname: "meet.example" }).key).toBe("apiHostname");
        expect(only({ apiHostname: "" }).key).toBe("apiHostname");
        expect(problems({ hostnamePrefix: "dev-", apiHostname: "x".repeat(59) })).toEqual([]);
        const long = only({ hostnamePrefix: "dev-", apiHostname: "x".repeat(60) });
        expect([long.key, long.expected, long.fix]).toEqual(["apiHostname", expect.stringContaining("at most 59 characters"), "pulumi config set -s dev apiHostname meet"]);
    });

    test("hostnamePrefix is empty or a label start, short enough for the longest host name", () => {
        expect(problems({ hostnamePrefix: "dev-" })).toEqual([]);
        expect(only({ hostnamePrefix: "Dev_" }).key).toBe("hostnamePrefix");
        expect(only({ hostnamePrefix: "-dev" }).key).toBe("hostnamePrefix");
        expect(only({ hostnamePrefix: "x".repeat(54) }).key).toBe("hostnamePrefix");
        expect(problems({ hostnamePrefix: "x".repeat(53) })).toEqual([]);
    });

    test("letsEncryptEmail must be an e-mail address", () => {
        expect(only({ letsEncryptEmail: "ops" }).key).toBe("letsEncryptEmail");
    });

    test("a dial-in password that is missing says so; one that is wrong is not shown", () => {
        const missing = only({ dialIn: { ...DIAL_SETTINGS, gateway: { host: "sip.example.net", username: "4930123" } } });
        expect([missing.key, missing.given]).toEqual(["dialIn.gateway.password", "none"]);
        const wrong = only({ dialIn: { ...DIAL_SETTINGS, gateway: { host: "sip.example.net", username: "4930123", password: "pw <secret>" } } });
        expect([wrong.key, wrong.given]).toEqual(["dialIn.gateway.password", "a secret value (not shown)"]);
        expect(JSON.stringify(wrong)).not.toContain("pw <secret>");
    });

    test("the same range twice (SSH or SIP) is refused: its two firewall rules would share a name, which Pulumi refuses", () => {
        const ssh = only({ sshAllowedCidrs: ["198.51.100.0/24", "2001:db8:100::/48", "198.51.100.0/24"] });
        expect([ssh.key, ssh.fix]).toEqual(["sshAllowedCidrs[2]", "pulumi config rm -s dev --path 'sshAllowedCidrs[2]'"]);
        expect(ssh.expected).toContain("it is sshAllowedCidrs[0] already");
        const sip = only({ dialIn: { ...DIAL_SETTINGS, sipProviderCidrs: ["192.0.2.0/24", "192.0.2.0/24"] } });
        expect([sip.key, sip.fix]).toEqual(["dialIn.sipProviderCidrs[1]", "pulumi config rm -s dev --path 'dialIn.sipProviderCidrs[1]'"]);
    });

    test("sshAllowedCidrs: world ranges are refused unless allowSshFromAnywhere", () => {
        expect(only({ sshAllowedCidrs: ["::/0"] }).key).toBe("sshAllowedCidrs[0]");
        expect(problems({ sshAllowedCidrs: ["0.0.0.0/0", "::/0"], allowSshFromAnywhere: true })).toEqual([]);
    });

    test("sshAllowedCidrs: every entry is a CIDR in canonical form, and there is at least one", () => {
        expect(only({ sshAllowedCidrs: ["198.51.100.7"] }).key).toBe("sshAllowedCidrs[0]");
        expect(only({ sshAllowedCidrs: ["198.51.100.0/24", "300.1.1.1/8"] }).key).toBe("sshAllowedCidrs[1]");
        const hostBits = only({ sshAllowedCidrs: ["198.51.100.7/24"] });
        expect(hostBits.fix).toContain("198.51.100.0/24");
        expect(only({ sshAllowedCidrs: ["2001:DB8:100:0::/48"] }).fix).toContain("2001:db8:100::/48");
        expect(only({ sshAllowedCidrs: [] }).key).toBe("sshAllowedCidrs");
    });

    test("sshPublicKey must be an OpenSSH public key line", () => {
        expect(only({ sshPublicKey: "not a key" }).key).toBe("sshPublicKey");
        const rsa = keyPair("rsa", "-b", "2048");
        expect(problems({ sshPublicKey: rsa.publicKey, sshPrivateKey: rsa.privateKey })).toEqual([]);
    });

    test("sshPrivateKey must be a private key, and its value is never shown", () => {
        const secret = "hunter2-not-a-key";
        const p = only({ sshPrivateKey: secret });
        expect(p.key).toBe("sshPrivateKey");
        expect(formatProblems([p])).not.toContain(secret);
        expect(problems({ sshPrivateKey: TEST_PRIVATE_KEY.replace(/\n/g, "\r\n") })).toEqual([]);
    });

    test("flavors: only known roles, each a name", () => {
        expect(only({ flavors: { bbbb: "m1.large" } }).key).toBe("flavors.bbbb");
        expect(only({ flavors: { bbb: "" } }).key).toBe("flavors.bbb");
    });

    test("volumeSizes: whole GB from 10", () => {
        expect(only({ volumeSizes: { bbb: 5 } }).key).toBe("volumeSizes.bbb");
        expect(only({ volumeSizes: { turn: 20.5 } }).key).toBe("volumeSizes.turn");
    });

    test("bbbVersion must be a known package line: BigBlueButton 3.0", () => {
        expect(only({ bbbVersion: "3.0" }).key).toBe("bbbVersion");
        expect(only({ bbbVersion: "jammy-310" }).key).toBe("bbbVersion");
        // 2.7: its installer's yq v3 reads none of the `yq e` the steps use, and nothing of it was checked.
        const p = only({ bbbVersion: "focal-270", image: "Ubuntu 20.04" });
        expect([p.key, p.expected, p.fix]).toEqual(["bbbVersion", "a BigBlueButton package line: jammy-30x (BigBlueButton 3.0; 2.7, focal-27x, is not supported)", "pulumi config set -s dev bbbVersion jammy-300"]);
    });

    test("bbbVersion must match the Ubuntu release the image name states", () => {
        const p = only({ bbbVersion: "jammy-300", image: "Ubuntu 20.04 Focal" });
        expect([p.key, p.given, p.fix]).toEqual(["bbbVersion", 'image "Ubuntu 20.04 Focal", which is Ubuntu 20.04', "pulumi config set -s dev image 'Ubuntu 22.04'"]);
        expect(problems({ image: "our-golden-image" })).toEqual([]);
    });

    test("ubuntuReleaseOf reads numbers and code names", () => {
        expect(ubuntuReleaseOf("Ubuntu 22.04 LTS")).toBe("22.04");
        expect(ubuntuReleaseOf("ubuntu-24.04-amd64")).toBe("24.04");
        expect(ubuntuReleaseOf("Ubuntu Jammy")).toBe("22.04");
        expect(ubuntuReleaseOf("Debian 12")).toBeUndefined();
    });

    test("network: mode is provider or floating; floating needs a pool, provider takes none", () => {
        expect(only({ network: { mode: "public", name: "x" } }).key).toBe("network.mode");
        expect(only({ network: { mode: "floating", name: "private" } }).key).toBe("network.floatingIpPool");
        expect(only({ network: { mode: "provider", name: "public", floatingIpPool: "ext" } }).key).toBe("network.floatingIpPool");
        expect(only({ network: { mode: "provider" } }).key).toBe("network.name");
        expect(only({ network: { mode: "provider", name: "public", subnet: "x" } }).key).toBe("network.subnet");
    });

    test("poolSize is a whole number from 1 to MAX_POOL_SIZE: a typo of 1000 would declare some 13,000 resources, 1e20 crash", () => {
        expect(only({ poolSize: 0 }).key).toBe("poolSize");
        for (const size of [MAX_POOL_SIZE + 1, 1000, 1e20]) {
            const p = only({ poolSize: size, scalelite: true });
            expect([p.key, p.expected, p.fix]).toEqual(["poolSize", `a whole number from 1 to ${MAX_POOL_SIZE} (more servers: another stack)`, "pulumi config set -s dev poolSize 3"]);
        }
        expect(problems({ poolSize: MAX_POOL_SIZE, scalelite: true })).toEqual([]);
    });

    test("bbbRelease is a whole number from 1 to 999 (it is in the servers' names)", () => {
        for (const release of [1000, 1e20]) expect(only({ bbbRelease: release, poolSize: 2, scalelite: true }).expected).toBe("a whole number from 1 to 999 (raise it to replace the pool's servers)");
    });

    test("poolSize above 1 needs scalelite", () => {
        const p = only({ poolSize: 2 });
        expect(p.given).toBe("poolSize 2 with scalelite false");
        expect(problems({ poolSize: 2, scalelite: true })).toEqual([]);
    });

    test("dns: provider is cloudflare or none; cloudflare needs the zone id", () => {
        expect(only({ dns: { provider: "route53" } }).key).toBe("dns.provider");
        expect(only({ dns: { provider: "cloudflare" } }).key).toBe("dns.zoneId");
        expect(only({ dns: { provider: "cloudflare", zoneId: "example.org" } }).key).toBe("dns.zoneId");
    });

    test("turnRelayPorts is FROM-TO above 1023 that leaves out the matrix's other ports and the never-open ones", () => {
        expect(problems({ turnRelayPorts: "49152-65535" })).toEqual([]);
        expect(only({ turnRelayPorts: "1000-2000" }).key).toBe("turnRelayPorts");
        expect(only({ turnRelayPorts: "3000-4000" }).key).toBe("turnRelayPorts");
        expect(only({ turnRelayPorts: "60000-50000" }).key).toBe("turnRelayPorts");
        expect(only({ turnRelayPorts: "32769:65535" }).key).toBe("turnRelayPorts");
        // The same rule the policy pack applies: no port the matrix or DESIGN.md keeps for something else.
        expect(only({ turnRelayPorts: "10000-20000" }).expected).toContain("leaves out the port matrix's 16384-32768");
        expect(only({ turnRelayPorts: "5000-6000" }).expected).toContain("leaves out the port matrix's 5060");
        expect(only({ turnRelayPorts: "5400-5500" }).expected).toContain("leaves out 5432, which is never open to the world");
    });
});

test("bbbInstallerRef is empty or a git ref", () => {
    expect(problems({ bbbInstallerRef: "0123abcd" })).toEqual([]);
    expect(problems({ bbbInstallerRef: "feature/x" })).toEqual([]);
    expect(only({ bbbInstallerRef: "main; rm -rf /" }).key).toBe("bbbInstallerRef");
    expect(only({ bbbInstallerRef: "../../evil" }).key).toBe("bbbInstallerRef");
});

describe("pool settings", () => {
    const pool = { scalelite: true, poolSize: 3 };

    test("scaleliteVersion and greenlightVersion are release tags", () => {
        expect(only({ scaleliteVersion: "latest" }).key).toBe("scaleliteVersion");
        expect(only({ greenlightVersion: "v2.14" }).key).toBe("greenlightVersion");
        expect(problems({ scaleliteVersion: "v1.6.12.1", greenlightVersion: "v3" })).toEqual([]);
    });

    test("consumers: lower-case names, distinct, at least one, and only with Scalelite", () => {
        expect(problems({ ...pool, consumers: ["mattermost", "pod", "moodle"] })).toEqual([]);
        expect(only({ ...pool, consumers: [] }).key).toBe("consumers");
        expect(only({ ...pool, consumers: ["Mattermost"] }).key).toBe("consumers[0]");
        expect(only({ ...pool, consumers: ["pod", "pod"] }).key).toBe("consumers[1]");
        expect(only({ consumers: ["pod"] }).expected).toContain("scalelite: true");
    });

    test("drain names BBB servers of the pool, and needs Scalelite", () => {
        expect(problems({ ...pool, drain: ["bbb-3"] })).toEqual([]);
        expect(only({ ...pool, drain: ["bbb-4"] }).expected).toContain("bbb-1 .. bbb-3");
        expect(only({ ...pool, drain: ["turn"] }).key).toBe("drain[0]");
        expect(only({ drain: ["bbb-1"] }).key).toBe("drain");
    });

    test("bbbRelease: a whole number from 1; above 1 only in a pool (bbb-1's name is the single topology's API)", () => {
        expect(problems({ ...pool, bbbRelease: 2 })).toEqual([]);
        expect(only({ ...pool, bbbRelease: 0 }).key).toBe("bbbRelease");
        const single = only({ bbbRelease: 2 });
        expect([single.key, single.fix]).toEqual(["bbbRelease", "pulumi config rm -s dev bbbRelease"]);
    });

    test("the prefix leaves room for the longest BBB server name, which grows with the pool and its release", () => {
        // bbb-12-r100 is one character longer than greenlight.
        expect(problems({ ...pool, poolSize: 12, bbbRelease: 100, hostnamePrefix: "x".repeat(52) })).toEqual([]);
        const p = only({ ...pool, poolSize: 12, bbbRelease: 100, hostnamePrefix: "x".repeat(53) });
        expect([p.key, p.expected]).toEqual(["hostnamePrefix", expect.stringContaining("at most 52 characters")]);
    });

    describe("upgrade", () => {
        const rolling = { ...pool, bbbRelease: 2, bbbVersion: "jammy-301" };

        test("the servers not yet upgraded keep what the release before was built from; unset fields default to today's", () => {
            const { settings, problems: found } = parse({ ...rolling, upgrade: { servers: 1, from: { bbbVersion: "jammy-300" } } });
            expect(found).toEqual([]);
            expect(settings?.upgrade).toEqual({ servers: 1, from: { bbbVersion: "jammy-300", image: "Ubuntu 22.04", installerRef: "26ce2d16c2a82ef962d685525b0c20bb89d4d151" } });
            const pinned = parse({ ...rolling, bbbInstallerRef: "0123abcd", upgrade: { servers: 3, from: { image: "Ubuntu 22.04 2025-01", bbbInstallerRef: "" } } });
            expect(pinned.settings?.upgrade?.from).toEqual({ bbbVersion: "jammy-301", image: "Ubuntu 22.04 2025-01", installerRef: "26ce2d16c2a82ef962d685525b0c20bb89d4d151" });
            expect(parse({ ...rolling, bbbInstallerRef: "0123abcd", upgrade: { servers: 0 } }).settings?.upgrade?.from.installerRef).toBe("0123abcd");
        });

        test("servers counts from 0 to poolSize", () => {
            const p = only({ ...rolling, upgrade: { servers: 4 } });
            expect([p.key, p.expected, p.given]).toEqual(["upgrade.servers", expect.stringContaining("from 0 to poolSize (3)"), "4"]);
            expect(only({ ...rolling, upgrade: { servers: "all" } }).key).toBe("upgrade.servers");
            expect(only({ ...rolling, upgrade: {} }).key).toBe("upgrade.servers");
        });

        test("from is checked like bbbVersion, image and bbbInstallerRef, and takes no other field", () => {
            expect(only({ ...rolling, upgrade: { servers: 1, from: { bbbVersion: "3.0" } } }).key).toBe("upgrade.from.bbbVersion");
            const mismatch = only({ ...rolling, upgrade: { servers: 1, from: { bbbVersion: "jammy-300", image: "Ubuntu 20.04" } } });
            expect([mismatch.key, mismatch.given, mismatch.fix]).toEqual([
                "upgrade.from.bbbVersion",
                'upgrade.from.image "Ubuntu 20.04", which is Ubuntu 20.04',
                "pulumi config set -s dev --path upgrade.from.image 'Ubuntu 22.04'",
            ]);
            expect(only({ ...rolling, upgrade: { servers: 1, from: { image: "" } } }).key).toBe("upgrade.from.image");
            expect(only({ ...rolling, upgrade: { servers: 1, from: { bbbInstallerRef: "../x" } } }).key).toBe("upgrade.from.bbbInstallerRef");
            expect(only({ ...rolling, upgrade: { servers: 1, from: { version: "jammy-300" } } }).key).toBe("upgrade.from.version");
            expect(only({ ...rolling, upgrade: { servers: 1, from: "jammy-300" } }).key).toBe("upgrade.from");
        });

        test("needs a pool, and bbbRelease raised above the release being replaced", () => {
            const single = only({ bbbVersion: "jammy-301", upgrade: { servers: 1 } });
            expect([single.key, single.expected]).toEqual(["upgrade", expect.stringContaining("re-runs the installer in place")]);
            const same = only({ ...pool, upgrade: { servers: 1 } });
            expect([same.key, same.fix]).toEqual(["upgrade", "pulumi config set -s dev bbbRelease 2"]);
        });
    });

    test("dataVolumeSizes: whole GB for bbb, scalelite and greenlight only", () => {
        expect(parse({ ...pool, dataVolumeSizes: { greenlight: 5 } }).settings?.dataVolumeSizes).toEqual({ bbb: 100, scalelite: 20, greenlight: 5 });
        expect(only({ dataVolumeSizes: { scalelite: 0 } }).key).toBe("dataVolumeSizes.scalelite");
        expect(only({ dataVolumeSizes: { turn: 10 } }).key).toBe("dataVolumeSizes.turn");
    });
});

describe("field features", () => {
    const DIAL = DIAL_SETTINGS;

    test("privacy is strict or standard; strict is the default", () => {
        expect(parse({}).settings?.privacy).toBe("strict");
        expect(only({ privacy: "paranoid" }).key).toBe("privacy");
    });

    test("recordings with strict privacy are a contradiction, named with both ways out", () => {
        const p = only({ recordings: { enabled: true } });
        expect(p.key).toBe("recordings.enabled");
        expect(p.fix).toContain("pulumi config set -s dev privacy standard");
        expect(parse({ privacy: "standard", recordings: { enabled: true, video: true } }).settings?.recordings).toEqual({ enabled: true, retentionDays: 14, video: true });
    });

    test("recordings: known fields, booleans, retention in whole days", () => {
        expect(only({ recordings: { retentionDays: 0 } }).key).toBe("recordings.retentionDays");
        expect(only({ recordings: { video: "yes" } }).key).toBe("recordings.video");
        expect(only({ recordings: { keep: 3 } }).key).toBe("recordings.keep");
    });

    test("dial-in is optional and off by default", () => {
        expect(parse({}).settings?.dialIn).toBeUndefined();
        expect(parse({ dialIn: DIAL }).settings?.dialIn).toEqual(DIAL);
    });

    test("dial-in without the provider's CIDRs is refused: 5060 is never open to the world", () => {
        expect(only({ dialIn: { ...DIAL, sipProviderCidrs: [] } }).key).toBe("dialIn.sipProviderCidrs");
        expect(only({ dialIn: { ...DIAL, sipProviderCidrs: ["0.0.0.0/0"] } }).key).toBe("dialIn.sipProviderCidrs[0]");
        expect(only({ dialIn: { ...DIAL, sipProviderCidrs: ["192.0.2.7/24"] } }).fix).toContain("192.0.2.0/24");
    });

    test("dial-in needs a number and the gateway's host, user and password; the password is never shown", () => {
        expect(only({ dialIn: { ...DIAL, number: "call us" } }).key).toBe("dialIn.number");
        const found = problems({ dialIn: { ...DIAL, gateway: { host: "sip.example.net", password: "has space" } } });
        expect(found.map((p) => p.key)).toEqual(["dialIn.gateway.username", "dialIn.gateway.password"]);
        expect(formatProblems(found)).not.toContain("has space");
    });

    test("webhook URLs are https and need webhooks", () => {
        expect(problems({ webhooks: true, webhookUrls: ["https://hooks.example.org/bbb"] })).toEqual([]);
        expect(only({ webhooks: true, webhookUrls: ["http://hooks.example.org"] }).key).toBe("webhookUrls[0]");
        expect(only({ webhookUrls: ["https://hooks.example.org/bbb"] }).key).toBe("webhookUrls");
    });

    test("loadConfig wraps the gateway password as a Pulumi secret", async () => {
        pulumi.runtime.setAllConfig(rawConfig({ ...BASE_CONFIG, dialIn: DIAL }), ["bbb:sshPrivateKey", "bbb:dialIn"]);
        const settings = loadConfig();
        expect(await (settings.dialIn!.gateway.password as any).isSecret).toBe(true);
        pulumi.runtime.setAllConfig({});
    });
});

describe("loadConfig reads the stack's configuration through the Pulumi runtime", () => {
    afterEach(() => pulumi.runtime.setAllConfig({}));

    test("the keys are in the project's namespace, whatever pulumi new named it", async () => {
        await pulumi.runtime.setMocks({ newResource: (a) => ({ id: a.name, state: a.inputs }), call: (a) => a.inputs }, "my-bbb", "dev");
        try {
            const raw = Object.fromEntries(Object.entries(rawConfig(BASE_CONFIG)).map(([k, v]) => [k.replace(/^bbb:/, "my-bbb:"), v]));
            pulumi.runtime.setAllConfig(raw, ["my-bbb:sshPrivateKey"]);
            expect(loadConfig().domain).toBe("example.org");
            pulumi.runtime.setAllConfig(rawConfig(BASE_CONFIG), ["bbb:sshPrivateKey"]);
            expect(() => loadConfig()).toThrow(/domain\n {4}expected: a value/);
        } finally {
            await pulumi.runtime.setMocks({ newResource: (a) => ({ id: a.name, state: a.inputs }), call: (a) => a.inputs }, "bbb", "dev");
        }
    });

    test("the private key comes back as a Pulumi secret", async () => {
        pulumi.runtime.setAllConfig(rawConfig(BASE_CONFIG), ["bbb:sshPrivateKey"]);
        const settings = loadConfig();
        expect(await (settings.sshPrivateKey as any).isSecret).toBe(true);
        expect(await new Promise((resolve) => settings.sshPrivateKey.apply(resolve))).toBe(TEST_PRIVATE_KEY);
    });

    test("problems throw one ConfigError that lists them all, reported without a stack trace", () => {
        pulumi.runtime.setAllConfig(rawConfig({ ...BASE_CONFIG, poolSize: 2, domain: "x" }), ["bbb:sshPrivateKey"]);
        let thrown: unknown;
        try {
            loadConfig();
        } catch (err) {
            thrown = err;
        }
        expect(thrown).toBeInstanceOf(ConfigError);
        expect(pulumi.RunError.isInstance(thrown)).toBe(true);
        expect((thrown as ConfigError).problems.map((p) => p.key)).toEqual(["domain", "poolSize"]);
    });
});
