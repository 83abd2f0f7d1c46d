// The platform: which hosts exist for the single or pool topology, their firewalls, and how they fit.
import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";
import * as random from "@pulumi/random";
import { Role, Settings } from "./config";
import { CloudFacts } from "./cloud";
import { SecurityGroup } from "./firewall";
import { Host, HostArgs } from "./host";
import { DnsRecordSpec, hostRecords } from "./dns";
import { BBB_TIMEOUTS, BbbServer, installerUrl } from "./bbb";
import { bakeKey, BakeSpec, Baking, bootMetadata, FoundBakes, Golden, IMAGE_BOOT, lookupBaking } from "./bake";
import { GreenlightServer } from "./greenlight";
import { Scalelite } from "./scalelite";
import { TurnServer } from "./turn";
import { checkBeforeChange } from "./guard";
import { Backup, backupPasswords, databaseHosts } from "./backup";
import { TURN_PORTS } from "./ports";
import { bbbExporter, Monitoring, nodeExporter } from "./monitoring";
import { Streaming } from "./streaming";
import { BbbRelease, fqdn, HostSpec, hostSpecs, PROD_STACK, rolesOf, Topology, topologyOf } from "./names";

export interface PlatformArgs {
    settings: Settings;
    cloud: CloudFacts;
    /** Stack name: part of security group names, since dev and prod may share one OpenStack project. */
    stack: string;
    /** The secret consumers use: bbb-1's own in single topology, Scalelite's primary in a pool. */
    apiSecret: pulumi.Input<string>;
    /** What the cloud holds of the pool's bakes (bakesInCloud). */
    baking: FoundBakes;
}

/** The consumer Greenlight uses in a pool: a Scalelite consumer like the others. */
export const GREENLIGHT_CONSUMER = "greenlight";

export interface HostSummary {
    name: string;
    role: Role;
    fqdn: string;
    ipv4: string;
    ipv6?: string;
}

export class Platform extends pulumi.ComponentResource {
    readonly topology: Topology;
    /** Every host by its short name (turn, bbb-1, ...). */
    readonly hosts: Record<string, Host> = {};
    readonly turn: TurnServer;
    readonly bbbServers: BbbServer[];
    readonly scalelite?: Scalelite;
    /** Each consumer's API secret: Scalelite's per-consumer secrets, or bbb-1's one secret as `default`. */
    readonly consumerSecrets: Record<string, pulumi.Output<string>>;
    /** Name consumers call the API on (`apiHostname`): bbb-1 answers it alone, Scalelite in a pool. */
    readonly apiHost: string;
    readonly turnHost: string;
    readonly greenlightUrl?: string;
    readonly summary: pulumi.Output<HostSummary[]>;
    readonly dnsRecords: pulumi.Output<DnsRecordSpec[]>;
    /** Which golden volume each BBB server boots from, and the golden volumes kept (exported as `baking`, for people and the plan). */
    readonly baking: Baking;
    /** Each database host's backups (on, or turned off), by host name. */
    readonly backups: Record<string, Backup> = {};
    /** The restic password of each host that keeps a database, backed up or not (yet, or any more). */
    readonly backupPasswords: Record<string, pulumi.Output<string>>;
    readonly monitoring?: Monitoring;
    readonly streaming?: Streaming;

    constructor(name: string, args: PlatformArgs, opts?: pulumi.ComponentResourceOptions) {
        super("bbb:platform:Platform", name, {}, opts);
        const s = args.settings;
        this.topology = topologyOf(s);
        const single = this.topology === "single";
        const specs = hostSpecs(s);
        const nameOf = (host: string) => fqdn(host, s.hostnamePrefix, s.domain);
        const specOf = (role: Role) => specs.find((spec) => spec.role === role);
        const turnSpec = specOf("turn")!;
        this.apiHost = nameOf(s.apiHostname);
        // The API name's records, pointing at the host that answers it: one resource name in both topologies,
        // so growing to a pool updates them in place. Not while bbb-1 hosts meetings, though: callers would then
        // reach Scalelite, which does not know them, and nobody could join them any more.
        let apiRecords: pulumi.Output<DnsRecordSpec[]> | undefined;
        const apiMoveCheck = checkBeforeChange(
            "api-move-check",
            {
                fqdn: nameOf("bbb-1"),
                stack: args.stack,
                secret: args.apiSecret,
                what: "moving the API name from bbb-1 to Scalelite (joining a meeting that runs on bbb-1 would fail through Scalelite, which does not know it)",
                force: s.forceReinstall,
                forceKey: "forceReinstall",
                watched: { apiHost: single ? "bbb-1" : "scalelite" },
            },
            { parent: this },
        );
        const declareApiRecords = (target: Host) => {
            const declared = hostRecords("api", { dns: s.dns, fqdn: this.apiHost, ipv4: target.ipv4, ipv6: target.ipv6 }, this, [apiMoveCheck]);
            apiRecords = declared.records;
            return declared.resources;
        };

        const keyPair = new openstack.compute.Keypair(`${name}-key`, { publicKey: s.sshPublicKey }, { parent: this });
        const firewall = {
            sshAllowedCidrs: s.sshAllowedCidrs,
            turnRelayPorts: s.turnRelayPorts,
            sipProviderCidrs: s.dialIn?.sipProviderCidrs,
            poolRecordings: !single && s.recordings.enabled,
            poolDialIn: !single && s.dialIn !== undefined,
            monitoring: s.monitoring,
        };
        // The groups other rules name as their source first: the monitoring host's (every exporter, the BBB servers'
        // too) and the BBB servers' (Scalelite's NFS).
        const groups = {} as Record<Role, SecurityGroup>;
        const sources: Role[] = ["monitoring", "bbb"];
        const rank = (role: Role) => (sources.includes(role) ? sources.indexOf(role) : sources.length);
        for (const role of [...rolesOf(s)].sort((a, b) => rank(a) - rank(b))) {
            const peerGroupIds = Object.fromEntries(sources.filter((peer) => groups[peer]).map((peer) => [peer, groups[peer].id]));
            groups[role] = new SecurityGroup(`${role}-sg`, { role, label: args.stack, firewall, peerGroupIds }, { parent: this });
        }
        // In prod, a BBB server is replaced or deleted only when the operator says so for that change.
        const protectServers = args.stack === PROD_STACK && !s.allowDestructiveChanges;
        const hostArgs = (spec: HostSpec): HostArgs => ({
            role: spec.role,
            fqdn: nameOf(spec.name),
            boot: { image: args.cloud.imageIds[spec.release?.image ?? s.image] },
            flavor: s.flavors[spec.role],
            volumeSize: s.volumeSizes[spec.role],
            // A pool's servers get a new flavor or boot volume size one at a time, by replacement (releases).
            sizedAtCreation: !single && spec.role === "bbb",
            protect: spec.role === "bbb" && protectServers,
            securityGroupIds: [groups[spec.role].id],
            network: s.network,
            networkId: args.cloud.networkId,
            hasIpv6: args.cloud.hasIpv6,
            keyPair: keyPair.name,
            dns: s.dns,
            sshPrivateKey: s.sshPrivateKey,
        });

        // Hex: bbb-install.sh splits `-c host:secret` on ':'.
        const turnSecret = pulumi.secret(new random.RandomBytes("turn-secret", { length: 32 }, { parent: this }).hex);
        this.turnHost = nameOf(turnSpec.name);

        // Pool: the consumers' secrets and Scalelite first. Scalelite needs nothing of the nodes, and the
        // nodes mount its NFS share (recordings) by its private address.
        let scalelite: Scalelite | undefined;
        if (single) {
            this.consumerSecrets = Object.fromEntries(s.consumers.map((c) => [c, pulumi.output(args.apiSecret)]));
        } else {
            const consumers = [...new Set([...s.consumers, ...(s.greenlight ? [GREENLIGHT_CONSUMER] : [])])];
            this.consumerSecrets = Object.fromEntries(
                consumers.map((c) => [
                    c,
                    pulumi.secret(
                        new random.RandomPassword(
                            `consumer-${c}-secret`,
                            { length: 40, special: false, keepers: { generation: String(s.consumerSecretGenerations[c] ?? 1) } },
                            { parent: this },
                        ).result,
                    ),
                ]),
            );
            const scaleliteSpec = specOf("scalelite")!;
            scalelite = new Scalelite(
                scaleliteSpec.name,
                {
                    host: hostArgs(scaleliteSpec),
                    email: s.letsEncryptEmail,
                    version: s.scaleliteVersion,
                    dataVolumeSize: s.dataVolumeSizes.scalelite,
                    protectData: s.protectData,
                    primarySecret: args.apiSecret,
                    consumerSecrets: Object.values(this.consumerSecrets),
                    forceRemove: s.forceRemove,
                    api: { fqdn: this.apiHost, records: declareApiRecords },
                    privacy: s.privacy,
                    ...(s.recordings.enabled ? { recordings: { nfsClients: args.cloud.ipv4Cidrs, retentionDays: s.recordings.retentionDays } } : {}),
                },
                { parent: this },
            );
            this.scalelite = scalelite;
            this.hosts[scaleliteSpec.name] = scalelite.host;
        }

        // BBB servers need TURN's name and secret, never TURN's install: they do not wait for it.
        const bbbSpecs = specs.filter((spec) => spec.role === "bbb");
        this.baking = bootsOf(bbbSpecs, args, !single && s.bake);
        const goldens = Object.fromEntries(
            Object.entries(this.baking.goldens).map(([key, spec]) => {
                const golden = new Golden(
                    `bake-${key.slice(0, 12)}`,
                    {
                        key,
                        stack: args.stack,
                        spec,
                        // Made, or a server's already (it needs no bake: a golden volume being backed up, say).
                        baked: args.baking.goldens[key] !== undefined && (args.baking.goldens[key].made || Object.values(args.baking.servers).includes(key)),
                        builder: hostArgs(bbbSpecs[0]),
                        installerUrl: installerUrl(spec.installerRef),
                        timeoutSeconds: BBB_TIMEOUTS.installer,
                    },
                    { parent: this },
                );
                return [key, golden];
            }),
        );
        this.bbbServers = bbbSpecs.map((spec) => {
            // A new secretGeneration replaces the secret (keepers).
            const secret = single
                ? args.apiSecret
                : pulumi.secret(
                      new random.RandomPassword(
                          `${spec.name}-secret`,
                          { length: 40, special: false, keepers: { generation: String(s.secretGeneration) } },
                          { parent: this },
                      ).result,
                  );
            const node = { fqdn: nameOf(spec.name), secret, drain: s.drain.includes(spec.slot!) };
            const bootKey = this.baking.servers[spec.name];
            const server = new BbbServer(
                spec.name,
                {
                    host: {
                        ...hostArgs(spec),
                        // (A server whose golden volume is gone keeps its disk: what it was cloned from is ignored once made.)
                        ...(bootKey === IMAGE_BOOT ? {} : { boot: { volume: { sourceVolId: goldens[bootKey]?.volume.id ?? "", metadata: bootMetadata(bootKey) } } }),
                    },
                    ...(bootKey === IMAGE_BOOT ? {} : { bakeKey: bootKey }),
                    secret,
                    turn: { fqdn: this.turnHost, secret: turnSecret },
                    version: spec.release!.bbbVersion,
                    installerRef: spec.release!.installerRef,
                    email: s.letsEncryptEmail,
                    ...(single && s.greenlight ? { greenlight: { version: s.greenlightVersion } } : {}),
                    forceReinstall: s.forceReinstall,
                    forceRemove: s.forceRemove,
                    stack: args.stack,
                    upgradeInPlace: single,
                    privacy: s.privacy,
                    recordings: s.recordings,
                    ...(single && s.recordings.enabled ? { recordingsVolume: { size: s.dataVolumeSizes.bbb, protect: s.protectData } } : {}),
                    ...(single && s.greenlight ? { greenlightVolume: { size: s.dataVolumeSizes.greenlight, protect: s.protectData } } : {}),
                    ...(scalelite && s.recordings.enabled
                        ? { scaleliteRecordings: { nfsServer: scalelite.host.privateIpv4, scaleliteVersion: s.scaleliteVersion, exported: scalelite.setup } }
                        : {}),
                    ...(s.dialIn ? { dialIn: s.dialIn } : {}),
                    ...(s.webhooks ? { webhooks: { urls: s.webhookUrls } } : {}),
                    ...(scalelite ? { maintenance: (change: pulumi.Output<string>) => scalelite.maintenance(spec.name, { ...node, change }) } : {}),
                },
                { parent: this },
            );
            this.hosts[spec.name] = server.host;
            return server;
        });
        // Second phase, now that every server has an address: bbb-1 alone answers the API name (in a pool, the
        // bbb-1 of a stack grown from one server gives it up); in a pool, dial-in calls are forwarded to the
        // server hosting the meeting; then Scalelite takes each server once its last step is done.
        const api = single ? { fqdn: this.apiHost, records: declareApiRecords(this.bbbServers[0].host) } : { fqdn: "", records: [] };
        this.bbbServers.forEach((server, i) => {
            const peers = scalelite ? this.bbbServers.filter((_, j) => j !== i).map((other) => other.host.privateIpv4) : [];
            server.finish({ dialInPeers: pulumi.all(peers), ...(bbbSpecs[i].name === "bbb-1" ? { api } : {}) });
            scalelite?.register(bbbSpecs[i].name, {
                fqdn: server.host.fqdn,
                secret: server.secret,
                drain: s.drain.includes(bbbSpecs[i].slot!),
                configured: server.configured,
                installId: server.installId,
                change: server.change,
                vmGuard: server.vmGuard,
                instanceId: server.host.instanceId,
                protected: protectServers,
            });
        });

        // TURN relays to the BBB servers only, so its configuration follows their names and addresses. A server
        // leaving the pool is kept on the TURN host itself while its name resolves (it may still host meetings).
        // Their public addresses only: browsers reach a server's media there (the address it announces), and coturn
        // relays to no private address (turn-coturn.sh leaves out any that reaches it).
        const peers = this.bbbServers.map((b) =>
            pulumi.all([b.host.ipv4, b.host.ipv6]).apply((addresses) => ({
                fqdn: b.host.fqdn,
                addresses: addresses.filter((a): a is string => !!a),
            })),
        );
        this.turn = new TurnServer(
            turnSpec.name,
            {
                host: hostArgs(turnSpec),
                secret: turnSecret,
                realm: s.domain,
                email: s.letsEncryptEmail,
                relayPorts: s.turnRelayPorts,
                peers,
                logging: s.privacy === "strict" ? "none" : "file",
            },
            { parent: this },
        );
        this.hosts[turnSpec.name] = this.turn.host;

        const greenlightSpec = specOf("greenlight");
        let greenlight: GreenlightServer | undefined;
        if (scalelite && greenlightSpec) {
            greenlight = new GreenlightServer(
                greenlightSpec.name,
                {
                    host: hostArgs(greenlightSpec),
                    email: s.letsEncryptEmail,
                    version: s.greenlightVersion,
                    dataVolumeSize: s.dataVolumeSizes.greenlight,
                    protectData: s.protectData,
                    apiUrl: scalelite.apiUrl,
                    apiSecret: this.consumerSecrets[GREENLIGHT_CONSUMER],
                    scalelite: scalelite.setup,
                    privacy: s.privacy,
                },
                { parent: this },
            );
            this.hosts[greenlightSpec.name] = greenlight.host;
        }

        // Backups, once the step that made each host's databases is done.
        this.backupPasswords = backupPasswords(s, this);
        const madeData = { scalelite: scalelite?.setup, greenlight: greenlight?.setup, bbb: this.bbbServers[0].configured };
        for (const [hostName, role] of Object.entries(databaseHosts(s))) {
            this.backups[hostName] = new Backup(
                hostName,
                {
                    host: this.hosts[hostName],
                    role: role!,
                    stack: args.stack,
                    settings: s.backups,
                    ...(args.cloud.backupEndpoint ? { endpoint: args.cloud.backupEndpoint } : {}),
                    after: madeData[role!]!,
                    password: this.backupPasswords[hostName],
                },
                { parent: this },
            );
        }

        if (s.streaming.enabled) {
            const streamingSpec = specOf("streaming")!;
            this.streaming = new Streaming(
                streamingSpec.name,
                {
                    host: hostArgs(streamingSpec),
                    email: s.letsEncryptEmail,
                    settings: s.streaming,
                    privacy: s.privacy,
                    record: s.streaming.record ?? s.privacy === "standard",
                    force: s.forceReinstall,
                },
                { parent: this },
            );
            this.hosts[streamingSpec.name] = this.streaming.host;
        }

        if (s.monitoring) {
            // Each host's steps one after the other (apt takes one at a time): its own, its backups', the exporters'.
            const last: Record<string, pulumi.Resource> = {
                [turnSpec.name]: this.turn.configured,
                ...(scalelite ? { [scalelite.host.name]: scalelite.setup } : {}),
                ...(greenlight ? { [greenlight.host.name]: greenlight.setup } : {}),
                ...(this.streaming ? { [this.streaming.host.name]: this.streaming.setup } : {}),
                ...Object.fromEntries(this.bbbServers.map((server) => [server.host.name, server.configured])),
                ...Object.fromEntries(Object.entries(this.backups).map(([host, backup]) => [host, backup.setup])),
            };
            const targets = Object.values(this.hosts);
            const exporters = Object.fromEntries(targets.map((host) => [host.name, nodeExporter(host, last[host.name])]));
            const bbbExporters = this.bbbServers.map((server, i) =>
                bbbExporter(server.host, { secret: server.secret, privacy: s.privacy, recordings: s.recordings.enabled, after: exporters[bbbSpecs[i].name] }),
            );
            const monitoringSpec = specOf("monitoring")!;
            const https = (host: Host) => `https://${host.fqdn}/`;
            const monitoring = new Monitoring(
                monitoringSpec.name,
                {
                    host: hostArgs(monitoringSpec),
                    email: s.letsEncryptEmail,
                    targets,
                    exporters: [...Object.values(exporters), ...bbbExporters],
                    probes: {
                        https: [
                            `https://${this.apiHost}/bigbluebutton/api`,
                            ...this.bbbServers.map((b) => `${https(b.host)}bigbluebutton/api`),
                            ...(greenlight ? [https(greenlight.host)] : []),
                            ...(this.streaming ? [this.streaming.url] : []),
                        ],
                        tls: [`${this.turnHost}:${TURN_PORTS.tls}`],
                        ...(scalelite ? { scaleliteHealth: `${https(scalelite.host)}health_check` } : {}),
                    },
                    drained: this.bbbServers.filter((_, i) => s.drain.includes(bbbSpecs[i].slot!)).map((b) => b.host.fqdn),
                    privacy: s.privacy,
                    recordings: s.recordings.enabled,
                    backups: Object.keys(this.backups).filter((host) => this.backups[host].enabled),
                    ...(s.alerts ? { alerts: s.alerts } : {}),
                },
                { parent: this },
            );
            nodeExporter(monitoring.host, monitoring.setup);
            this.monitoring = monitoring;
            this.hosts[monitoringSpec.name] = monitoring.host;
        }

        // Single topology: bbb-1 runs Greenlight.
        if (s.greenlight) this.greenlightUrl = `https://${(greenlightSpec ? this.hosts[greenlightSpec.name] : this.bbbServers[0].host).fqdn}/`;

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
        this.dnsRecords = pulumi.all([...hostList.map(({ host }) => host.records), apiRecords!]).apply((lists) => lists.flat());

        this.registerOutputs({ hosts: this.summary, dnsRecords: this.dnsRecords });
    }
}


/** What a release's servers would be baked from, and its key. */
function bakeOf(release: Pick<BbbRelease, "bbbVersion" | "installerRef" | "image">, cloud: CloudFacts): [string, BakeSpec] {
    const spec = { bbbVersion: release.bbbVersion, installerRef: release.installerRef, imageId: cloud.imageIds[release.image], imageName: release.image };
    return [bakeKey(spec), spec];
}

/** The release `bbbVersion`, `bbbInstallerRef` and `image` make now (bbb-1's, during an upgrade too). */
const currentRelease = (s: Settings) => ({ bbbVersion: s.bbbVersion, installerRef: s.bbbInstallerRef, image: s.image });

/**
 * What the cloud holds of a pool's bakes (components/bake.ts lookupBaking): which BBB servers exist and what they
 * booted from, and which golden volumes are made. Nothing for the single topology, which bakes nothing.
 */
export async function bakesInCloud(settings: Settings, cloud: CloudFacts, stack: string): Promise<FoundBakes> {
    if (topologyOf(settings) === "single") return { servers: {}, goldens: {} };
    const specs = hostSpecs(settings).filter((spec) => spec.role === "bbb");
    const servers = specs.map((spec) => ({ name: spec.name, fqdn: fqdn(spec.name, settings.hostnamePrefix, settings.domain) }));
    // The keys wanted: the current release's and, for servers that turn out new, their own release's.
    const releases = new Map([currentRelease(settings), ...specs.map((spec) => spec.release!)].map((r) => [JSON.stringify([r.bbbVersion, r.installerRef, r.image]), r]));
    const wanted = settings.bake ? [...releases.values()].map((release) => bakeOf(release, cloud)[0]) : [];
    return lookupBaking(stack, servers, cloud.networkId, wanted);
}

/**
 * Which golden volume each BBB server boots from: the one it was cloned from (its boot volume says so), "image"
 * for a server that exists without one (created before baking, or without it), or, for a new server with baking
 * on, its release's. And the golden volumes to keep: those, and with baking on the current release's, baked ahead
 * of the servers that need it, so that a scale-up or the next round of a release waits for no bake.
 */
function bootsOf(specs: HostSpec[], args: PlatformArgs, bake: boolean): Baking {
    const make = new Map<string, BakeSpec>(bake ? [bakeOf(currentRelease(args.settings), args.cloud)] : []);
    const servers = Object.fromEntries(
        specs.map((spec) => {
            const found = args.baking.servers[spec.name];
            if (found !== undefined || !bake) return [spec.name, found ?? IMAGE_BOOT];
            const [key, bakeSpec] = bakeOf(spec.release!, args.cloud);
            make.set(key, bakeSpec);
            return [spec.name, key];
        }),
    );
    // The golden volumes the servers were cloned from, as Cinder has them in any state (one deleted outside Pulumi is
    // not made again: its servers keep their disks), and those to make or keep for new servers.
    const goldens: Record<string, BakeSpec> = {};
    for (const key of new Set([...Object.values(servers), ...make.keys()])) {
        const spec = args.baking.goldens[key]?.spec ?? make.get(key);
        if (key !== IMAGE_BOOT && spec) goldens[key] = spec;
    }
    return { servers, goldens };
}
