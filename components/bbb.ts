// A BigBlueButton server: a host and its steps, one after the other (each may restart services):
//   bbb-storage (single topology: /var/bigbluebutton with recordings, Greenlight's project with Greenlight,
//   each on a volume of its own, before the installer) -> bbb-installer -> bbb-configure (API secret,
//   bbb-web properties, signed API check) ->
//   bbb-data-policy (privacy: logs, retention; recording options) -> bbb-dialin -> bbb-webhooks ->
//   bbb-recordings (pool topology with recordings: Scalelite's NFS share and post-publish script).
import { createHash } from "crypto";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { BBB_LINES, DialInSettings, RecordingSettings } from "./config";
import { dataVolume } from "./data";
import { checkBeforeChange, checkBeforeDelete } from "./guard";
import { Host, HostArgs, READY_POLL_SECONDS, READY_TIMEOUT_SECONDS } from "./host";
import { SIP_PORT } from "./ports";
import { remoteStep } from "./remote";

/** Digits of a conference's voice bridge: the PIN phone callers enter (BBB's default, 10000-99999). */
export const PIN_DIGITS = 5;

/** Time limits of the steps, in seconds. */
export const BBB_TIMEOUTS = { installer: 3600, apiWait: 300 };

export interface PropertyInputs {
    privacy: "strict" | "standard";
    recordings: boolean;
    dialIn?: { number: string };
}

/** bbb-web overrides (/etc/bigbluebutton/bbb-web.properties) for the settings. */
export function bbbProperties(inputs: PropertyInputs): Record<string, string> {
    return {
        allowRevealOfBBBVersion: "false",
        ...(inputs.recordings
            ? { disableRecordingDefault: "false", allowStartStopRecording: "true" }
            : { disableRecordingDefault: "true", allowStartStopRecording: "false", autoStartRecording: "false", breakoutRoomsRecord: "false" }),
        defaultKeepEvents: "false",
        appLogLevel: inputs.privacy === "strict" ? "WARN" : "INFO",
        ...(inputs.dialIn
            ? {
                  defaultDialAccessNumber: inputs.dialIn.number,
                  defaultWelcomeMessageFooter: "To join this meeting by phone, dial %%DIALNUM%% and enter %%CONFNUM%% as the conference PIN.",
                  defaultNumDigitsForTelVoice: String(PIN_DIGITS),
              }
            : {}),
    };
}

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
    /**
     * The key of the golden volume the server booted from (components/bake.ts): the installer step then finalises a
     * baked host, and writes the secret and properties a seed step left it before its one restart (bbb-configure
     * then has none to do).
     */
    bakeKey?: string;
    /** Git ref of bbb-install.sh to download. */
    installerRef: string;
    /** Let's Encrypt account e-mail (-e). */
    email: string;
    /** Install Greenlight on this server (-g), from this image tag; single topology only. */
    greenlight?: { version: string };
    /** Re-run the installer even while meetings are running (and, in a pool, for a new version in place). */
    forceReinstall: boolean;
    /** Delete or replace the VM even while meetings are running. */
    forceRemove: boolean;
    /** The stack, whose force settings the VM's meetings checks ask the Pulumi CLI for. */
    stack: string;
    /** A new version re-runs the installer on the server (single); false in a pool, upgraded by new servers. */
    upgradeInPlace: boolean;
    privacy: "strict" | "standard";
    recordings: RecordingSettings;
    /** Single topology with recordings: /var/bigbluebutton on a data volume of this size (GB). */
    recordingsVolume?: { size: number; protect: boolean };
    /** Single topology with Greenlight: its compose project (database, .env) on a data volume of this size (GB). */
    greenlightVolume?: { size: number; protect: boolean };
    /**
     * Pool topology with recordings: Scalelite's NFS share and the post-publish script of its version; the
     * mount waits for Scalelite's setup, which exports the share.
     */
    scaleliteRecordings?: { nfsServer: pulumi.Input<string>; scaleliteVersion: string; exported: pulumi.Resource };
    dialIn?: DialInSettings;
    /** Install bbb-webhooks with these permanent hook URLs. */
    webhooks?: { urls: string[] };
    /**
     * In a pool: makes the step that takes this server out of service (one at a time) before a change that
     * restarts it, given the change's fingerprint; the installer waits for it.
     */
    maintenance?: (change: pulumi.Output<string>) => pulumi.Resource;
}

export interface FinishArgs {
    /** In a pool, the other servers' private addresses: dial-in calls are forwarded among them. */
    dialInPeers: pulumi.Input<string[]>;
    /**
     * The stack's API name when this server answers it (bbb-1 in the single topology), with its DNS records;
     * an empty name where it may have answered it before (bbb-1 in a pool, grown from one server): its
     * certificate drops the name. Absent: nothing to do.
     */
    api?: { fqdn: string; records: pulumi.Resource[] };
}

export class BbbServer extends pulumi.ComponentResource {
    readonly host: Host;
    /** The API secret this server answers to. */
    readonly secret: pulumi.Input<string>;
    readonly installed: command.remote.Command;
    /** Checks meetings before the VM is deleted or replaced (its delete runs first). */
    readonly vmGuard: pulumi.Resource;
    /** Changes with every installer run (a hash of the installer step's stdin). */
    readonly installId: pulumi.Output<string>;
    /** Fingerprint of what restarts BigBlueButton here: the installer's inputs but the version, the secret, the properties, privacy. */
    readonly change: pulumi.Output<string>;
    /** The last step (after `finish`): the server is ready for Scalelite when it is done. */
    configured!: command.remote.Command;
    private readonly args: BbbServerArgs;
    private previous: pulumi.Resource;

    constructor(name: string, args: BbbServerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("bbb:bbb:BbbServer", name, {}, opts);
        this.args = args;
        // The VM changes only when it hosts no meeting: a resize or replacement the settings ask for is checked
        // first (where flavor and boot volume size reach a running VM), and so is its deletion or replacement.
        const check = { fqdn: args.host.fqdn, secret: args.secret, force: args.forceReinstall || args.forceRemove, stack: args.stack };
        const resizeCheck = args.host.sizedAtCreation
            ? []
            : [
                  checkBeforeChange(
                      `${name}-resize-check`,
                      {
                          ...check,
                          what: "resizing or replacing its VM (a new flavor or boot volume size)",
                          forceKey: "forceReinstall",
                          watched: { flavor: args.host.flavor, volumeSize: args.host.volumeSize },
                      },
                      { parent: this },
                  ),
              ];
        this.host = new Host(name, { ...args.host, vmDependsOn: resizeCheck }, { parent: this });
        this.vmGuard = checkBeforeDelete(
            `${name}-vm-guard`,
            { ...check, what: "deleting or replacing its VM", forceKey: "forceRemove", instanceId: this.host.instanceId },
            { parent: this },
        );
        this.secret = args.secret;
        this.previous = this.host.ready;

        // What users create lives on data volumes, moved there before the installer writes it.
        const storage = [
            { volume: args.recordingsVolume, resource: name, suffix: "storage", mount: "/mnt/bbb-recordings", directory: "/var/bigbluebutton", service: "bigbluebutton" },
            { volume: args.greenlightVolume, resource: `${name}-greenlight`, suffix: "greenlight-storage", mount: "/mnt/bbb-greenlight", directory: "/root/greenlight-v3", service: "greenlight" },
        ];
        for (const { volume, resource, suffix, mount, directory, service } of storage) {
            if (!volume) continue;
            const data = dataVolume(resource, { host: this.host, size: volume.size, protect: volume.protect }, this);
            this.step(
                suffix,
                "bbb-storage",
                {
                    FQDN: this.host.fqdn,
                    VOLUME_ID: data.volume.id,
                    VOLUME_SIZE: String(volume.size),
                    MOUNT: mount,
                    DIRECTORY: directory,
                    SERVICE: service,
                    FORCE_RESTART: String(args.forceReinstall),
                },
                [data.attachment],
            );
        }
        // Not in the installer's fingerprint (nor in a pool's change, where there is no Greenlight): a new tag
        // recreates Greenlight (bbb-configure), it does not re-run the installer.
        const greenlight: Record<string, string> = args.greenlight ? { GREENLIGHT_VERSION: args.greenlight.version } : {};
        const greenlightLog: Record<string, string> = args.greenlight ? { GREENLIGHT_LOG_LEVEL: args.privacy === "strict" ? "warn" : "info" } : {};
        const installer = {
            FQDN: this.host.fqdn,
            EMAIL: args.email,
            VERSION: args.version,
            INSTALLER_URL: installerUrl(args.installerRef),
            TURN_HOST: args.turn.fqdn,
            TURN_SECRET: args.turn.secret,
            GREENLIGHT: String(args.greenlight !== undefined),
        };
        const properties = Object.entries(bbbProperties({ privacy: args.privacy, recordings: args.recordings.enabled, dialIn: args.dialIn }))
            .map(([key, value]) => `${key}=${value}`)
            .join("\n");
        // Not the version: in a pool, the one place this is used, a new version is refused in place (bbb-installer).
        // Nor the installer's ref, which alone runs nothing there (bbb-installer): in its place the URL of the
        // line's release branch, what earlier versions of this program hashed by default, so that the servers'
        // recorded fingerprints stay valid and none is taken out of service for nothing.
        const branchUrl = installerUrl(BBB_LINES[args.version.slice(0, -1)]?.installerBranch ?? "");
        this.change = pulumi
            .all([{ ...installer, VERSION: "", INSTALLER_URL: branchUrl }, args.secret])
            .apply(([inputs, secret]) => createHash("sha256").update(JSON.stringify([inputs, secret, properties, args.privacy])).digest("hex"));
        const maintenance = args.maintenance?.(this.change);
        if (args.bakeKey) {
            // What the finalise writes before its restart, in a step of its own: a new secret or new properties
            // (bbb-configure's) then run this one again, which does nothing on a finalised server, not the installer's.
            this.step("seed", "bbb-seed", { SECRET: args.secret, PROPERTIES: properties });
        }
        this.installed = this.step(
            "install",
            "bbb-installer",
            {
                ...installer,
                ...greenlight,
                // Not in the fingerprints either: the step checks what the server announces (bbb-installer).
                PUBLIC_IPV4: this.host.ipv4,
                PRIVATE_IPV4: this.host.privateIpv4,
                FORCE_REINSTALL: String(args.forceReinstall),
                UPGRADE_IN_PLACE: String(args.upgradeInPlace),
                TIMEOUT_SECONDS: String(BBB_TIMEOUTS.installer),
                ...(args.bakeKey ? { BAKE_KEY: args.bakeKey } : {}),
            },
            maintenance ? [maintenance] : [],
        );
        // Changes with every installer run, which may rewrite what the later steps set.
        const installId = (this.installId = this.installed.stdin.apply((stdin) => createHash("sha256").update(stdin ?? "").digest("hex")));
        this.step("configure", "bbb-configure", {
            FQDN: this.host.fqdn,
            SECRET: args.secret,
            PROPERTIES: properties,
            API_WAIT_SECONDS: String(BBB_TIMEOUTS.apiWait),
            FORCE_RESTART: String(args.forceReinstall),
            INSTALL_ID: installId,
            ...greenlight,
            ...greenlightLog,
        });
        this.step("data-policy", "bbb-data-policy", {
            FQDN: this.host.fqdn,
            PRIVACY: args.privacy,
            VIDEO: String(args.recordings.video),
            // Published recordings are kept on this server only without Scalelite.
            RETENTION_DAYS: String(args.recordings.enabled && !args.scaleliteRecordings ? args.recordings.retentionDays : 0),
            FORCE_RESTART: String(args.forceReinstall),
            INSTALL_ID: installId,
        });
        this.registerOutputs({});
    }

    /** The steps that need the other servers (dial-in forwarding), once every server of the pool exists. */
    finish(more: FinishArgs): void {
        const { args, host } = this;
        if (more.api) {
            this.step(
                "api-name",
                "bbb-api-name",
                {
                    FQDN: host.fqdn,
                    API_FQDN: more.api.fqdn,
                    EMAIL: args.email,
                    IPV4: host.ipv4,
                    IPV6: host.ipv6 ?? "",
                    RESOLVE_TIMEOUT_SECONDS: String(READY_TIMEOUT_SECONDS),
                    POLL_SECONDS: String(READY_POLL_SECONDS),
                },
                more.api.records,
            );
        }
        if (args.dialIn) {
            this.step("dialin", "bbb-dialin", {
                FQDN: host.fqdn,
                DID: args.dialIn.number.replace(/\D/g, ""),
                GATEWAY_HOST: args.dialIn.gateway.host,
                GATEWAY_USERNAME: args.dialIn.gateway.username,
                GATEWAY_PASSWORD: args.dialIn.gateway.password,
                PIN_DIGITS: String(PIN_DIGITS),
                SIP_PORT: String(SIP_PORT),
                PEERS: pulumi.output(more.dialInPeers).apply((peers) => [...peers].sort().join(" ")),
            });
        }
        if (args.webhooks) {
            this.step("webhooks", "bbb-webhooks", { FQDN: host.fqdn, URLS: args.webhooks.urls.join("\n") });
        }
        if (args.scaleliteRecordings) {
            this.step(
                "recordings",
                "bbb-recordings",
                { NFS_SERVER: args.scaleliteRecordings.nfsServer, SCALELITE_VERSION: args.scaleliteRecordings.scaleliteVersion },
                [args.scaleliteRecordings.exported],
            );
        }
        this.configured = this.previous as command.remote.Command;
    }

    /** A step after the previous one (each may restart services). */
    private step(suffix: string, script: string, inputs: Record<string, pulumi.Input<string>>, extra: pulumi.Resource[] = []) {
        const step = remoteStep(
            `${this.host.name}-${suffix}`,
            { step: script, connection: this.host.connection, inputs, triggers: [this.host.instanceId] },
            { parent: this, dependsOn: [this.previous, ...extra] },
        );
        this.previous = step;
        return step;
    }
}
