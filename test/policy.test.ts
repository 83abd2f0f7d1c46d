// The policy pack (policy/): each rule called directly with passing and failing resources, the rules over
// everything the program itself registers (dev and prod under mocks), and the pack's policies as the
// engine would see them, without an engine.
import * as path from "path";
import type { PolicyPackArgs, ResourceValidationArgs, ResourceValidationPolicy, StackValidationArgs, StackValidationPolicy } from "@pulumi/policy";
import { ROLES, PortRange } from "../components/config";
import { FirewallInputs, IngressRule, ingressFor } from "../components/ports";
import { bbbProperties } from "../components/bbb";
import { stepStdin } from "../components/remote";
import { bbbPolicies, POLICY_NAMES } from "../policy/policies";
import {
    DEFAULT_TURN_RELAY,
    ResourceDescription,
    TYPES,
    configureStepProperties,
    isRelayRange,
    matrixEntries,
    privacyRecordingViolations,
    privacySetting,
    proxiedDnsViolations,
    recordingViolations,
    stackFromUrn,
    stepInputs,
    unprotectedProdServerViolations,
    unprotectedProdVolumeViolations,
    widerThanMatrixViolations,
    worldAdminPortViolations,
    worldInPiecesViolations,
} from "../policy/rules";
import { BASE_CONFIG, evaluate, Run, stackConfig } from "./harness";

const ROOT = path.join(__dirname, "..");
const urn = (stack: string, type: string, name: string) => `urn:pulumi:${stack}::bbb::${type}::${name}`;

/** A security group rule as firewall.ts declares it. */
function secGroupRule(props: Record<string, unknown>, name = "rule"): ResourceDescription {
    return { type: TYPES.secGroupRule, name, urn: urn("dev", TYPES.secGroupRule, name), props: { direction: "ingress", ...props } };
}

function fromIngress(rule: IngressRule): ResourceDescription {
    return secGroupRule({
        ethertype: rule.ethertype,
        protocol: rule.protocol,
        portRangeMin: rule.from,
        portRangeMax: rule.to,
        remoteIpPrefix: rule.cidr,
        description: rule.why,
    });
}

const world4 = (protocol: string | undefined, from?: number, to = from) =>
    secGroupRule({ ethertype: "IPv4", protocol, portRangeMin: from, portRangeMax: to, remoteIpPrefix: "0.0.0.0/0" });
const world6 = (protocol: string | undefined, from?: number, to = from) =>
    secGroupRule({ ethertype: "IPv6", protocol, portRangeMin: from, portRangeMax: to, remoteIpPrefix: "::/0" });
const fromOffice = (protocol: string | undefined, from?: number, to = from) =>
    secGroupRule({ ethertype: "IPv4", protocol, portRangeMin: from, portRangeMax: to, remoteIpPrefix: "198.51.100.0/24" });

const firewallRules = (r: ResourceDescription) => [...worldAdminPortViolations(r), ...widerThanMatrixViolations(r)];

describe("no-admin-port-open-to-world", () => {
    test("SSH from the world fails, over IPv4, IPv6 and with no source at all", () => {
        for (const rule of [world4("tcp", 22), world6("tcp", 22), secGroupRule({ protocol: "tcp", portRangeMin: 22, portRangeMax: 22 })]) {
            const found = worldAdminPortViolations(rule);
            expect(found).toHaveLength(1);
            expect(found[0]).toMatch(/SSH \(22\/tcp\) is open only to sshAllowedCidrs/);
        }
        // Any prefix of length 0 is the world, however it is written.
        expect(worldAdminPortViolations(secGroupRule({ protocol: "tcp", portRangeMin: 22, portRangeMax: 22, remoteIpPrefix: "10.0.0.0/0" }))).toHaveLength(1);
        expect(worldAdminPortViolations(secGroupRule({ protocol: "tcp", portRangeMin: 22, portRangeMax: 22, remoteIpPrefix: "" }))).toHaveLength(1);
    });

    test("SSH from sshAllowedCidrs or from another security group passes", () => {
        expect(worldAdminPortViolations(fromOffice("tcp", 22))).toEqual([]);
        expect(worldAdminPortViolations(secGroupRule({ protocol: "tcp", portRangeMin: 22, portRangeMax: 22, remoteIpPrefix: "2001:db8:100::/48" }))).toEqual([]);
        expect(worldAdminPortViolations(secGroupRule({ protocol: "tcp", portRangeMin: 22, portRangeMax: 22, remoteGroupId: "sg-ops" }))).toEqual([]);
        // The exporters from the monitoring host's group: a matrix row, not the world.
        for (const port of [9100, 9688]) expect(firewallRules(secGroupRule({ protocol: "tcp", portRangeMin: port, portRangeMax: port, remoteGroupId: "sg-monitoring" }))).toEqual([]);
    });

    test("world rules that are exactly a world row pass", () => {
        for (const [protocol, from, to] of [
            ["tcp", 80, 80],
            ["tcp", 443, 443],
            ["udp", 443, 443],
            ["tcp", 3478, 3478],
            ["udp", 3478, 3478],
            ["udp", 16384, 32768],
            ["udp", 32769, 65535],
        ] as const) {
            expect(worldAdminPortViolations(world4(protocol, from, to))).toEqual([]);
            expect(worldAdminPortViolations(world6(protocol, from, to))).toEqual([]);
        }
    });

    test("ports the matrix never opens to the world fail", () => {
        for (const port of [7443, 5066, 1935, 8021, 5080, 9100, 5432, 6379, 8080]) {
            expect(worldAdminPortViolations(world4("tcp", port))).toHaveLength(1);
        }
        // Monitoring's: the exporters, Prometheus, Alertmanager, the blackbox exporter, Grafana's own port.
        for (const port of [9100, 9688, 9090, 9093, 9094, 9115, 9641, 3000]) {
            expect([port, worldAdminPortViolations(world4("tcp", port))]).toEqual([port, [expect.stringMatching(/is not a world row of the port matrix/)]]);
            expect(worldAdminPortViolations(world6("tcp", port))).toHaveLength(1);
        }
        // A row's port with the other protocol is not that row.
        expect(worldAdminPortViolations(world4("udp", 80))).toHaveLength(1);
        expect(worldAdminPortViolations(world4("tcp", 16384, 32768))).toHaveLength(1);
    });

    test("all protocols or all ports from the world fail", () => {
        expect(worldAdminPortViolations(world4(undefined, 443))[0]).toMatch(/every protocol/);
        expect(worldAdminPortViolations(world6("any", 443))[0]).toMatch(/every protocol/);
        expect(worldAdminPortViolations(world4("tcp"))[0]).toMatch(/every port/);
        expect(worldAdminPortViolations(world4("tcp", 0, 0))[0]).toMatch(/every port/);
        expect(worldAdminPortViolations(secGroupRule({ ethertype: "IPv4" }))).toHaveLength(1);
    });

    test("egress rules and other resource types are not judged", () => {
        expect(worldAdminPortViolations(secGroupRule({ direction: "egress", ethertype: "IPv4", remoteIpPrefix: "0.0.0.0/0" }))).toEqual([]);
        expect(worldAdminPortViolations({ type: TYPES.dnsRecord, props: { protocol: "tcp", portRangeMin: 22, portRangeMax: 22 } })).toEqual([]);
    });
});

describe("the TURN relay range", () => {
    test("the default, and a custom UDP range clear of the matrix's other ports, are relay ranges", () => {
        expect(DEFAULT_TURN_RELAY).toEqual({ from: 32769, to: 65535 });
        expect(isRelayRange("udp", DEFAULT_TURN_RELAY)).toBe(true);
        for (const range of [
            { from: 49152, to: 65535 },
            { from: 40000, to: 50000 },
            { from: 10000, to: 16383 },
        ]) {
            expect(isRelayRange("udp", range)).toBe(true);
            expect(firewallRules(world4("udp", range.from, range.to))).toEqual([]);
        }
    });

    test("a range that is tcp, starts below 1024, or holds another port of the matrix or a never-open port is not", () => {
        const refused: [string, PortRange][] = [
            ["tcp", DEFAULT_TURN_RELAY],
            ["udp", { from: 1000, to: 2000 }],
            ["udp", { from: 1024, to: 65535 }],
            ["udp", { from: 3000, to: 4000 }], // 3478
            ["udp", { from: 16384, to: 40000 }], // the media range, widened
            ["udp", { from: 30000, to: 65535 }], // overlaps the media range
            ["udp", { from: 5000, to: 6000 }], // SIP 5060, FreeSWITCH 5066/5080
            ["udp", { from: 40000, to: 70000 }],
            ["udp", { from: 50000, to: 40000 }],
        ];
        for (const [protocol, range] of refused) {
            expect(isRelayRange(protocol, range)).toBe(false);
            expect(worldAdminPortViolations(world4(protocol, range.from, range.to))).toHaveLength(1);
            expect(widerThanMatrixViolations(world4(protocol, range.from, range.to))).toHaveLength(1);
        }
    });
});

describe("no-rule-wider-than-port-matrix", () => {
    test("a widened range fails, whatever its source", () => {
        const widened = widerThanMatrixViolations(world4("udp", 16384, 40000));
        expect(widened).toEqual([expect.stringMatching(/not a row of the port matrix.*wider than the matrix's udp 16384-32768/)]);
        expect(widerThanMatrixViolations(fromOffice("udp", 16384, 40000))).toHaveLength(1);
        expect(widerThanMatrixViolations(fromOffice("tcp", 20, 25))).toEqual([expect.stringMatching(/wider than the matrix's tcp 22/)]);
        expect(widerThanMatrixViolations(fromOffice("tcp", 443, 444))).toHaveLength(1);
    });

    test("all ports or all protocols fail, whatever the source", () => {
        expect(widerThanMatrixViolations(fromOffice("tcp"))).toEqual([expect.stringMatching(/allows every port/)]);
        expect(widerThanMatrixViolations(fromOffice("tcp", 0, 0))).toEqual([expect.stringMatching(/allows every port/)]);
        expect(widerThanMatrixViolations(fromOffice(undefined, 22))).toEqual([expect.stringMatching(/allows every protocol/)]);
        expect(widerThanMatrixViolations(fromOffice("", 22))).toEqual([expect.stringMatching(/allows every protocol/)]);
        expect(widerThanMatrixViolations(fromOffice(undefined))).toHaveLength(2);
        expect(widerThanMatrixViolations(secGroupRule({ protocol: "tcp", portRangeMin: 8080, portRangeMax: 8080, remoteGroupId: "sg-bbb" }))).toHaveLength(1);
    });

    test("protocols the matrix does not name fail; numbers count as their names", () => {
        expect(widerThanMatrixViolations(fromOffice("icmp"))).toHaveLength(1);
        expect(widerThanMatrixViolations(fromOffice("6", 22))).toEqual([]);
        expect(widerThanMatrixViolations(fromOffice("17", 16384, 32768))).toEqual([]);
    });

    test("rows of the matrix pass from any source; egress is not judged", () => {
        for (const entry of matrixEntries()) {
            expect(widerThanMatrixViolations(fromOffice(entry.protocol, entry.from, entry.to))).toEqual([]);
        }
        expect(widerThanMatrixViolations(secGroupRule({ direction: "egress", ethertype: "IPv6" }))).toEqual([]);
    });
});

describe("every rule the port matrix produces passes both firewall rules", () => {
    const inputs: FirewallInputs[] = [
        { sshAllowedCidrs: ["198.51.100.0/24", "2001:db8:100::/48"], turnRelayPorts: DEFAULT_TURN_RELAY },
        { sshAllowedCidrs: ["203.0.113.7/32"], turnRelayPorts: { from: 49152, to: 65535 } },
    ];
    test.each(ROLES.flatMap((role) => inputs.map((input, i) => [role, i, input] as const)))("%s (inputs %i)", (role, _i, input) => {
        const rules = ingressFor(role, input);
        expect(rules.length).toBeGreaterThan(0);
        for (const rule of rules) expect({ rule, violations: firewallRules(fromIngress(rule)) }).toEqual({ rule, violations: [] });
    });

    test("an SSH range of 0.0.0.0/0 (allowSshFromAnywhere) is reported", () => {
        const rules = ingressFor("bbb", { sshAllowedCidrs: ["0.0.0.0/0"], turnRelayPorts: DEFAULT_TURN_RELAY });
        const ssh = rules.filter((r) => r.from === 22).map(fromIngress);
        expect(ssh.flatMap(worldAdminPortViolations)).toHaveLength(1);
        expect(ssh.flatMap(widerThanMatrixViolations)).toEqual([]);
    });
});

describe("no-proxied-dns-record", () => {
    const record = (props: Record<string, unknown>): ResourceDescription => ({ type: TYPES.dnsRecord, name: "bbb-1-a", props: { type: "A", ttl: 60, ...props } });

    test("a proxied record fails", () => {
        expect(proxiedDnsViolations(record({ proxied: true }))).toEqual([expect.stringMatching(/bbb-1-a is proxied by Cloudflare/)]);
    });

    test("an unproxied record, or one that does not say, passes", () => {
        expect(proxiedDnsViolations(record({ proxied: false }))).toEqual([]);
        expect(proxiedDnsViolations(record({}))).toEqual([]);
        expect(proxiedDnsViolations({ type: TYPES.volume, props: { proxied: true } })).toEqual([]);
    });
});

describe("no-unprotected-data-volume-in-prod", () => {
    const volume = (stack: string, protect: boolean, explicitStack?: string): ResourceDescription => ({
        type: TYPES.volume,
        name: "scalelite-data",
        urn: urn(stack, TYPES.volume, "scalelite-data"),
        props: { size: 20 },
        protect,
        stack: explicitStack,
    });

    test("the stack comes from the URN, or from the argument", () => {
        expect(stackFromUrn(urn("prod", TYPES.volume, "x"))).toBe("prod");
        expect(stackFromUrn("urn:pulumi:dev::bbb::bbb:topology:Topology$openstack:blockstorage/volume:Volume::x")).toBe("dev");
        expect(stackFromUrn("not-a-urn")).toBeUndefined();
        expect(stackFromUrn(undefined)).toBeUndefined();
    });

    test("an unprotected volume fails in prod and passes in dev", () => {
        expect(unprotectedProdVolumeViolations(volume("prod", false))).toEqual([expect.stringMatching(/scalelite-data .* prod stack without protect/)]);
        expect(unprotectedProdVolumeViolations(volume("dev", false))).toEqual([]);
        expect(unprotectedProdVolumeViolations(volume("dev", false, "prod"))).toHaveLength(1);
        expect(unprotectedProdVolumeViolations(volume("prod", false, "staging"))).toEqual([]);
    });

    test("a protected volume passes in prod", () => {
        expect(unprotectedProdVolumeViolations(volume("prod", true))).toEqual([]);
    });
});

describe("recordings-off-when-privacy-strict", () => {
    // What the program sets under strict privacy.
    const programProperties = Object.entries(bbbProperties({ privacy: "strict", recordings: false }))
        .map(([key, value]) => `${key}=${value}`)
        .join("\n");

    test("with privacy strict, recordings on fail and recordings off pass", () => {
        expect(recordingViolations("strict", "disableRecordingDefault=false\nallowStartStopRecording=true")).toEqual([
            expect.stringMatching(/sets disableRecordingDefault=false/),
        ]);
        expect(recordingViolations("strict", "allowRevealOfBBBVersion=false")).toEqual([expect.stringMatching(/leaves disableRecordingDefault unset/)]);
        expect(recordingViolations("strict", { disableRecordingDefault: "false" })).toHaveLength(1);
        expect(recordingViolations("strict", "disableRecordingDefault=true\ndisableRecordingDefault=false")).toHaveLength(1);
        expect(recordingViolations("strict", programProperties)).toEqual([]);
        expect(recordingViolations("strict", "# comment\n disableRecordingDefault = true \n")).toEqual([]);
    });

    test("any other privacy setting passes, recordings on or off", () => {
        for (const privacy of [undefined, "", "standard", "relaxed"]) {
            expect(recordingViolations(privacy, "disableRecordingDefault=false")).toEqual([]);
        }
    });

    test("the configure step's PROPERTIES are read from its stdin", () => {
        const stdin = stepStdin("bbb-configure", { FQDN: "bbb-1.example.org", SECRET: "it's", PROPERTIES: "disableRecordingDefault=false\nx=y" });
        expect(stepInputs(stdin)).toEqual({ STEP: "bbb-configure", FQDN: "bbb-1.example.org", SECRET: "it's", PROPERTIES: "disableRecordingDefault=false\nx=y" });
        const step: ResourceDescription = { type: TYPES.remoteCommand, name: "bbb-1-configure", props: { create: "sudo -n bash -s # bbb-configure", stdin } };
        expect(configureStepProperties(step)).toBe("disableRecordingDefault=false\nx=y");
        expect(privacyRecordingViolations("strict", step)).toEqual([expect.stringMatching(/^bbb-1-configure: privacy is strict/)]);
        expect(privacyRecordingViolations("standard", step)).toEqual([]);
        // Another step is not read at all (its stdin may be unknown during a preview).
        const other: ResourceDescription = {
            type: TYPES.remoteCommand,
            name: "turn-coturn",
            props: {
                create: "sudo -n bash -s # turn-coturn",
                get stdin(): string {
                    throw new Error("stdin read");
                },
            },
        };
        expect(privacyRecordingViolations("strict", other)).toEqual([]);
    });

    test("privacy is known from the stack's config, or from the schema once the program declares the key", () => {
        // The program declares privacy (default strict): unset in the stack, the default holds.
        expect(privacySetting(undefined)).toBe("strict");
        expect(privacySetting(JSON.stringify({ "bbb:domain": "example.org" }))).toBe("strict");
        expect(privacySetting("not json")).toBe("strict");
        expect(privacySetting(JSON.stringify({ "bbb:privacy": "standard" }))).toBe("standard");
        expect(privacySetting(undefined, {})).toBeUndefined();
        expect(privacySetting(undefined, { privacy: { type: "string", default: "standard", description: "", example: "strict" } })).toBe("standard");
    });
});

describe("no-port-open-to-world-in-pieces, and world read with ipaddr.js", () => {
    const piece = (prefix: string, port = 22, parent = "urn:pulumi:dev::bbb::bbb:firewall:SecurityGroup::bbb") => ({
        ...secGroupRule({ ethertype: prefix.includes(":") ? "IPv6" : "IPv4", protocol: "tcp", portRangeMin: port, portRangeMax: port, remoteIpPrefix: prefix }),
        parent,
    });

    test("a single rule from a range holding all of IPv6's global unicast space is from the world", () => {
        for (const prefix of ["::/1", "::/2", "2000::/3"]) expect([prefix, worldAdminPortViolations(piece(prefix)).length]).toEqual([prefix, 1]);
        for (const prefix of ["2001:db8::/32", "4000::/2", "198.51.100.0/24"]) expect([prefix, worldAdminPortViolations(piece(prefix))]).toEqual([prefix, []]);
    });

    test("rules of one group and port whose ranges add up to everyone are refused; apart, or on a world port, they are not", () => {
        expect(worldInPiecesViolations([piece("0.0.0.0/1"), piece("128.0.0.0/1")])).toHaveLength(1);
        expect(worldInPiecesViolations([piece("2000::/4"), piece("3000::/4")])).toEqual([expect.stringContaining("every public IPv6 address")]);
        expect(worldInPiecesViolations([piece("0.0.0.0/1"), piece("128.0.0.0/2")])).toEqual([]);
        expect(worldInPiecesViolations([piece("0.0.0.0/1"), piece("128.0.0.0/1", 22, "urn:other-group")])).toEqual([]);
        expect(worldInPiecesViolations([piece("0.0.0.0/1", 5060), piece("128.0.0.0/1", 5060)])).toHaveLength(1);
        expect(worldInPiecesViolations([piece("0.0.0.0/1", 443), piece("128.0.0.0/1", 443)])).toEqual([]);
    });

    test("in a preview, a remote-group rule whose group id is unknown does not stop it judging the others", () => {
        const unknownGroup = secGroupRule({ ethertype: "IPv4", protocol: "tcp", portRangeMin: 2049, portRangeMax: 2049 });
        Object.defineProperty(unknownGroup.props, "remoteGroupId", {
            enumerable: true,
            get: () => {
                throw new Error("unknown value (as the policy SDK's proxy throws in a preview)");
            },
        });
        expect(worldInPiecesViolations([unknownGroup, piece("0.0.0.0/1"), piece("128.0.0.0/1")])).toHaveLength(1);
    });

    test("the pack runs it over the whole stack, grouping by the rules' parent (known in a preview when the group's id is not)", () => {
        const policy = bbbPolicies({}).find((p) => p.name === POLICY_NAMES.worldInPieces) as StackValidationPolicy;
        const reported: string[] = [];
        const resources = [piece("0.0.0.0/1"), piece("128.0.0.0/1")].map((r) => ({ ...r, parent: { urn: r.parent } }));
        policy.validateStack({ resources } as unknown as StackValidationArgs, (message: string) => void reported.push(message));
        expect(reported).toHaveLength(1);
    });
});

describe("the program's own resources pass every rule", () => {
    let dev: Run;
    let prod: Run;
    let prodUnprotected: Run;
    beforeAll(async () => {
        dev = await evaluate({ ...BASE_CONFIG, protectData: false, scalelite: true, poolSize: 2, greenlight: true }, { ipv6: true }, "dev");
        prod = await evaluate(stackConfig(ROOT, "prod")!, { anyName: true, ipv6: true }, "prod");
        prodUnprotected = await evaluate({ ...stackConfig(ROOT, "prod")!, protectData: false }, { anyName: true }, "prod");
    });

    const described = (run: Run): ResourceDescription[] =>
        run.resources.map((r) => ({ type: r.type, name: r.name, urn: r.urn, props: r.inputs, protect: r.protect, parent: r.parent }));
    const everyRule = (r: ResourceDescription) => [
        ...worldAdminPortViolations(r),
        ...widerThanMatrixViolations(r),
        ...proxiedDnsViolations(r),
        ...unprotectedProdVolumeViolations(r),
        ...unprotectedProdServerViolations(r),
        ...privacyRecordingViolations("strict", r),
    ];

    test("dev (pool, Greenlight, IPv6, unprotected data) and prod (Pulumi.prod.yaml)", () => {
        for (const run of [dev, prod]) {
            expect(run.error).toBeUndefined();
            const resources = described(run);
            expect(resources.filter((r) => r.type === TYPES.secGroupRule).length).toBeGreaterThan(0);
            // Two data volumes (Scalelite's, Greenlight's); the bake's volumes (golden, builder's disk, boot disks) are no data.
            const volumes = resources.filter((r) => r.type === TYPES.volume);
            expect(volumes.filter((v) => !(v.props.metadata as Record<string, unknown> | undefined)?.["bbb-bake"]).length).toBe(2);
            expect(volumes.map((v) => v.name)).toEqual(expect.arrayContaining(["bbb-2-boot", expect.stringMatching(/^bake-[0-9a-f]{12}$/)]));
            expect(resources.flatMap(everyRule)).toEqual([]);
            expect(worldInPiecesViolations(resources)).toEqual([]);
        }
    });

    test("SSH ranges that add up to the world reach the pack as rules in pieces, and it refuses them", async () => {
        const halves = await evaluate({ ...BASE_CONFIG, allowSshFromAnywhere: true, sshAllowedCidrs: ["0.0.0.0/1", "128.0.0.0/1"] }, {}, "dev");
        expect(halves.error).toBeUndefined();
        const found = worldInPiecesViolations(described(halves));
        expect(found.length).toBeGreaterThan(0);
        expect(found.every((m) => /ingress tcp 22 is open to every public IPv4 address through 2 rules \(0\.0\.0\.0\/1, 128\.0\.0\.0\/1\)/.test(m))).toBe(true);
    });

    test("the configure steps' PROPERTIES turn recordings off", () => {
        const steps = described(prod).filter((r) => configureStepProperties(r) !== undefined);
        expect(steps.map((s) => s.name).sort()).toEqual(["bbb-1-configure", "bbb-2-configure", "bbb-3-configure"]);
        for (const step of steps) expect(recordingViolations("strict", configureStepProperties(step)!)).toEqual([]);
    });

    test("prod with protectData false: both data volumes are reported", () => {
        expect(prodUnprotected.error).toBeUndefined();
        const found = described(prodUnprotected).flatMap((r) => unprotectedProdVolumeViolations(r));
        expect(found).toHaveLength(2);
    });

    test("prod: the BBB servers' VMs are protected, nothing else; with allowDestructiveChanges they are not, and the rules let both pass", async () => {
        const protectedVms = (run: Run) => run.resources.filter((r) => r.type === TYPES.instance && r.protect).map((r) => r.name);
        expect(protectedVms(prod)).toEqual(["bbb-1-vm", "bbb-2-vm", "bbb-3-vm"]);
        expect(protectedVms(dev)).toEqual([]);
        const allowed = await evaluate({ ...stackConfig(ROOT, "prod")!, allowDestructiveChanges: true, protectData: false }, { anyName: true }, "prod");
        expect(protectedVms(allowed)).toEqual([]);
        const found = described(allowed).flatMap((r) => [...unprotectedProdServerViolations(r), ...unprotectedProdVolumeViolations(r)]);
        expect(found).toHaveLength(5);
        expect(described(allowed).flatMap((r) => [...unprotectedProdServerViolations(r, true), ...unprotectedProdVolumeViolations(r, true)])).toEqual([]);
    });
});

describe("the pack", () => {
    /** Runs a policy on a resource as the analyzer would (args.isType compares the class's type token). */
    function run(policy: ResourceValidationPolicy, resource: ResourceDescription): string[] {
        const messages: string[] = [];
        const validations = Array.isArray(policy.validateResource) ? policy.validateResource : [policy.validateResource!];
        const args = {
            type: resource.type,
            props: resource.props,
            urn: resource.urn ?? urn("dev", resource.type, resource.name ?? "r"),
            name: resource.name ?? "r",
            opts: { protect: resource.protect ?? false, ignoreChanges: [], aliases: [], customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 }, additionalSecretOutputs: [] },
            stackTags: new Map<string, string>(),
            isType: (cls: { __pulumiType?: string }) => cls.__pulumiType === resource.type,
            asType: (cls: { __pulumiType?: string }) => (cls.__pulumiType === resource.type ? resource.props : undefined),
            getConfig: () => ({}),
            notApplicable: (reason?: string): never => {
                throw new Error(`not applicable: ${reason}`);
            },
        } as unknown as ResourceValidationArgs;
        for (const validate of validations) {
            try {
                void validate(args, (message) => messages.push(message));
            } catch (e) {
                if (!String(e).includes("not applicable")) throw e;
            }
        }
        return messages;
    }
    const byName = (policies: ResourceValidationPolicy[], name: string) => policies.find((p) => p.name === name)!;
    const typeOf = (policy: ResourceValidationPolicy) => (policy.validateResource as unknown as { __pulumiType?: string }).__pulumiType;

    test("seven mandatory policies (privacy defaults to strict), each on the type its rule judges (the stack-wide one on all)", () => {
        const policies = bbbPolicies({});
        expect(policies.map((p) => p.name)).toEqual([
            "no-admin-port-open-to-world",
            "no-port-open-to-world-in-pieces",
            "no-rule-wider-than-port-matrix",
            "no-proxied-dns-record",
            "no-unprotected-data-volume-in-prod",
            "no-unprotected-bbb-server-in-prod",
            "recordings-off-when-privacy-strict",
        ]);
        expect(policies.every((p) => p.enforcementLevel === "mandatory")).toBe(true);
        expect(policies.slice(0, 6).map((p) => ("validateStack" in p ? "stack" : typeOf(p as ResourceValidationPolicy)))).toEqual([
            TYPES.secGroupRule,
            "stack",
            TYPES.secGroupRule,
            TYPES.dnsRecord,
            TYPES.volume,
            TYPES.instance,
        ]);
    });

    test("in prod, an unprotected BBB server's VM or data volume is refused unless the stack sets allowDestructiveChanges", () => {
        const server = { type: TYPES.instance, name: "bbb-2-vm", urn: urn("prod", TYPES.instance, "bbb-2-vm"), props: { metadata: { role: "bbb" } }, protect: false };
        const volume = { type: TYPES.volume, name: "scalelite-data", urn: urn("prod", TYPES.volume, "scalelite-data"), props: { size: 20 }, protect: false };
        const strict = bbbPolicies({});
        expect(run(byName(strict, POLICY_NAMES.prodServer), server)).toEqual([
            "bbb-2-vm is a BigBlueButton server of the prod stack without protect: a replacement or deletion would end its meetings; set allowDestructiveChanges: true for the change that needs it",
        ]);
        expect(run(byName(strict, POLICY_NAMES.prodServer), { ...server, protect: true })).toEqual([]);
        expect(run(byName(strict, POLICY_NAMES.prodServer), { ...server, props: { metadata: { role: "turn" } } })).toEqual([]);
        expect(run(byName(strict, POLICY_NAMES.prodServer), { ...server, urn: urn("dev", TYPES.instance, "bbb-2-vm") })).toEqual([]);
        expect(run(byName(strict, POLICY_NAMES.prodVolume), volume)).toHaveLength(1);
        const allowed = bbbPolicies({ PULUMI_CONFIG: JSON.stringify({ "bbb:allowDestructiveChanges": "true" }) });
        expect(run(byName(allowed, POLICY_NAMES.prodServer), server)).toEqual([]);
        expect(run(byName(allowed, POLICY_NAMES.prodVolume), volume)).toEqual([]);
        expect(run(byName(bbbPolicies({ PULUMI_CONFIG: JSON.stringify({ "bbb:allowDestructiveChanges": "false" }) }), POLICY_NAMES.prodServer), server)).toHaveLength(1);
    });

    test("the recordings policy joins when the stack's config sets privacy", () => {
        const policies = bbbPolicies({ PULUMI_CONFIG: JSON.stringify({ "bbb:privacy": "strict" }) });
        expect(policies.map((p) => p.name)).toEqual([...Object.values(POLICY_NAMES)]);
        const recordings = byName(policies, POLICY_NAMES.recordings);
        expect(typeOf(recordings)).toBe(TYPES.remoteCommand);
        const stdin = stepStdin("bbb-configure", { PROPERTIES: "disableRecordingDefault=false" });
        expect(run(recordings, { type: TYPES.remoteCommand, name: "bbb-1-configure", props: { create: "sudo -n bash -s # bbb-configure", stdin } })).toHaveLength(1);
    });

    test("the policies report what the rules find, and only on their own type", () => {
        const policies = bbbPolicies({ PULUMI_STACK: "prod" });
        expect(run(byName(policies, POLICY_NAMES.worldAdminPort), world4("tcp", 22))).toHaveLength(1);
        expect(run(byName(policies, POLICY_NAMES.worldAdminPort), world4("tcp", 443))).toEqual([]);
        expect(run(byName(policies, POLICY_NAMES.widerThanMatrix), fromOffice("tcp"))).toHaveLength(1);
        expect(run(byName(policies, POLICY_NAMES.proxiedDns), { type: TYPES.dnsRecord, name: "a", props: { proxied: true } })).toHaveLength(1);
        expect(run(byName(policies, POLICY_NAMES.proxiedDns), { type: TYPES.volume, name: "a", props: { proxied: true } })).toEqual([]);
        const volume = { type: TYPES.volume, name: "v", props: { size: 1 }, protect: false };
        expect(run(byName(policies, POLICY_NAMES.prodVolume), { ...volume, urn: urn("prod", TYPES.volume, "v") })).toHaveLength(1);
        expect(run(byName(policies, POLICY_NAMES.prodVolume), { ...volume, urn: urn("dev", TYPES.volume, "v") })).toEqual([]);
        // Without a URN naming a stack, PULUMI_STACK (set by the engine) tells.
        expect(run(byName(policies, POLICY_NAMES.prodVolume), { ...volume, urn: "urn:x" })).toHaveLength(1);
    });

    test("policy/index.ts builds the pack bbb from these policies (PolicyPack stubbed: the real one serves gRPC)", () => {
        const built: { name: string; args: PolicyPackArgs }[] = [];
        const saved = process.env.PULUMI_CONFIG;
        delete process.env.PULUMI_CONFIG;
        try {
            jest.isolateModules(() => {
                jest.doMock("@pulumi/policy", () => ({
                    ...jest.requireActual("@pulumi/policy"),
                    PolicyPack: class {
                        constructor(name: string, args: PolicyPackArgs) {
                            built.push({ name, args });
                        }
                    },
                }));
                require("../policy/index");
            });
        } finally {
            jest.dontMock("@pulumi/policy");
            if (saved !== undefined) process.env.PULUMI_CONFIG = saved;
        }
        expect(built).toHaveLength(1);
        expect(built[0].name).toBe("bbb");
        expect(built[0].args.enforcementLevel).toBe("mandatory");
        expect(built[0].args.policies.map((p) => p.name)).toEqual([
            POLICY_NAMES.worldAdminPort,
            POLICY_NAMES.worldInPieces,
            POLICY_NAMES.widerThanMatrix,
            POLICY_NAMES.proxiedDns,
            POLICY_NAMES.prodVolume,
            POLICY_NAMES.prodServer,
            POLICY_NAMES.recordings,
        ]);
    });
});
