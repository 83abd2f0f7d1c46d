// Live streams (docs/streaming.md, docs/streaming-ingest.md; README "Live streams"): a streaming host whose workers
// (THM's BBB-Streaming-Server) join a meeting as a viewer in headless Chrome and push it over RTMP to nginx on the
// same host, which packages HLS for the viewer page, records it, and forwards it when told. Its API is the
// workers' own, behind nginx's Basic authentication (the password a stack secret); `npm run stream` drives it.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import * as random from "@pulumi/random";
import { StreamingSettings } from "./config";
import { Host, HostArgs } from "./host";
import { readScript, remoteStep } from "./remote";
import { HOST_PATHS, rtmpConf, STREAMING_API_USER, viewerFiles, viewerSite } from "./streaming-config";

/**
 * BBB-Streaming-Server v1.1.1's images (docs/streaming.md 1.1: the upstream compose file's `worker-1.0` is the
 * v1.0 line, without v1.1.0's BBB 3.0 audio fix; CI tags each release `worker-<version>`/`controller-<version>`,
 * .github/workflows/ci-docker.yml), and the Redis its queue lives in (the same line as Scalelite's).
 */
export const STREAMING_IMAGES = {
    worker: "pilos/bbb-streaming-server:worker-1.1.1",
    controller: "pilos/bbb-streaming-server:controller-1.1.1",
    redis: "redis:7-alpine",
} as const;

/** hls.js for the viewer page (browsers without native HLS): the package-lock's version and integrity, which the host checks. */
export const HLSJS = {
    version: "1.7.4",
    integrity: "sha512-3GlxGdPvT2YHvQYOt+yOzT/DEior/qJVNIylHA77kgeoBTdQQqi70GwefNEUmHQeNGyjC8U62+bruqW/Tpm+tg==",
} as const;

export interface StreamingArgs {
    host: HostArgs;
    /** Let's Encrypt's account e-mail. */
    email: string;
    settings: StreamingSettings;
    privacy: "strict" | "standard";
    /** Each stream recorded: streaming.record, or privacy standard when unset (strict privacy records nothing unasked). */
    record: boolean;
    /** forceReinstall: restart nginx or replace workers while a stream is live. */
    force: boolean;
}

export class Streaming extends pulumi.ComponentResource {
    readonly host: Host;
    /** The viewer page's origin; a stream's page is `<url>watch/<name>`. */
    readonly url: string;
    /** The streaming API (Basic authentication, user STREAMING_API_USER). */
    readonly apiUrl: string;
    /** The API's password, a secret. */
    readonly apiPassword: pulumi.Output<string>;
    readonly setup: command.remote.Command;

    constructor(name: string, args: StreamingArgs, opts?: pulumi.ComponentResourceOptions) {
        super("bbb:streaming:Streaming", name, {}, opts);
        this.host = new Host(name, args.host, { parent: this });
        this.url = `https://${this.host.fqdn}/`;
        this.apiUrl = `${this.url}api/`;
        this.apiPassword = pulumi.secret(new random.RandomPassword(`${name}-api-password`, { length: 32, special: false }, { parent: this }).result);
        const files = viewerFiles();
        const site = viewerSite({ fqdn: this.host.fqdn, privacy: args.privacy, paths: HOST_PATHS });
        this.setup = remoteStep(
            `${name}-setup`,
            {
                step: "streaming-setup",
                connection: this.host.connection,
                inputs: {
                    FQDN: this.host.fqdn,
                    EMAIL: args.email,
                    PRIVACY: args.privacy,
                    FORCE: String(args.force),
                    WORKERS: String(args.settings.workers),
                    BITRATE: String(args.settings.bitrate),
                    KEEP_DAYS: String(args.settings.keepDays),
                    WORKER_IMAGE: STREAMING_IMAGES.worker,
                    CONTROLLER_IMAGE: STREAMING_IMAGES.controller,
                    REDIS_IMAGE: STREAMING_IMAGES.redis,
                    RTMP_CONF: rtmpConf({ paths: HOST_PATHS, record: args.record, forward: args.settings.forward !== undefined }),
                    SITE_HTTP_CONF: site.http,
                    SITE_HTTPS_CONF: site.https,
                    VIEWER_INDEX_HTML: files["index.html"],
                    VIEWER_PLAYER_JS: files["player.js"],
                    VIEWER_STYLE_CSS: files["style.css"],
                    REMUX_PROGRAM: readScript("streaming-remux"),
                    HLSJS_VERSION: HLSJS.version,
                    HLSJS_INTEGRITY: HLSJS.integrity,
                    API_USER: STREAMING_API_USER,
                    API_PASSWORD: this.apiPassword,
                    FORWARD_URL: args.settings.forward ?? "",
                },
                triggers: [this.host.instanceId],
            },
            { parent: this, dependsOn: [this.host.ready] },
        );
        this.registerOutputs({});
    }
}
