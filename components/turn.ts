// The TURN server: a host running coturn, configured by the turn-coturn step.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { PortRange } from "./config";
import { Host, HostArgs } from "./host";
import { TURN_PORTS } from "./ports";
import { remoteStep } from "./remote";

/** A BBB server coturn relays to. */
export interface TurnPeer {
    fqdn: string;
    /** Canonical public addresses (IPv4, and IPv6 when it has one). */
    addresses: string[];
}

/**
 * The PEERS input of turn-coturn: one line a server, `fqdn address...`, servers by name and addresses sorted
 * (byte order, as the host sorts them) without duplicates, so the same pool always gives the same input.
 */
export function peerLines(peers: readonly TurnPeer[]): string {
    const byteOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
    return [...peers]
        .sort((a, b) => byteOrder(a.fqdn, b.fqdn))
        .map((p) => [p.fqdn, ...[...new Set(p.addresses.filter((a) => a))].sort(byteOrder)].join(" "))
        .join("\n");
}

export interface TurnServerArgs {
    /** The host to create (role turn). */
    host: HostArgs;
    /** coturn's static-auth-secret: lower-case hex (bbb-install.sh splits `-c host:secret` on ':'). */
    secret: pulumi.Input<string>;
    /** coturn's realm: the DNS zone. */
    realm: string;
    /** Let's Encrypt account e-mail. */
    email: string;
    /** UDP relay range: coturn's min-port/max-port, the same setting the security group opens. */
    relayPorts: PortRange;
    /**
     * The BBB servers, by name with their addresses: the only peers coturn relays to. Follows the pool; a server
     * that leaves it stays allowed on the TURN host while its name still resolves to it (see turn-coturn.sh).
     */
    peers: pulumi.Input<pulumi.Input<TurnPeer>[]>;
    /** file: sessions logged (rotated daily, kept 7 days); none: nothing logged (strict privacy). */
    logging: "file" | "none";
}

export class TurnServer extends pulumi.ComponentResource {
    readonly host: Host;
    readonly configured: command.remote.Command;

    constructor(name: string, args: TurnServerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("bbb:turn:TurnServer", name, {}, opts);
        this.host = new Host(name, args.host, { parent: this });
        this.configured = remoteStep(
            `${name}-coturn`,
            {
                step: "turn-coturn",
                connection: this.host.connection,
                inputs: {
                    FQDN: this.host.fqdn,
                    REALM: args.realm,
                    EMAIL: args.email,
                    SECRET: args.secret,
                    PRIVATE_IPV4: this.host.privateIpv4,
                    PUBLIC_IPV4: this.host.ipv4,
                    IPV6: this.host.ipv6 ?? "",
                    LISTENING_PORT: String(TURN_PORTS.listening),
                    TLS_PORT: String(TURN_PORTS.tls),
                    RELAY_MIN: String(args.relayPorts.from),
                    RELAY_MAX: String(args.relayPorts.to),
                    PEERS: pulumi.output(args.peers).apply((peers) => peerLines(peers)),
                    LOGGING: args.logging,
                },
                triggers: [this.host.instanceId],
            },
            { parent: this, dependsOn: [this.host.ready] },
        );
        this.registerOutputs({});
    }
}
