// The platform: which hosts exist for the single or pool topology, their firewalls, and how they fit.
import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";
import { Role, Settings } from "./config";
import { CloudFacts } from "./cloud";
import { SecurityGroup } from "./firewall";
import { Host } from "./host";
import { DnsRecordSpec } from "./dns";
import { bbbNodeName, fqdn, hostSpecs, rolesOf, Topology, topologyOf } from "./names";

export interface PlatformArgs {
    settings: Settings;
    cloud: CloudFacts;
    /** Stack name: part of security group names, since dev and prod may share one OpenStack project. */
    stack: string;
}

export interface HostSummary {
    name: string;
    role: Role;
    fqdn: string;
    ipv4: string;
    ipv6?: string;
}

export class Platform extends pulumi.ComponentResource {
    readonly topology: Topology;
    readonly hosts: Record<string, Host> = {};
    /** Name consumers call the API on: bbb-1 (single) or Scalelite (pool). */
    readonly apiHost: string;
    readonly turnHost: string;
    readonly greenlightUrl?: string;
    readonly summary: pulumi.Output<HostSummary[]>;
    readonly dnsRecords: pulumi.Output<DnsRecordSpec[]>;

    constructor(name: string, args: PlatformArgs, opts?: pulumi.ComponentResourceOptions) {
        super("bbb:platform:Platform", name, {}, opts);
        const s = args.settings;
        this.topology = topologyOf(s);
        const specs = hostSpecs(s);
        const nameOf = (host: string) => fqdn(host, s.hostnamePrefix, s.domain);

        const keyPair = new openstack.compute.Keypair(`${name}-key`, { publicKey: s.sshPublicKey }, { parent: this });

        const groups = Object.fromEntries(
            rolesOf(s).map((role) => [
                role,
                new SecurityGroup(
                    `${name}-${role}`,
                    { role, label: args.stack, firewall: { sshAllowedCidrs: s.sshAllowedCidrs, turnRelayPorts: s.turnRelayPorts } },
                    { parent: this },
                ),
            ]),
        ) as Record<Role, SecurityGroup>;

        for (const spec of specs) {
            this.hosts[spec.name] = new Host(
                `${name}-${spec.name}`,
                {
                    role: spec.role,
                    fqdn: nameOf(spec.name),
                    imageId: args.cloud.imageId,
                    flavor: s.flavors[spec.role],
                    volumeSize: s.volumeSizes[spec.role],
                    securityGroupIds: [groups[spec.role].id],
                    network: s.network,
                    networkId: args.cloud.networkId,
                    hasIpv6: args.cloud.hasIpv6,
                    keyPair: keyPair.name,
                    dns: s.dns,
                    sshPrivateKey: s.sshPrivateKey,
                },
                { parent: this },
            );
        }

        this.apiHost = nameOf(this.topology === "pool" ? "scalelite" : bbbNodeName(1));
        this.turnHost = nameOf("turn");
        if (s.greenlight) this.greenlightUrl = `https://${nameOf(this.topology === "pool" ? "greenlight" : bbbNodeName(1))}/`;

        const hostList = specs.map((spec) => ({ spec, host: this.hosts[spec.name] }));
        this.summary = pulumi.all(
            hostList.map(({ spec, host }) =>
                pulumi.all([host.ipv4, host.ipv6]).apply(([ipv4, ipv6]): HostSummary => ({
                    name: spec.name,
                    role: spec.role,
                    fqdn: host.fqdn,
                    ipv4,
                    ...(ipv6 ? { ipv6 } : {}),
                })),
            ),
        );
        this.dnsRecords = pulumi.all(hostList.map(({ host }) => host.records)).apply((lists) => lists.flat());

        this.registerOutputs({ hosts: this.summary, dnsRecords: this.dnsRecords });
    }
}
