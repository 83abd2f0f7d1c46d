// Scalelite in front of the BBB pool: a host, a data volume for PostgreSQL and Redis, the scalelite-setup
// step (containers, TLS), and per BBB server two scalelite-node steps: one that takes it out of service
// before a change that restarts it (one server of the pool at a time), and one that registers it, drains it,
// and removes it (only when it hosts no meeting, unless forceRemove) when it leaves the pool.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Host, HostArgs, READY_TIMEOUT_SECONDS } from "./host";
import { appHost } from "./data";
import { remoteStep } from "./remote";
import { PIN_DIGITS } from "./bbb";

/** PostgreSQL and Redis images beside Scalelite. */
export const SCALELITE_SUPPORT_IMAGES = { postgres: "postgres:15-alpine", redis: "redis:7-alpine" };
export const SCALELITE_HEALTH_WAIT_SECONDS = 600;
/**
 * How long a server's maintenance step may wait for its turn: the servers before it take theirs one at a time
 * (each may run its installer, an hour at most). It gives up sooner when the server out of service hosts
 * meetings, or has held its turn longer than a change takes (scalelite-node.sh).
 */
export const MAINTENANCE_WAIT_SECONDS = 86400;

export interface ScaleliteArgs {
    /** The host to create (role scalelite). */
    host: HostArgs;
    /** Let's Encrypt account e-mail. */
    email: string;
    /** Image tag, e.g. v1.8.5. */
    version: string;
    /** Data volume size in GB. */
    dataVolumeSize: number;
    /** Protect the data volume from deletion. */
    protectData: boolean;
    /** LOADBALANCER_SECRET: the secret of `bbbSecret`. */
    primarySecret: pulumi.Input<string>;
    /** Every consumer's own secret (LOADBALANCER_SECRETS holds them and the primary). */
    consumerSecrets: pulumi.Input<string>[];
    /** Remove BBB servers that leave the pool even while they host meetings. */
    forceRemove: boolean;
    /**
     * Recordings on: the BBB servers write them to an NFS share, mountable from these CIDRs; published
     * recordings are deleted after `retentionDays`.
     */
    recordings?: { nfsClients: string[]; retentionDays: number };
    /** The stack's API name, which Scalelite answers; `records(host)` declares its DNS records. */
    api: { fqdn: string; records: (host: Host) => pulumi.Resource[] };
    /** strict: no request and no client address in Scalelite's logs (scalelite-setup.sh). */
    privacy: "strict" | "standard";
}

export interface NodeRegistrationArgs {
    fqdn: string;
    /** The server's API secret, as its bbb-configure step sets it. */
    secret: pulumi.Input<string>;
    /** Cordon instead of enable. */
    drain: boolean;
    /** The server's last step: registration waits until it answers with its secret. */
    configured: pulumi.Resource;
    /** Changes with every installer run on the server: the registration runs again after it. */
    installId: pulumi.Input<string>;
    /** Fingerprint of what restarts BigBlueButton on the server (BbbServer.change). */
    change: pulumi.Input<string>;
    /** The meetings check of the server's VM: the registration depends on it, so its removal (which ends the
     * meetings under forceRemove) runs before the check, on deletion. */
    vmGuard: pulumi.Resource;
    /** The server's VM: a new one (replaced) is registered again, which enables it. */
    instanceId: pulumi.Input<string>;
    /** The VM is protected (the prod stack): its removal from Scalelite refuses, as Pulumi would its deletion. */
    protected: boolean;
}

export class Scalelite extends pulumi.ComponentResource {
    readonly host: Host;
    readonly setup: command.remote.Command;
    readonly apiUrl: string;

    constructor(name: string, args: ScaleliteArgs, opts?: pulumi.ComponentResourceOptions) {
        super("bbb:scalelite:Scalelite", name, {}, opts);
        const app = appHost(name, args, this);
        this.host = app.host;
        this.apiUrl = `https://${this.host.fqdn}/bigbluebutton/api`;
        const apiRecords = args.api.records(this.host);

        this.setup = remoteStep(
            `${name}-setup`,
            {
                step: "scalelite-setup",
                connection: this.host.connection,
                inputs: {
                    FQDN: this.host.fqdn,
                    API_FQDN: args.api.fqdn,
                    IPV4: this.host.ipv4,
                    IPV6: this.host.ipv6 ?? "",
                    RESOLVE_TIMEOUT_SECONDS: String(READY_TIMEOUT_SECONDS),
                    EMAIL: args.email,
                    SCALELITE_VERSION: args.version,
                    VOLUME_ID: app.data.volume.id,
                    VOLUME_SIZE: String(args.dataVolumeSize),
                    SECRET_KEY_BASE: app.secretKeyBase,
                    DB_PASSWORD: app.dbPassword,
                    LOADBALANCER_SECRET: args.primarySecret,
                    LOADBALANCER_SECRETS: pulumi.all([args.primarySecret, ...args.consumerSecrets]).apply((s) => s.join(":")),
                    FORCE_REMOVE: String(args.forceRemove),
                    POSTGRES_IMAGE: SCALELITE_SUPPORT_IMAGES.postgres,
                    REDIS_IMAGE: SCALELITE_SUPPORT_IMAGES.redis,
                    HEALTH_WAIT_SECONDS: String(SCALELITE_HEALTH_WAIT_SECONDS),
                    RECORDINGS: String(args.recordings !== undefined),
                    NFS_CLIENTS: (args.recordings?.nfsClients ?? []).join(" "),
                    RETENTION_DAYS: String(args.recordings?.retentionDays ?? 0),
                    VOICE_BRIDGE_LEN: String(PIN_DIGITS),
                    PRIVACY: args.privacy,
                },
                triggers: [this.host.instanceId],
            },
            { parent: this, dependsOn: [this.host.ready, app.data.attachment, ...apiRecords] },
        );
        this.registerOutputs({});
    }

    /** Keeps a BBB server registered; deleting the returned step removes it from Scalelite first. */
    register(name: string, node: NodeRegistrationArgs): command.remote.Command {
        // Before the server's VM is deleted or replaced (`pulumi up --replace`, a new port or boot volume): the
        // server is taken out of service as for a change, one server of the pool at a time; then the VM's own
        // check refuses while it hosts meetings. Pulumi deletes this first, since it follows the VM's id, after
        // the registration (on scale-down the server is removed from Scalelite first) and before that check.
        // Only what it needs then: a change of the server's properties does not run it again.
        const retire = remoteStep(
            `${name}-retire`,
            {
                step: "scalelite-node",
                connection: this.host.connection,
                inputs: { NODE_ID: node.fqdn, INSTANCE_ID: node.instanceId, MAINTENANCE_WAIT_SECONDS: String(MAINTENANCE_WAIT_SECONDS) },
                triggers: [node.instanceId],
                action: "guard",
                deleteAction: "retire",
            },
            { parent: this, dependsOn: [this.setup, node.vmGuard] },
        );
        return remoteStep(
            `${name}-registration`,
            {
                step: "scalelite-node",
                connection: this.host.connection,
                inputs: { ...this.nodeInputs(node), INSTALL_ID: node.installId, INSTANCE_ID: node.instanceId, PROTECTED: String(node.protected) },
                // No triggers: nothing but `pulumi up --replace` replaces it. Its create on a registered server
                // notes the replacement, so that the old step's delete, run next, removes nothing.
                triggers: [],
                createAction: "create",
                deleteAction: "remove",
            },
            { parent: this, dependsOn: [this.setup, node.configured, node.vmGuard, retire] },
        );
    }

    /**
     * Before a change that restarts a BBB server (its installer, secret or properties; `change` is their
     * fingerprint): takes it out of service, one server of the pool at a time, so that it takes no new meeting
     * while the running ones end; its registration enables it again. The server's installer waits for it.
     */
    maintenance(name: string, node: Omit<NodeRegistrationArgs, "configured" | "installId" | "vmGuard" | "instanceId" | "protected">): command.remote.Command {
        return remoteStep(
            `${name}-maintenance`,
            {
                step: "scalelite-node",
                connection: this.host.connection,
                // The installer has not run yet: nothing to wait for.
                inputs: { ...this.nodeInputs(node), INSTALL_ID: "maintenance" },
                triggers: [],
                action: "maintenance",
            },
            // Only the host: on a new platform nothing is registered yet, and the servers' installers must not
            // wait for Scalelite's setup.
            { parent: this, dependsOn: [this.host.ready], aliases: [{ name: `${name}-rotation` }] },
        );
    }

    private nodeInputs(node: Omit<NodeRegistrationArgs, "configured" | "installId" | "vmGuard" | "instanceId" | "protected">): Record<string, pulumi.Input<string>> {
        return {
            NODE_ID: node.fqdn,
            API_URL: `https://${node.fqdn}/bigbluebutton/api`,
            SECRET: node.secret,
            DRAIN: String(node.drain),
            CHANGE: node.change,
            MAINTENANCE_WAIT_SECONDS: String(MAINTENANCE_WAIT_SECONDS),
        };
    }
}
