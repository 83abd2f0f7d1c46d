// Scalelite in front of the BBB pool: a host, a data volume for PostgreSQL and Redis, the scalelite-setup
// step (containers, TLS), and one scalelite-node step per BBB server that registers it, drains it, and
// removes it (only when it hosts no meeting, unless forceRemove) when it leaves the pool.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Host, HostArgs } from "./host";
import { appHost } from "./data";
import { remoteStep } from "./remote";

/** PostgreSQL and Redis images beside Scalelite. */
export const SCALELITE_SUPPORT_IMAGES = { postgres: "postgres:15-alpine", redis: "redis:7-alpine" };
export const SCALELITE_HEALTH_WAIT_SECONDS = 600;

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

        this.setup = remoteStep(
            `${name}-setup`,
            {
                step: "scalelite-setup",
                connection: this.host.connection,
                inputs: {
                    FQDN: this.host.fqdn,
                    EMAIL: args.email,
                    SCALELITE_VERSION: args.version,
                    VOLUME_ID: app.data.volume.id,
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
                },
                triggers: [this.host.instanceId],
            },
            { parent: this, dependsOn: [this.host.ready, app.data.attachment] },
        );
        this.registerOutputs({});
    }

    /** Keeps a BBB server registered; deleting the returned step removes it from Scalelite first. */
    register(name: string, node: NodeRegistrationArgs): command.remote.Command {
        return remoteStep(
            `${name}-registration`,
            {
                step: "scalelite-node",
                connection: this.host.connection,
                inputs: { ...this.nodeInputs(node), INSTALL_ID: node.installId },
                // No triggers: a replaced step would run its delete, which removes the server.
                triggers: [],
                deleteAction: "remove",
            },
            { parent: this, dependsOn: [this.setup, node.configured] },
        );
    }

    /**
     * Before a BBB server switches to a new secret: cordons it (no new meetings) while the running ones end;
     * its registration enables it again. The server's configuration step waits for the returned step.
     */
    prepare(name: string, node: Omit<NodeRegistrationArgs, "configured" | "installId">): command.remote.Command {
        return remoteStep(
            `${name}-rotation`,
            {
                step: "scalelite-node",
                connection: this.host.connection,
                // The installer has not run yet: nothing to wait for.
                inputs: { ...this.nodeInputs(node), INSTALL_ID: "prepare" },
                triggers: [],
                action: "prepare",
            },
            { parent: this, dependsOn: [this.setup] },
        );
    }

    private nodeInputs(node: Omit<NodeRegistrationArgs, "configured" | "installId">): Record<string, pulumi.Input<string>> {
        return { NODE_ID: node.fqdn, API_URL: `https://${node.fqdn}/bigbluebutton/api`, SECRET: node.secret, DRAIN: String(node.drain) };
    }
}
