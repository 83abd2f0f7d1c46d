// The port matrix: the one table the security groups, the docs and the firewall report are made from.
// config/ reads this table to validate turnRelayPorts; this module imports only its shared types.
import type { PortRange, Role } from "./config/types";

export type Protocol = "tcp" | "udp";
export type Ethertype = "IPv4" | "IPv6";

/**
 * Where traffic may come from: the whole Internet, the operator's SSH ranges, the SIP provider's ranges,
 * the BBB servers or the monitoring host (their security group).
 */
export type Source = "world" | "ssh" | "sip" | "bbb-hosts" | "monitoring-hosts";

/** A feature a row belongs to: the row exists only when the feature is on. */
export type Feature = "dialIn" | "poolDialIn" | "poolRecordings" | "monitoring";

export interface MatrixRow {
    /** The roles whose security group has the row; "every" for all of them. */
    roles: readonly Role[] | "every";
    /** A fixed range, or `turnRelay`: the `turnRelayPorts` setting (coturn's min-port/max-port too). */
    ports: PortRange | "turnRelay";
    protocols: readonly Protocol[];
    source: Source;
    why: string;
    /** Only when this feature is on. */
    when?: Feature;
}

const one = (port: number): PortRange => ({ from: port, to: port });

/** coturn's listening ports: the matrix opens them and the TURN step writes them into turnserver.conf. */
export const TURN_PORTS = { listening: 3478, tls: 443 } as const;

/** FreeSWITCH's external SIP profile: the matrix opens it for dial-in and the dial-in step checks it. */
export const SIP_PORT = 5060;

/**
 * The exporters the monitoring host scrapes, on each host's fixed IPv4 address: the node exporter (every host)
 * and greenstatic/bigbluebutton-exporter (BBB servers; its settings.py default port).
 */
export const EXPORTER_PORTS = { node: 9100, bbb: 9688 } as const;

export const PORT_MATRIX: readonly MatrixRow[] = [
    { roles: "every", ports: one(22), protocols: ["tcp"], source: "ssh", why: "SSH for the install steps and the operator" },
    { roles: ["bbb"], ports: one(80), protocols: ["tcp"], source: "world", why: "HTTP: redirect to HTTPS, ACME HTTP-01" },
    { roles: ["bbb"], ports: one(443), protocols: ["tcp"], source: "world", why: "HTTPS: nginx, API, HTML5 client, WebSockets" },
    {
        roles: ["bbb"],
        ports: { from: 16384, to: 32768 },
        protocols: ["udp"],
        source: "world",
        why: "media: FreeSWITCH 16384-24576, mediasoup 24577-32768",
    },
    { roles: ["turn"], ports: one(TURN_PORTS.listening), protocols: ["tcp", "udp"], source: "world", why: "STUN/TURN" },
    { roles: ["turn"], ports: one(TURN_PORTS.tls), protocols: ["tcp", "udp"], source: "world", why: "TURN over TLS (and DTLS)" },
    { roles: ["turn"], ports: one(80), protocols: ["tcp"], source: "world", why: "certbot HTTP-01" },
    { roles: ["turn"], ports: "turnRelay", protocols: ["udp"], source: "world", why: "TURN relay range (coturn min-port/max-port)" },
    { roles: ["scalelite"], ports: one(80), protocols: ["tcp"], source: "world", why: "HTTP: redirect to HTTPS, ACME HTTP-01" },
    { roles: ["scalelite"], ports: one(443), protocols: ["tcp"], source: "world", why: "HTTPS: Scalelite API" },
    { roles: ["greenlight"], ports: one(80), protocols: ["tcp"], source: "world", why: "HTTP: redirect to HTTPS, ACME HTTP-01" },
    { roles: ["greenlight"], ports: one(443), protocols: ["tcp"], source: "world", why: "HTTPS: Greenlight" },
    { roles: ["bbb"], ports: one(SIP_PORT), protocols: ["tcp", "udp"], source: "sip", when: "dialIn", why: "SIP from the dial-in provider (FreeSWITCH)" },
    {
        roles: ["bbb"],
        ports: one(SIP_PORT),
        protocols: ["tcp", "udp"],
        source: "bbb-hosts",
        when: "poolDialIn",
        why: "SIP between the BBB servers: a dial-in call goes to the server hosting the meeting",
    },
    {
        roles: ["scalelite"],
        ports: one(2049),
        protocols: ["tcp"],
        source: "bbb-hosts",
        when: "poolRecordings",
        why: "NFS: the BBB servers write recordings to Scalelite's share",
    },
    {
        roles: "every",
        ports: one(EXPORTER_PORTS.node),
        protocols: ["tcp"],
        source: "monitoring-hosts",
        when: "monitoring",
        why: "node exporter: the monitoring host's Prometheus scrapes it",
    },
    {
        roles: ["bbb"],
        ports: one(EXPORTER_PORTS.bbb),
        protocols: ["tcp"],
        source: "monitoring-hosts",
        when: "monitoring",
        why: "BigBlueButton exporter: the monitoring host's Prometheus scrapes it",
    },
    { roles: ["monitoring"], ports: one(80), protocols: ["tcp"], source: "world", why: "HTTP: redirect to HTTPS, ACME HTTP-01" },
    { roles: ["monitoring"], ports: one(443), protocols: ["tcp"], source: "world", why: "HTTPS: Grafana (its own login; no anonymous access)" },
    // No RTMP row: the streaming workers run on the streaming host itself and publish to nginx on 127.0.0.1:1935
    // (components/streaming-config.ts), so no other host, and nobody in the world, can reach RTMP.
    { roles: ["streaming"], ports: one(80), protocols: ["tcp"], source: "world", why: "HTTP: redirect to HTTPS, ACME HTTP-01" },
    { roles: ["streaming"], ports: one(443), protocols: ["tcp"], source: "world", why: "HTTPS: the live streams' viewer page and HLS (no login), the streaming API (its password)" },
];

/**
 * Ports never open to the world (DESIGN.md): FreeSWITCH 7443, 5066, 5080, 8021 and SIP 5060, RTMP 1935 (the
 * streaming host's ingest, on loopback), the
 * databases this project runs (PostgreSQL 5432, Redis 6379), and monitoring's (docs/monitoring.md): Grafana's
 * own port 3000 (nginx serves it on 443), Prometheus 9090, Alertmanager 9093 and its cluster port 9094, the node
 * exporter 9100, the blackbox exporter 9115, coturn's exporter 9641 and the BigBlueButton exporter 9688.
 */
export const NEVER_WORLD_PORTS: readonly number[] = [1935, 3000, 5060, 5066, 5080, 5432, 6379, 7443, 8021, 9090, 9093, 9094, 9100, 9115, 9641, 9688];

/** The matrix's fixed ranges (every row but the TURN relay range): 22, 80, 443, 3478, 16384-32768. */
export const FIXED_RANGES: readonly PortRange[] = PORT_MATRIX.flatMap((row) => (row.ports === "turnRelay" ? [] : [row.ports]));

const overlaps = (a: PortRange, b: PortRange) => a.from <= b.to && b.from <= a.to;

/**
 * What a TURN relay range (turnRelayPorts, opened to the world over UDP) must be, when `range` is not; the
 * configuration check and the policy pack both ask this.
 */
export function relayRangeProblem(range: PortRange): string | undefined {
    const shape = "a port range FROM-TO with 1024 <= FROM < TO <= 65535";
    if (!Number.isInteger(range.from) || !Number.isInteger(range.to) || range.from < 1024 || range.to > 65535 || range.from >= range.to) {
        return shape;
    }
    const fixed = FIXED_RANGES.find((r) => overlaps(r, range));
    if (fixed) return `${shape} that leaves out the port matrix's ${fixed.from === fixed.to ? fixed.from : `${fixed.from}-${fixed.to}`}`;
    const never = NEVER_WORLD_PORTS.find((port) => port >= range.from && port <= range.to);
    if (never !== undefined) return `${shape} that leaves out ${never}, which is never open to the world`;
    return undefined;
}

const WORLD: Record<Ethertype, string> = { IPv4: "0.0.0.0/0", IPv6: "::/0" };

/** One security group rule: a single range, protocol, source (a CIDR or a role's group) and address family. */
export interface IngressRule {
    protocol: Protocol;
    from: number;
    to: number;
    /** The source range, or absent when the source is `remoteGroup`. */
    cidr?: string;
    /** The source is every host of this role (its security group). */
    remoteGroup?: Role;
    ethertype: Ethertype;
    why: string;
}

export interface FirewallInputs {
    sshAllowedCidrs: readonly string[];
    turnRelayPorts: PortRange;
    /** The dial-in provider's ranges; absent or empty: no dial-in. */
    sipProviderCidrs?: readonly string[];
    /** Recordings on in the pool topology: the BBB servers mount Scalelite's NFS share. */
    poolRecordings?: boolean;
    /** Dial-in in the pool topology: the BBB servers forward calls to each other. */
    poolDialIn?: boolean;
    /** A monitoring host scrapes every host's exporters. */
    monitoring?: boolean;
}

export function ethertypeOf(cidr: string): Ethertype {
    return cidr.includes(":") ? "IPv6" : "IPv4";
}

/** The ingress rules of one role, in matrix order. */
export function ingressFor(role: Role, inputs: FirewallInputs): IngressRule[] {
    const on: Record<Feature, boolean> = {
        dialIn: (inputs.sipProviderCidrs ?? []).length > 0,
        poolDialIn: inputs.poolDialIn === true,
        poolRecordings: inputs.poolRecordings === true,
        monitoring: inputs.monitoring === true,
    };
    const rules: IngressRule[] = [];
    for (const row of PORT_MATRIX) {
        if (row.roles !== "every" && !row.roles.includes(role)) continue;
        if (row.when && !on[row.when]) continue;
        const range = row.ports === "turnRelay" ? inputs.turnRelayPorts : row.ports;
        const sources: { cidr?: string; remoteGroup?: Role; ethertype: Ethertype }[] =
            row.source === "bbb-hosts"
                ? [{ remoteGroup: "bbb", ethertype: "IPv4" }, { remoteGroup: "bbb", ethertype: "IPv6" }]
                : // Prometheus scrapes fixed IPv4 addresses, which a remote-group rule matches (docs/monitoring.md, "Firewall").
                  row.source === "monitoring-hosts"
                  ? [{ remoteGroup: "monitoring", ethertype: "IPv4" }]
                  : (row.source === "world" ? [WORLD.IPv4, WORLD.IPv6] : row.source === "ssh" ? inputs.sshAllowedCidrs : inputs.sipProviderCidrs ?? []).map(
                      (cidr) => ({ cidr, ethertype: ethertypeOf(cidr) }),
                  );
        for (const protocol of row.protocols) {
            for (const source of sources) rules.push({ protocol, from: range.from, to: range.to, ...source, why: row.why });
        }
    }
    return rules;
}
