// One OpenStack security group per role, made from the port matrix. Every host of a role shares its
// group, so the number of groups and rules never grows with the pool (Neutron's default quota is 10
// groups and 100 rules per project, shared by dev and prod).
import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";
import { Role } from "./config";
import { Ethertype, FirewallInputs, IngressRule, ingressFor } from "./ports";

export interface SecurityGroupArgs {
    /** The role whose rows of the port matrix the group opens. */
    role: Role;
    /** SSH ranges and TURN relay range the matrix refers to. */
    firewall: FirewallInputs;
    /** Shown in the group's description, e.g. the stack name. */
    label: string;
    /** Ids of other roles' groups, for rules whose source is a role's hosts (e.g. NFS from the BBB servers). */
    peerGroupIds?: Partial<Record<Role, pulumi.Input<string>>>;
}

const EGRESS: readonly Ethertype[] = ["IPv4", "IPv6"];

/** A resource-name-safe, content-derived name for a rule, so reordering the matrix replaces nothing. */
export function ruleName(group: string, rule: IngressRule): string {
    const source = rule.remoteGroup
        ? `${rule.remoteGroup}-hosts`
        : rule.cidr === "0.0.0.0/0" || rule.cidr === "::/0"
          ? "world"
          : rule.cidr!.replace(/[:/]/g, "_");
    const ports = rule.from === rule.to ? `${rule.from}` : `${rule.from}-${rule.to}`;
    return `${group}-in-${rule.protocol}-${ports}-${source}-${rule.ethertype.toLowerCase()}`;
}

export class SecurityGroup extends pulumi.ComponentResource {
    readonly id: pulumi.Output<string>;
    private readonly group: openstack.networking.SecGroup;
    /** The ingress rules declared, as plain data (for reports and tests). */
    readonly ingress: IngressRule[];

    constructor(name: string, args: SecurityGroupArgs, opts?: pulumi.ComponentResourceOptions) {
        super("bbb:firewall:SecurityGroup", name, {}, opts);
        const group = (this.group = new openstack.networking.SecGroup(
            `${name}-group`,
            {
                name: `bbb-${args.label}-${args.role}`,
                description: `bbb ${args.label}: ${args.role} hosts (managed by Pulumi)`,
                // Neutron's default egress rules are replaced by the explicit ones below.
                deleteDefaultRules: true,
            },
            { parent: this },
        ));
        const ruleOpts = { parent: this, deleteBeforeReplace: true };
        for (const ethertype of EGRESS) {
            // Egress stays open: the installers download packages, certificates and images.
            new openstack.networking.SecGroupRule(
                `${name}-out-any-${ethertype.toLowerCase()}`,
                { securityGroupId: group.id, direction: "egress", ethertype, description: "all outbound traffic" },
                ruleOpts,
            );
        }
        this.ingress = ingressFor(args.role, args.firewall);
        for (const rule of this.ingress) {
            new openstack.networking.SecGroupRule(
                ruleName(name, rule),
                {
                    securityGroupId: group.id,
                    direction: "ingress",
                    ethertype: rule.ethertype,
                    protocol: rule.protocol,
                    portRangeMin: rule.from,
                    portRangeMax: rule.to,
                    ...(rule.remoteGroup ? { remoteGroupId: this.peer(args, rule.remoteGroup) } : { remoteIpPrefix: rule.cidr }),
                    description: rule.why,
                },
                ruleOpts,
            );
        }
        this.id = group.id;
        this.registerOutputs({ id: this.id });
    }

    private peer(args: SecurityGroupArgs, role: Role): pulumi.Input<string> {
        if (role === args.role) return this.group.id;
        const id = args.peerGroupIds?.[role];
        if (id === undefined) throw new Error(`security group ${args.role}: a rule needs the ${role} hosts' group, which was not given`);
        return id;
    }
}
