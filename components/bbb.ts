// A BigBlueButton server: a host, bbb-install.sh run by the bbb-installer step, then the bbb-configure step
// (the stack's API secret, property overrides, a signed API check).
import { createHash } from "crypto";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Host, HostArgs } from "./host";
import { remoteStep } from "./remote";

/** bbb-web overrides in /etc/bigbluebutton/bbb-web.properties: recordings off by default, version hidden. */
export const BBB_PROPERTIES: Record<string, string> = {
    disableRecordingDefault: "true",
    allowStartStopRecording: "false",
    allowRevealOfBBBVersion: "false",
};

/** Time limits of the steps, in seconds. */
export const BBB_TIMEOUTS = { installer: 3600, apiWait: 300 };

export function installerUrl(ref: string): string {
    return `https://raw.githubusercontent.com/bigbluebutton/bbb-install/${ref}/bbb-install.sh`;
}

export interface BbbServerArgs {
    /** The host to create (role bbb). */
    host: HostArgs;
    /** The API secret this server answers to. */
    secret: pulumi.Input<string>;
    /** TURN server name and secret for `bbb-install.sh -c`. Not its install: nodes never wait for TURN. */
    turn: { fqdn: string; secret: pulumi.Input<string> };
    /** bbb-install.sh -v, e.g. jammy-300. */
    version: string;
    /** Git ref of bbb-install.sh to download. */
    installerRef: string;
    /** Let's Encrypt account e-mail (-e). */
    email: string;
    /** Install Greenlight on this server (-g); single topology only. */
    greenlight: boolean;
    /** Re-run the installer even while meetings are running. */
    forceReinstall: boolean;
}

export class BbbServer extends pulumi.ComponentResource {
    readonly host: Host;
    /** The API secret this server answers to. */
    readonly secret: pulumi.Input<string>;
    readonly installed: command.remote.Command;
    readonly configured: command.remote.Command;

    constructor(name: string, args: BbbServerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("bbb:bbb:BbbServer", name, {}, opts);
        this.host = new Host(name, args.host, { parent: this });
        this.secret = args.secret;
        const triggers = [this.host.instanceId];
        this.installed = remoteStep(
            `${name}-install`,
            {
                step: "bbb-installer",
                connection: this.host.connection,
                inputs: {
                    FQDN: this.host.fqdn,
                    EMAIL: args.email,
                    VERSION: args.version,
                    INSTALLER_URL: installerUrl(args.installerRef),
                    TURN_HOST: args.turn.fqdn,
                    TURN_SECRET: args.turn.secret,
                    GREENLIGHT: String(args.greenlight),
                    FORCE_REINSTALL: String(args.forceReinstall),
                    TIMEOUT_SECONDS: String(BBB_TIMEOUTS.installer),
                },
                triggers,
            },
            { parent: this, dependsOn: [this.host.ready] },
        );
        this.configured = remoteStep(
            `${name}-configure`,
            {
                step: "bbb-configure",
                connection: this.host.connection,
                inputs: {
                    FQDN: this.host.fqdn,
                    SECRET: args.secret,
                    PROPERTIES: Object.entries(BBB_PROPERTIES)
                        .map(([key, value]) => `${key}=${value}`)
                        .join("\n"),
                    API_WAIT_SECONDS: String(BBB_TIMEOUTS.apiWait),
                    // Changes with every installer run, which may rewrite what this step sets.
                    INSTALL_ID: this.installed.stdin.apply((stdin) => createHash("sha256").update(stdin ?? "").digest("hex")),
                },
                triggers,
            },
            { parent: this, dependsOn: [this.installed] },
        );
        this.registerOutputs({});
    }
}
