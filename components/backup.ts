// Nightly backups of a host's data (docs/backups.md): restic, encrypted with a password Pulumi generates, to a
// Swift container of the host's own that the stack makes, through an application credential that (by Keystone
// access rules) reaches that container only. The backup-setup step installs restic, the bbb-backup and
// bbb-restore programs and a systemd timer; bbb-backup writes the time of its last complete run for the node
// exporter (bbb_backup_last_success_timestamp_seconds), which the monitoring host alerts on.
import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";
import * as random from "@pulumi/random";
import { BackupSettings, ConfigProblem, Settings } from "./config";
import { Host } from "./host";
import { readScript, remoteStep } from "./remote";
import { topologyOf } from "./names";

/** The hosts whose data is backed up: `bbb` is bbb-1 in the single topology, where bbb-install.sh runs Greenlight. */
export type BackupRole = "scalelite" | "greenlight" | "bbb";

/**
 * What each host backs up (backup-setup.sh's PARTS: `postgres <container> <database>`, `redis <container> <dir>`,
 * `files <dir>`): the containers and directories scalelite-setup.sh and greenlight-setup.sh make, and on bbb-1
 * those of Greenlight's docker-compose.yml that bbb-install.sh runs.
 */
export const BACKUP_PARTS: Record<BackupRole, string[]> = {
    scalelite: ["postgres postgres scalelite", "redis redis /var/lib/bbb-data/redis"],
    greenlight: ["postgres greenlight-postgres greenlight-v3-production", "files /var/lib/bbb-data/greenlight"],
    bbb: ["postgres postgres greenlight-v3-production", "files /root/greenlight-v3/data/greenlight-v3/storage"],
};

/** The hosts that keep a database, by host name, whether backups are on or not. */
export function databaseHosts(s: Pick<Settings, "scalelite" | "greenlight">): Partial<Record<string, BackupRole>> {
    if (topologyOf(s) === "single") return s.greenlight ? { "bbb-1": "bbb" } : {};
    return { scalelite: "scalelite", ...(s.greenlight ? { greenlight: "greenlight" } : {}) };
}

/** The hosts a stack backs up, by host name: none with backups off, or where no host keeps a database. */
export function backupHosts(s: Pick<Settings, "backups" | "scalelite" | "greenlight">): Partial<Record<string, BackupRole>> {
    return s.backups.enabled ? databaseHosts(s) : {};
}

/**
 * The restic password of each host that keeps a database (output backupPasswords), made whether backups are on or
 * not: turning them off keeps the container (retained) and so must keep what reads it, and turning them on again
 * finds the repository it opens.
 */
export function backupPasswords(s: Pick<Settings, "scalelite" | "greenlight">, parent: pulumi.Resource): Record<string, pulumi.Output<string>> {
    return Object.fromEntries(
        Object.keys(databaseHosts(s)).map((host) => [host, pulumi.secret(new random.RandomPassword(`${host}-backup-password`, { length: 40, special: false }, { parent }).result)]),
    );
}

/** Where restic logs in with the application credential: Keystone v3, and the region of the object store; the project's id. */
export interface BackupEndpoint {
    authUrl: string;
    region: string;
    projectId: string;
}

/**
 * The Keystone URL and region from the service catalog of the provider's own login (so clouds.yaml, the
 * environment and provider configuration all work), or the problem when the cloud has no object store.
 */
export async function lookupBackupEndpoint(): Promise<BackupEndpoint | ConfigProblem> {
    const scope = await openstack.identity.getAuthScope({ name: "bbb-backups" });
    const public_ = (type: string) =>
        scope.serviceCatalogs
            .filter((service) => service.type === type)
            .flatMap((service) => service.endpoints)
            .filter((e) => e.interface === "public" && (!scope.region || !e.region || e.region === scope.region))[0];
    const identity = public_("identity");
    const store = public_("object-store");
    if (!store || !identity) {
        return {
            key: "backups.enabled",
            expected: "a cloud with Swift object storage (the backups go to a Swift container)",
            given: `true, and this project's service catalog has no public ${store ? "identity" : "object-store"} endpoint`,
            fix: "pulumi config set --path backups.enabled false  (and back the databases up another way)",
        };
    }
    // restic logs in with an application credential, which only Keystone v3 knows; catalogs list the identity
    // endpoint with or without its version.
    const authUrl = /\/v3\/?$/.test(identity.url) ? identity.url : `${identity.url.replace(/\/+$/, "")}/v3`;
    return { authUrl, region: store.region || scope.region || "", projectId: scope.projectId };
}

export interface BackupArgs {
    host: Host;
    role: BackupRole;
    stack: string;
    settings: BackupSettings;
    /** Where restic logs in: looked up when backups are on. */
    endpoint?: BackupEndpoint;
    /** The step that made the databases: the backup set-up runs after it. */
    after: pulumi.Resource;
    /** The repository's password (backupPasswords): made beside the backups, so that turning them off keeps it. */
    password: pulumi.Output<string>;
}

/**
 * A database host's backups: with backups on, its container, its credential and the backup-setup step; with them
 * off, the same step turning them off on the host (ENABLED false: an update, never a deletion, so that replacing,
 * removing or destroying a host never needs to reach it, dead or not), the container kept by the cloud.
 */
export class Backup extends pulumi.ComponentResource {
    readonly enabled: boolean;
    /** The container's name, e.g. bbb-backups-prod-scalelite. */
    readonly container: string;
    /** restic's repository: `swift:<container>:/`. */
    readonly repository: string;
    readonly setup: pulumi.Resource;

    constructor(name: string, args: BackupArgs, opts?: pulumi.ComponentResourceOptions) {
        super("bbb:backup:Backup", name, {}, opts);
        this.enabled = args.settings.enabled;
        this.container = `bbb-backups-${args.stack}-${args.role}`;
        this.repository = `swift:${this.container}:/`;
        const inputs = args.endpoint && this.enabled ? this.store(name, args, args.endpoint) : { ENABLED: "false", ROLE: args.role, REPOSITORY: this.repository };
        this.setup = remoteStep(
            `${name}-backup`,
            { step: "backup-setup", connection: args.host.connection, inputs, triggers: [args.host.instanceId] },
            { parent: this, dependsOn: [args.host.ready, args.after] },
        );
        this.registerOutputs({});
    }

    /** The container and the credential that reaches it; the step's inputs that back up there. */
    private store(name: string, args: BackupArgs, endpoint: BackupEndpoint): Record<string, pulumi.Input<string>> {
        // Never deleted by Pulumi (backups off, pulumi destroy): the backups outlive the stack; an operator deletes the
        // container by hand (README "Backups"). Not force-destroyed either way.
        const container = new openstack.objectstorage.Container(
            `${name}-backups`,
            { name: this.container, region: endpoint.region || undefined, forceDestroy: false, metadata: { "bbb-stack": args.stack, purpose: "restic backups" } },
            { parent: this, retainOnDelete: true },
        );
        // Keystone access rules: this credential reaches this container alone (restic's requests: HEAD and GET on the
        // container, GET, HEAD, PUT and DELETE on its objects; docs/backups.md section 3). `*` is the account
        // (AUTH_<project>), one path segment; `**` any number.
        const rules = [
            ...["HEAD", "GET"].map((method) => ({ method, path: `/v1/*/${this.container}` })),
            ...["GET", "HEAD", "PUT", "DELETE"].map((method) => ({ method, path: `/v1/*/${this.container}/**` })),
        ].map((rule) => ({ ...rule, service: "object-store" }));
        const credential = new openstack.identity.ApplicationCredential(
            `${name}-backup-credential`,
            {
                // Keystone keeps a user's application credential names unique, across projects
                // (keystone/application_credential/backends/sql.py, duplicate_app_cred_constraint on name and user_id):
                // the project's id in it, and the old one goes before its replacement (any change replaces it) takes it.
                name: `bbb-${args.stack}-${args.role}-backups-${endpoint.projectId.slice(0, 8)}`,
                description: `restic on ${args.host.fqdn}: ${this.container} only (managed by Pulumi)`,
                accessRules: rules,
            },
            { parent: this, dependsOn: [container], deleteBeforeReplace: true },
        );
        return {
            ENABLED: "true",
            ROLE: args.role,
            PARTS: BACKUP_PARTS[args.role].join("\n"),
            REPOSITORY: this.repository,
            OS_AUTH_URL: endpoint.authUrl,
            OS_REGION_NAME: endpoint.region,
            APP_CRED_ID: credential.id,
            APP_CRED_SECRET: pulumi.secret(credential.secret),
            RESTIC_PASSWORD: args.password,
            BACKUP_TIME: args.settings.time,
            KEEP_DAILY: String(args.settings.keepDaily),
            KEEP_WEEKLY: String(args.settings.keepWeekly),
            KEEP_MONTHLY: String(args.settings.keepMonthly),
            BACKUP_PROGRAM: readScript("backup-run"),
            RESTORE_PROGRAM: readScript("backup-restore"),
        };
    }
}
