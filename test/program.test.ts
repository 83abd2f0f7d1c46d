// The whole program under mocks, for a handful of topologies: what a user would see in `pulumi up`.
import { BASE_CONFIG, byName, evaluate, ofType, Registered, Run, TEST_PRIVATE_KEY } from "./harness";

const T = {
    host: "bbb:host:Host",
    port: "openstack:networking/port:Port",
    vm: "openstack:compute/instance:Instance",
    group: "openstack:networking/secGroup:SecGroup",
    rule: "openstack:networking/secGroupRule:SecGroupRule",
    fip: "openstack:networking/floatingIp:FloatingIp",
    fipAssoc: "openstack:networking/floatingIpAssociate:FloatingIpAssociate",
    record: "cloudflare:index/dnsRecord:DnsRecord",
    command: "command:remote:Command",
};

// The port matrix of DESIGN.md, written out by hand: the program must produce exactly this.
type Rule = [protocol: string, from: number, to: number, cidr: string, ethertype: string];
const SSH: Rule[] = [
    ["tcp", 22, 22, "198.51.100.0/24", "IPv4"],
    ["tcp", 22, 22, "2001:db8:100::/48", "IPv6"],
];
const world = (protocol: string, from: number, to = from): Rule[] => [
    [protocol, from, to, "0.0.0.0/0", "IPv4"],
    [protocol, from, to, "::/0", "IPv6"],
];
const web = [...SSH, ...world("tcp", 80), ...world("tcp", 443)];
const expectedIngress = (relay: [number, number]): Record<string, Rule[]> => ({
    turn: [...SSH, ...world("tcp", 3478), ...world("udp", 3478), ...world("tcp", 443), ...world("udp", 443), ...world("tcp", 80), ...world("udp", ...relay)],
    bbb: [...web, ...world("udp", 16384, 32768)],
    scalelite: web,
    greenlight: web,
});

const sorted = (rules: Rule[]) => rules.map((r) => r.join(" ")).sort();

/** The ingress a host's port lets in: the rules of every security group on the port. */
function effectiveIngress(run: Run, host: string): Rule[] {
    const port = byName(run, `${host}-port`);
    const groupIds: string[] = port.inputs.securityGroupIds;
    return ofType(run, T.rule)
        .filter((r) => groupIds.includes(r.inputs.securityGroupId) && r.inputs.direction === "ingress")
        .map((r) => [r.inputs.protocol, r.inputs.portRangeMin, r.inputs.portRangeMax, r.inputs.remoteIpPrefix, r.inputs.ethertype]);
}

function find(run: Run, type: string, name: string): Registered {
    const found = ofType(run, type).find((r) => r.name === name);
    if (!found) throw new Error(`no ${type} named ${name}`);
    return found;
}

function hostsOf(run: Run): { name: string; role: string; fqdn: string; ipv4: string; ipv6?: string }[] {
    return run.outputs.hosts as any;
}

/** Every input that carries a known secret value must travel as a secret. */
function expectSecretsMarked(run: Run, secrets: string[]) {
    for (const r of run.resources) {
        for (const [key, value] of Object.entries(r.inputs)) {
            const text = JSON.stringify(value);
            if (secrets.some((s) => text.includes(JSON.stringify(s).slice(1, -1)))) {
                expect({ resource: r.name, input: key, secret: r.secretInputs.includes(key) }).toEqual({ resource: r.name, input: key, secret: true });
            }
        }
    }
}

describe("single topology: floating IPs, IPv6, Cloudflare", () => {
    let run: Run;
    beforeAll(async () => {
        run = await evaluate(BASE_CONFIG, { ipv6: true });
    });

    test("evaluates without error", () => {
        expect(run.error).toBeUndefined();
    });

    test("builds turn and bbb-1, named in the domain", () => {
        expect(hostsOf(run).map((h) => [h.name, h.role, h.fqdn])).toEqual([
            ["turn", "turn", "turn.example.org"],
            ["bbb-1", "bbb", "bbb-1.example.org"],
        ]);
    });

    test("each host's ingress is exactly its row of the port matrix, IPv4 and IPv6", () => {
        const expected = expectedIngress([32769, 65535]);
        expect(sorted(effectiveIngress(run, "turn"))).toEqual(sorted(expected.turn));
        expect(sorted(effectiveIngress(run, "bbb-1"))).toEqual(sorted(expected.bbb));
    });

    test("egress is explicit and open, Neutron's defaults removed", () => {
        for (const group of ofType(run, T.group)) {
            expect(group.inputs.deleteDefaultRules).toBe(true);
            const egress = ofType(run, T.rule).filter((r) => r.inputs.securityGroupId === `${group.name}-id` && r.inputs.direction === "egress");
            expect(egress.map((r) => [r.inputs.ethertype, r.inputs.protocol, r.inputs.remoteIpPrefix])).toEqual([
                ["IPv4", undefined, undefined],
                ["IPv6", undefined, undefined],
            ]);
        }
    });

    test("security group names carry the stack, since dev and prod may share a project", () => {
        expect(ofType(run, T.group).map((g) => g.inputs.name).sort()).toEqual(["bbb-dev-bbb", "bbb-dev-turn"]);
    });

    test("rules, records and VMs on pre-made ports are deleted before they are replaced", () => {
        for (const r of [...ofType(run, T.rule), ...ofType(run, T.record), ...ofType(run, T.vm)]) {
            expect([r.name, r.deleteBeforeReplace]).toEqual([r.name, true]);
        }
    });

    test("the public IPv4 is the floating IP; the IPv6 is the port's routable address, canonical", () => {
        expect(hostsOf(run).map((h) => [h.name, h.ipv4, h.ipv6])).toEqual([
            ["turn", "203.0.113.2", "2001:db8:1::2"],
            ["bbb-1", "203.0.113.11", "2001:db8:1::b"],
        ]);
        const assoc = byName(run, "turn-fip-assoc");
        expect(assoc.inputs).toEqual({ floatingIp: "203.0.113.2", portId: "turn-port-id" });
        expect(byName(run, "turn-fip").inputs.pool).toBe("public");
    });

    test("A and AAAA records, not proxied, short TTL, in the configured zone", () => {
        const records = ofType(run, T.record).map((r) => r.inputs);
        expect(records.map((r) => [r.name, r.type, r.content]).sort()).toEqual([
            ["bbb-1.example.org", "A", "203.0.113.11"],
            ["bbb-1.example.org", "AAAA", "2001:db8:1::b"],
            // The API name, on bbb-1 alone.
            ["bbb.example.org", "A", "203.0.113.11"],
            ["bbb.example.org", "AAAA", "2001:db8:1::b"],
            ["turn.example.org", "A", "203.0.113.2"],
            ["turn.example.org", "AAAA", "2001:db8:1::2"],
        ]);
        for (const r of records) {
            expect(r).toMatchObject({ proxied: false, ttl: 60, zoneId: "023e105f4ecef8ad9ca31a8372d0c353" });
            expect(r.tags).toBeUndefined();
        }
    });

    test("VMs boot from a volume of the role's size, on their port, and are not rebuilt by a new image", () => {
        const vm = byName(run, "bbb-1-vm");
        expect(vm.inputs.flavorName).toBe("m1.xlarge");
        expect(vm.inputs.networks).toEqual([{ port: "bbb-1-port-id" }]);
        expect(vm.inputs.blockDevices).toEqual([
            { sourceType: "image", uuid: "image-uuid-ubuntu-22-04", destinationType: "volume", volumeSize: 80, bootIndex: 0, deleteOnTermination: true },
        ]);
        expect(vm.inputs.keyPair).toBe("bbb-key-generated");
        expect(vm.inputs.securityGroups).toBeUndefined();
        expect(vm.ignoreChanges).toEqual(expect.arrayContaining(["imageName", "blockDevices[0].uuid", "userData"]));
        expect(byName(run, "turn-vm").inputs.blockDevices[0].volumeSize).toBe(20);
        expect(byName(run, "turn-vm").inputs.flavorName).toBe("m1.medium");
    });

    test("ports carry the role's security group by id, with port security on", () => {
        const port = byName(run, "turn-port");
        expect(port.inputs).toMatchObject({ networkId: "net-private", portSecurityEnabled: true, securityGroupIds: ["turn-sg-group-id"] });
    });

    test("the readiness step waits for the address and the records, over SSH as ubuntu with sudo", () => {
        const ready = byName(run, "bbb-1-ready");
        const deps = ready.dependsOn.map((urn) => urn.split("::").pop());
        expect(deps).toEqual(expect.arrayContaining(["bbb-1-vm", "bbb-1-fip-assoc", "bbb-1-a", "bbb-1-aaaa"]));
        expect(ready.inputs.create).toBe("sudo -n bash -s # wait-ready");
        expect(ready.inputs.connection).toMatchObject({ host: "203.0.113.11", user: "ubuntu" });
        expect(ready.inputs.connection.dialErrorLimit).toBeGreaterThan(10);
        expect(ready.inputs.stdin).toContain("FQDN='bbb-1.example.org'\nIPV4='203.0.113.11'\nIPV6='2001:db8:1::b'\n");
        expect(ready.inputs.triggers).toEqual(["bbb-1-vm-id"]);
    });

    test("outputs: exactly the contract, the secret secret, no Greenlight", () => {
        expect(Object.keys(run.outputs).sort()).toEqual(["baking", "bbbApiUrl", "bbbSecret", "consumerSecrets", "dnsRecords", "hosts", "integrations", "turnHost"]);
        expect(run.outputs.bbbApiUrl).toBe("https://bbb.example.org/bigbluebutton/api");
        expect(run.outputs.turnHost).toBe("turn.example.org");
        expect(run.outputs.bbbSecret).toMatch(/^[A-Za-z0-9]{40}$/);
        expect(run.secretOutputs.sort()).toEqual(["bbbSecret", "consumerSecrets", "integrations"]);
    });

    test("every input that carries the SSH key or the API secret is a secret", () => {
        expectSecretsMarked(run, [TEST_PRIVATE_KEY, run.outputs.bbbSecret as string]);
        expect(byName(run, "turn-ready").secretInputs).toContain("connection");
    });

    test("resources are parented: roles under the platform, hosts under their role, cloud resources under their host", () => {
        const platform = find(run, "bbb:platform:Platform", "bbb");
        const bbbServer = find(run, "bbb:bbb:BbbServer", "bbb-1");
        const turnServer = find(run, "bbb:turn:TurnServer", "turn");
        const bbbHost = find(run, T.host, "bbb-1");
        expect(bbbServer.parent).toBe(platform.urn);
        expect(turnServer.parent).toBe(platform.urn);
        expect(bbbHost.parent).toBe(bbbServer.urn);
        expect(find(run, T.host, "turn").parent).toBe(turnServer.urn);
        for (const name of ["bbb-1-port", "bbb-1-vm", "bbb-1-fip", "bbb-1-a", "bbb-1-ready"]) {
            expect([name, byName(run, name).parent]).toEqual([name, bbbHost.urn]);
        }
        for (const name of ["bbb-1-install", "bbb-1-configure"]) expect([name, byName(run, name).parent]).toEqual([name, bbbServer.urn]);
        expect(byName(run, "turn-coturn").parent).toBe(turnServer.urn);
        expect(byName(run, "turn-sg-group").parent).toBe(find(run, "bbb:firewall:SecurityGroup", "turn-sg").urn);
        const components = run.resources.filter((r) => !r.custom).map((r) => r.type);
        expect(new Set(components)).toEqual(new Set(["bbb:platform:Platform", "bbb:firewall:SecurityGroup", "bbb:host:Host", "bbb:bbb:BbbServer", "bbb:turn:TurnServer"]));
    });
});

describe("single topology with Greenlight: provider network, no IPv6, DNS by hand", () => {
    let run: Run;
    beforeAll(async () => {
        run = await evaluate({
            ...BASE_CONFIG,
            greenlight: true,
            hostnamePrefix: "dev-",
            network: { mode: "provider", name: "public" },
            dns: { provider: "none" },
        });
    });

    test("Greenlight runs on bbb-1: no extra host, its URL is bbb-1's", () => {
        expect(run.error).toBeUndefined();
        expect(hostsOf(run).map((h) => h.name)).toEqual(["turn", "bbb-1"]);
        expect(run.outputs.greenlightUrl).toBe("https://dev-bbb-1.example.org/");
        expect(run.outputs.bbbApiUrl).toBe("https://dev-bbb.example.org/bigbluebutton/api");
    });

    test("addresses come from the port itself; no floating IP, no AAAA without a routable IPv6 subnet", () => {
        expect(ofType(run, T.fip)).toHaveLength(0);
        expect(hostsOf(run).map((h) => [h.fqdn, h.ipv4, h.ipv6])).toEqual([
            ["dev-turn.example.org", "10.0.0.2", undefined],
            ["dev-bbb-1.example.org", "10.0.0.11", undefined],
        ]);
    });

    test("no record is created; the records to create are listed in the log and in the dnsRecords output", () => {
        expect(ofType(run, T.record)).toHaveLength(0);
        expect(run.outputs.dnsRecords).toEqual([
            { type: "A", name: "dev-turn.example.org", content: "10.0.0.2" },
            { type: "A", name: "dev-bbb-1.example.org", content: "10.0.0.11" },
            { type: "A", name: "dev-bbb.example.org", content: "10.0.0.11" },
        ]);
        expect(run.logs.join("\n")).toContain("create dev-bbb-1.example.org A 10.0.0.11");
        const ready = byName(run, "bbb-1-ready");
        expect(ready.inputs.stdin).toContain("IPV6=''\n");
    });
});

describe("pool topology: Scalelite, three nodes, Greenlight on its own host", () => {
    let run: Run;
    beforeAll(async () => {
        run = await evaluate({ ...BASE_CONFIG, poolSize: 3, scalelite: true, greenlight: true, turnRelayPorts: "49152-65535" }, { ipv6: true }, "prod");
    });

    test("builds turn, scalelite, bbb-1..3 and greenlight", () => {
        expect(run.error).toBeUndefined();
        expect(hostsOf(run).map((h) => [h.name, h.role])).toEqual([
            ["turn", "turn"],
            ["scalelite", "scalelite"],
            ["bbb-1", "bbb"],
            ["bbb-2", "bbb"],
            ["bbb-3", "bbb"],
            ["greenlight", "greenlight"],
        ]);
    });

    test("consumers use Scalelite's API; Greenlight has its own name", () => {
        expect(run.outputs.bbbApiUrl).toBe("https://bbb.example.org/bigbluebutton/api");
        expect(run.outputs.greenlightUrl).toBe("https://greenlight.example.org/");
        expect(run.secretOutputs.sort()).toEqual(["backupPasswords", "bbbSecret", "consumerSecrets", "integrations"]);
    });

    test("every host's ingress is exactly its role's matrix row; TURN's relay range follows turnRelayPorts", () => {
        const expected = expectedIngress([49152, 65535]);
        for (const h of hostsOf(run)) {
            expect([h.name, sorted(effectiveIngress(run, h.name))]).toEqual([h.name, sorted(expected[h.role])]);
        }
    });

    test("one security group per role, shared by the nodes: rules do not grow with the pool", () => {
        expect(ofType(run, T.group).map((g) => g.inputs.name).sort()).toEqual(["bbb-prod-bbb", "bbb-prod-greenlight", "bbb-prod-scalelite", "bbb-prod-turn"]);
        const groupsOfNodes = new Set(["bbb-1", "bbb-2", "bbb-3"].map((n) => JSON.stringify(byName(run, `${n}-port`).inputs.securityGroupIds)));
        expect(groupsOfNodes.size).toBe(1);
    });

    test("nothing admin-like is ever open to the world, SSH included", () => {
        const adminPorts = [22, 7443, 5066, 1935, 8021, 5080, 9100, 5432, 6379];
        for (const r of ofType(run, T.rule)) {
            if (r.inputs.remoteIpPrefix !== "0.0.0.0/0" && r.inputs.remoteIpPrefix !== "::/0") continue;
            for (const port of adminPorts) {
                expect([r.name, port >= r.inputs.portRangeMin && port <= r.inputs.portRangeMax]).toEqual([r.name, false]);
            }
        }
    });

    test("every host gets A and AAAA records, and the API name Scalelite's addresses", () => {
        expect(ofType(run, T.record)).toHaveLength(14);
        const api = ofType(run, T.record).filter((r) => r.inputs.name === "bbb.example.org");
        const scalelite = ofType(run, T.record).filter((r) => r.inputs.name === "scalelite.example.org");
        expect(api.map((r) => [r.inputs.type, r.inputs.content])).toEqual(scalelite.map((r) => [r.inputs.type, r.inputs.content]));
    });

    test("secrets stay secret", () => {
        expectSecretsMarked(run, [TEST_PRIVATE_KEY, run.outputs.bbbSecret as string]);
    });
});

describe("bad input is refused before anything is declared", () => {
    test("a pool without Scalelite and SSH from anywhere: both problems, no resource", async () => {
        const run = await evaluate({ ...BASE_CONFIG, poolSize: 3, sshAllowedCidrs: ["0.0.0.0/0"] });
        expect(run.error?.message).toMatch(/^2 configuration problems; nothing was created:/);
        expect(run.error?.message).toContain("sshAllowedCidrs[0]");
        expect(run.error?.message).toContain("poolSize");
        expect(run.resources).toEqual([]);
    });

    test("cloud problems (missing image, unknown flavor, too small a BBB flavor, unknown network) together, no resource", async () => {
        const run = await evaluate(
            { ...BASE_CONFIG, image: "Ubuntu 22.04 Minimal", flavors: { turn: "c1.tiny", bbb: "m1.medium" }, network: { mode: "floating", name: "tenant", floatingIpPool: "public" } },
            {},
        );
        const message = run.error?.message ?? "";
        expect(message).toMatch(/^4 configuration problems; nothing was created:/);
        for (const key of ["image", "flavors.turn", "flavors.bbb", "network.name"]) expect(message).toContain(`\n  ${key}\n`);
        expect(message).toContain("at least 4 vCPUs and 4096 MB RAM for bbb");
        expect(run.resources).toEqual([]);
    });
});

// Keep the helper honest: a host's ingress is read through its port, not from the groups' names.
test("effectiveIngress follows the port's groups", async () => {
    const fake = {
        resources: [
            { name: "x-port", type: T.port, inputs: { securityGroupIds: ["g1"] } },
            { name: "r1", type: T.rule, inputs: { securityGroupId: "g1", direction: "ingress", protocol: "tcp", portRangeMin: 1, portRangeMax: 1, remoteIpPrefix: "::/0", ethertype: "IPv6" } },
            { name: "r2", type: T.rule, inputs: { securityGroupId: "g2", direction: "ingress", protocol: "tcp", portRangeMin: 2, portRangeMax: 2, remoteIpPrefix: "::/0", ethertype: "IPv6" } },
        ] as unknown as Registered[],
    } as Run;
    expect(effectiveIngress(fake, "x")).toEqual([["tcp", 1, 1, "::/0", "IPv6"]]);
});
