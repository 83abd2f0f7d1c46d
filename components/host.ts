// A host of any role: port, VM booting from a volume, public address, DNS records, and a readiness step
// that waits for cloud-init and for the name to resolve publicly to the host.
import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";
import * as command from "@pulumi/command";
import { DnsSettings, NetworkSettings, Role } from "./config";
import { portAddresses } from "./addresses";
import { DnsRecordSpec, hostRecords } from "./dns";
import { connectionTo, remoteStep } from "./remote";

/** How long the readiness step waits for cloud-init and DNS together, and how often it looks. */
export const READY_TIMEOUT_SECONDS = 1800;
export const READY_POLL_SECONDS = 10;
/** A host's port's description: bake.ts finds a server's port (and so whether its VM exists) by it. */
export const portDescription = (fqdn: string) => `${fqdn} (managed by Pulumi)`;

/** The role in a bake builder's VM metadata. */
const BUILDER_ROLE = "bake-builder";

/**
 * A VM's boot disk: a Glance image Nova copies into a volume of its own, deleted with the VM (hosts that existed
 * before baking keep this shape: changing it would replace them); or a Cinder volume of the host's own
 * (`<name>-boot`), cloned from a baked golden volume (a baked BBB server), kept when the VM is deleted, so that
 * Pulumi deletes it after the VM; or a volume made elsewhere (a bake's builder's disk, which outlives the builder).
 */
export type BootSource =
    | { image: pulumi.Input<string> }
    | { volume: { sourceVolId: pulumi.Input<string>; metadata: Record<string, string> } }
    | { disk: openstack.blockstorage.Volume };

export interface HostArgs {
    role: Role;
    /** Fully qualified name, e.g. bbb-1.example.org. */
    fqdn: string;
    /** What the VM boots from. */
    boot: BootSource;
    flavor: string;
    /** Boot volume size in GB. */
    volumeSize: number;
    /**
     * Flavor and boot volume size apply only when the VM is created (default false: a new flavor resizes the
     * VM, rebooting it; a new boot volume size replaces it). A pool's BBB servers take new sizes with new
     * servers (scale-up, a release), never all at once.
     */
    sizedAtCreation?: boolean;
    /** Protect the VM: Pulumi then refuses to replace or delete it (a BBB server of the prod stack). */
    protect?: boolean;
    /** What the VM waits for before it is created or changed (e.g. a meetings check before a resize). */
    vmDependsOn?: pulumi.Resource[];
    /** Security group ids of the host's port (its role's group). */
    securityGroupIds: pulumi.Input<string>[];
    network: NetworkSettings;
    /** Id of the network in `network.name`. */
    networkId: pulumi.Input<string>;
    /** The network has a routable IPv6 subnet: the host gets an AAAA record. */
    hasIpv6: boolean;
    keyPair: pulumi.Input<string>;
    dns: DnsSettings;
    /** Private key for the SSH steps (a secret). */
    sshPrivateKey: pulumi.Input<string>;
    /**
     * A bake's builder (components/bake.ts): no DNS name (its readiness waits for cloud-init only), and it powers
     * itself off when its bake is done, which a refreshed state must not undo (Pulumi would start it again).
     */
    builder?: boolean;
}

export class Host extends pulumi.ComponentResource {
    /** The resource name, which names the host's resources and steps (e.g. bbb-1). */
    readonly name: string;
    readonly role: Role;
    readonly fqdn: string;
    readonly instanceId: pulumi.Output<string>;
    /** Public IPv4: the floating IP, or the provider network address. */
    readonly ipv4: pulumi.Output<string>;
    /** Routable IPv6 of the port, when the network has one. */
    readonly ipv6?: pulumi.Output<string>;
    /** The address on the port itself (differs from ipv4 behind a floating IP). */
    readonly privateIpv4: pulumi.Output<string>;
    readonly records: pulumi.Output<DnsRecordSpec[]>;
    readonly connection: command.types.input.remote.ConnectionArgs;
    /** Done when the host may be provisioned: later steps depend on it. */
    readonly ready: command.remote.Command;

    constructor(name: string, args: HostArgs, opts?: pulumi.ComponentResourceOptions) {
        super("bbb:host:Host", name, {}, opts);
        this.name = name;
        this.role = args.role;
        this.fqdn = args.fqdn;

        const port = new openstack.networking.Port(
            `${name}-port`,
            {
                networkId: args.networkId,
                securityGroupIds: args.securityGroupIds,
                portSecurityEnabled: true,
                adminStateUp: true,
                description: portDescription(args.fqdn),
            },
            { parent: this },
        );
        const fixed = port.allFixedIps.apply((ips) => portAddresses(ips ?? []));
        this.privateIpv4 = fixed.apply((a) => {
            if (!a.ipv4) throw new Error(`${args.fqdn}: the port on network ${args.network.name} has no IPv4 address`);
            return a.ipv4;
        });
        if (args.hasIpv6) {
            this.ipv6 = fixed.apply((a) => {
                if (!a.ipv6) throw new Error(`${args.fqdn}: the port on network ${args.network.name} has no routable IPv6 address`);
                return a.ipv6;
            });
        }

        let blockDevice: openstack.types.input.compute.InstanceBlockDevice;
        if ("image" in args.boot) {
            blockDevice = { sourceType: "image", uuid: args.boot.image, destinationType: "volume", volumeSize: args.volumeSize, bootIndex: 0, deleteOnTermination: true };
        } else {
            const bootVolume =
                "disk" in args.boot
                    ? args.boot.disk
                    : new openstack.blockstorage.Volume(
                          `${name}-boot`,
                          { name: args.fqdn, description: `${args.fqdn} boot disk (managed by Pulumi)`, size: args.volumeSize, ...args.boot.volume },
                          {
                              parent: this,
                              // What it was made from matters once: a new golden volume reaches new hosts only.
                              ignoreChanges: ["sourceVolId", ...(args.sizedAtCreation ? ["size"] : [])],
                              // A full copy of the golden volume (thick LVM) takes minutes; the provider waits 10 by default.
                              customTimeouts: { create: "30m" },
                          },
                      );
            // Not deleted with the VM: a VM replaced alone boots its disk again. A new boot volume (its id) replaces the VM.
            blockDevice = { sourceType: "volume", uuid: bootVolume.id, destinationType: "volume", bootIndex: 0, deleteOnTermination: false };
        }
        const instance = new openstack.compute.Instance(
            `${name}-vm`,
            {
                name: args.fqdn,
                flavorName: args.flavor,
                keyPair: args.keyPair,
                networks: [{ port: port.id }],
                blockDevices: [blockDevice],
                // A builder is no BBB server: nothing guards or protects it (policy/, scripts/impact.ts read the role).
                metadata: { role: args.builder ? BUILDER_ROLE : args.role, fqdn: args.fqdn },
            },
            {
                parent: this,
                protect: args.protect ?? false,
                dependsOn: args.vmDependsOn ?? [],
                // A rotated image behind the same name, or a new key pair, must not rebuild a running
                // server: new images roll out by deliberate replacement.
                ignoreChanges: [
                    "imageName",
                    "imageId",
                    ...("image" in args.boot ? ["blockDevices[0].uuid"] : []),
                    "keyPair",
                    "userData",
                    ...(args.sizedAtCreation ? ["flavorName", "blockDevices[0].volumeSize"] : []),
                    ...(args.builder ? ["powerState"] : []),
                ],
                // The port survives the VM; a new VM must not be created on it while the old holds it.
                deleteBeforeReplace: true,
            },
        );
        this.instanceId = instance.id;

        let reachable: pulumi.Resource[] = [instance];
        if (args.network.mode === "floating") {
            const fip = new openstack.networking.FloatingIp(
                `${name}-fip`,
                { pool: args.network.floatingIpPool!, description: `${args.fqdn} (managed by Pulumi)` },
                { parent: this },
            );
            const association = new openstack.networking.FloatingIpAssociate(
                `${name}-fip-assoc`,
                { floatingIp: fip.address, portId: port.id },
                { parent: this, dependsOn: [instance] },
            );
            this.ipv4 = fip.address;
            reachable = [instance, association];
        } else {
            this.ipv4 = this.privateIpv4;
        }

        const dns = args.builder
            ? { records: pulumi.output<DnsRecordSpec[]>([]), resources: [] }
            : hostRecords(name, { dns: args.dns, fqdn: args.fqdn, ipv4: this.ipv4, ipv6: this.ipv6 }, this);
        this.records = dns.records;

        this.connection = connectionTo(this.ipv4, args.sshPrivateKey);
        this.ready = remoteStep(
            `${name}-ready`,
            {
                step: "wait-ready",
                connection: this.connection,
                inputs: {
                    FQDN: args.builder ? "" : args.fqdn,
                    IPV4: this.ipv4,
                    IPV6: this.ipv6 ?? "",
                    TIMEOUT_SECONDS: String(READY_TIMEOUT_SECONDS),
                    POLL_SECONDS: String(READY_POLL_SECONDS),
                },
                triggers: [instance.id],
            },
            { parent: this, dependsOn: [...reachable, ...dns.resources] },
        );

        this.registerOutputs({ ipv4: this.ipv4, ipv6: this.ipv6, privateIpv4: this.privateIpv4, records: this.records });
    }
}
