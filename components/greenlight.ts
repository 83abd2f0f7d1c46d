// Greenlight on its own host (pool topology), pointed at Scalelite with a consumer secret of its own, its
// PostgreSQL and Redis on a data volume. In the single topology bbb-install.sh puts it on bbb-1 instead.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Host, HostArgs } from "./host";
import { appHost } from "./data";
import { remoteStep } from "./remote";

/** PostgreSQL and Redis images beside Greenlight (as Greenlight's own compose file has them). */
export const GREENLIGHT_SUPPORT_IMAGES = { postgres: "postgres:14-alpine", redis: "redis:6.2-alpine" };
export const GREENLIGHT_HEALTH_WAIT_SECONDS = 600;

export interface GreenlightServerArgs {
    /** The host to create (role greenlight). */
    host: HostArgs;
    email: string;
    /** Image tag, e.g. v3.8.2.4. */
    version: string;
    dataVolumeSize: number;
    protectData: boolean;
    /** Scalelite's API URL (https://<host>/bigbluebutton/api). */
    apiUrl: string;
    /** Greenlight's consumer secret in Scalelite. */
    apiSecret: pulumi.Input<string>;
    /** Scalelite's setup: Greenlight's health check asks the API. */
    scalelite: pulumi.Resource;
    /** strict: no request logged by nginx, Greenlight's warnings only (greenlight-setup.sh). */
    privacy: "strict" | "standard";
}

export class GreenlightServer extends pulumi.ComponentResource {
    readonly host: Host;
    readonly setup: command.remote.Command;
    readonly url: string;

    constructor(name: string, args: GreenlightServerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("bbb:greenlight:GreenlightServer", name, {}, opts);
        const app = appHost(name, args, this);
        this.host = app.host;
        this.url = `https://${this.host.fqdn}/`;

        this.setup = remoteStep(
            `${name}-setup`,
            {
                step: "greenlight-setup",
                connection: this.host.connection,
                inputs: {
                    FQDN: this.host.fqdn,
                    EMAIL: args.email,
                    GREENLIGHT_VERSION: args.version,
                    VOLUME_ID: app.data.volume.id,
                    VOLUME_SIZE: String(args.dataVolumeSize),
                    SECRET_KEY_BASE: app.secretKeyBase,
                    DB_PASSWORD: app.dbPassword,
                    BBB_ENDPOINT: `${args.apiUrl}/`,
                    BBB_SECRET: args.apiSecret,
                    POSTGRES_IMAGE: GREENLIGHT_SUPPORT_IMAGES.postgres,
                    REDIS_IMAGE: GREENLIGHT_SUPPORT_IMAGES.redis,
                    HEALTH_WAIT_SECONDS: String(GREENLIGHT_HEALTH_WAIT_SECONDS),
                    PRIVACY: args.privacy,
                },
                triggers: [this.host.instanceId],
            },
            { parent: this, dependsOn: [this.host.ready, app.data.attachment, args.scalelite] },
        );
        this.registerOutputs({});
    }
}
