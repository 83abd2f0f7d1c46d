// Baked BBB servers (pool topology, setting `bake`): BigBlueButton's packages installed once per bake key into a
// golden Cinder volume, which new servers boot from as clones of their own (docs/bake.md says why: the
// OpenStack provider makes neither Glance images from volumes nor snapshots, and Cinder clones a volume in seconds
// on Ceph).
//
// A bake, in the `pulumi up` that first needs it: a builder VM boots from a volume of the base image, runs
// bbb-bake (the pinned installer with a placeholder name, then every host identity scrubbed) and powers itself
// off; once Nova reports it off, the golden volume is cloned from the builder's disk, and the servers from the
// golden volume. The next `pulumi up` no longer declares the builder, so Pulumi deletes it (VM, port, address);
// its disk goes with the golden volume. A failed bake leaves no golden volume (the step records nothing, the
// clone is never asked for), and the next `pulumi up` goes on with the same builder.
//
// Which golden volume a server boots from is fixed when it is created, and read from the cloud at every run
// (lookupBaking): its boot volume, named after the server, says which bake it was cloned from, so the server keeps
// its golden volume, and that volume is kept, whatever the current inputs are, until the server is gone. A golden
// volume (the stack's) counts as made once Cinder has it in any state but being made, failed or going: a failed
// bake is finished by the next run. Servers that existed before baking (a VM on their port, no boot volume of
// their own) keep their image disks.
import { createHash } from "crypto";
import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";
import { BAKE_VOLUME_GB } from "./config/schema";
import { Host, HostArgs, portDescription } from "./host";
import { readScript, remoteStep } from "./remote";

/** What a golden volume is made of: the inputs of a bake. */
export interface BakeSpec {
    bbbVersion: string;
    /** Git ref of bbb-install.sh. */
    installerRef: string;
    /** The base image's Glance id (a rotated image behind the same name is another input) and name. */
    imageId: string;
    imageName: string;
}

/** What a stack's bakes are: found in the cloud before anything is declared, and what the run then declares (exported as `baking`). */
export interface Baking {
    /** Each BBB server's boot: the key of the golden volume it was cloned from, or "image" (not baked). */
    servers: Record<string, string>;
    /** Golden volumes by key. */
    goldens: Record<string, BakeSpec>;
}

export const IMAGE_BOOT = "image";

/** What a stack found of its bakes in the cloud (lookupBaking). */
export interface FoundBakes {
    /** Each existing BBB server's boot: the key of its golden volume, or "image"; new servers are absent. */
    servers: Record<string, string>;
    /** The stack's golden volumes Cinder has, by key, and whether each is made (not being made, failed or going). */
    goldens: Record<string, { spec: BakeSpec; made: boolean }>;
}

/** The metadata key of a bake's volumes (golden volume, builder's disk, a server's clone): its bake key. */
const BAKE_KEY_METADATA = "bbb-bake";
export const bootMetadata = (key: string): Record<string, string> => ({ [BAKE_KEY_METADATA]: key });
const BAKE_STEP = "bbb-bake";

/** How long the program waits for a builder to power itself off after its bake, and how often it asks Nova. */
export const POWER_OFF = { timeoutSeconds: 900, pollSeconds: 10 };

/** What the builder runs: the bake's script and lib.sh, sent ahead of it. A new version of either bakes again. */
export const bakeScripts = () => ["lib", BAKE_STEP].map(readScript).join("\n");

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
let ownScriptsHash: string | undefined;

/** The key of a bake: a hash of what goes into the golden volume (`scripts`: the builder's, this program's by default). */
export function bakeKey(spec: BakeSpec, scripts?: string): string {
    const scriptsHash = scripts === undefined ? (ownScriptsHash ??= sha256(bakeScripts())) : sha256(scripts);
    return sha256(JSON.stringify([spec.bbbVersion, spec.installerRef, spec.imageId, BAKE_VOLUME_GB, scriptsHash]));
}

/** The golden volume's name, after what it holds: bbb-bake-jammy-300-26ce2d16-<image id>-<key>. */
function goldenName(key: string, spec: BakeSpec): string {
    const part = (text: string) => text.replace(/[^A-Za-z0-9]+/g, "").slice(0, 8);
    return `bbb-bake-${spec.bbbVersion}-${part(spec.installerRef)}-${part(spec.imageId)}-${key.slice(0, 8)}`;
}

/** What finds a stack's golden volume of a key in Cinder (dev and prod may share a project, and bake the same key). */
function goldenFilter(key: string, stack: string): Record<string, string> {
    return { ...bootMetadata(key), "bbb-stack": stack, purpose: "golden" };
}

/** The Cinder metadata of a golden volume: what it holds, and what finds it. */
function goldenMetadata(key: string, spec: BakeSpec, stack: string): Record<string, string> {
    return { ...goldenFilter(key, stack), bbbVersion: spec.bbbVersion, installerRef: spec.installerRef, baseImageId: spec.imageId, baseImageName: spec.imageName };
}

/** The provider's answers when a data source finds nothing, or more than one (terraform-provider-openstack v1.54.1). */
const NOTHING_FOUND = /query returned no results|No openstack_networking_port_v2 found/;
const MANY_FOUND = /query returned multiple results|More than one openstack_networking_port_v2 found/;

/** The provider's own words in an error the engine and the bridge wrapped ("invocation of …: 1 error occurred:\n\t* …"). */
function providerReason(message: string): string {
    const lines = message.split("\n").map((line) => line.replace(/^\s*\*\s*/, "").trim());
    return lines.filter(Boolean).pop() ?? message;
}

/**
 * One volume of the cloud, or none. More than one: the first status of `statuses` that leaves exactly one (a boot
 * volume replaced create-before-delete whose old one is still attached: in-use), else a problem to report.
 */
async function oneVolume(args: openstack.blockstorage.GetVolumeV3Args, what: string, statuses: string[] = []): Promise<openstack.blockstorage.GetVolumeV3Result | undefined> {
    try {
        return await openstack.blockstorage.getVolumeV3(args);
    } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        if (NOTHING_FOUND.test(message)) return undefined;
        if (MANY_FOUND.test(message) && statuses.length > 0) {
            const [status, ...rest] = statuses;
            const one = await oneVolume({ ...args, status }, what, rest);
            if (one) return one;
        }
        throw new Error(`${what}: ${providerReason(message)} (openstack volume list --long: a volume this stack does not hold in its state can be deleted)`);
    }
}

/** Cinder statuses of a golden volume that is not made: being made, failed, or going. */
const NOT_MADE = /^(creating|downloading|error.*|deleting)$/;

/**
 * What the cloud holds of a pool's bakes, for its BBB servers (name, fqdn) and the golden volumes `wanted` (by key):
 * each server's boot volume (named after it) with the key it was cloned from, or, for a server with a VM on its port
 * but no boot volume of its own, "image" (created before baking, or without it); any other server is new (absent).
 * The stack's golden volumes Cinder has, by key, and whether each is made (any status but being made, failed or
 * going: one being backed up is made): those of the servers, and those wanted.
 */
export async function lookupBaking(
    stack: string,
    servers: { name: string; fqdn: string }[],
    networkId: string,
    wanted: string[],
): Promise<FoundBakes> {
    const boots = await Promise.all(
        servers.map(async ({ name, fqdn }): Promise<[string, string | undefined]> => {
            const boot = await oneVolume({ name: fqdn }, `the boot volume of ${name}`, ["in-use", "available"]);
            const key = boot?.metadata?.[BAKE_KEY_METADATA];
            if (key) return [name, key];
            // A VM on the server's port (its device): the server runs, from the image. A port alone is left by an
            // update that failed before the VM (a new server, still to be made as such).
            const inUse = await openstack.networking
                .getPort({ networkId, description: portDescription(fqdn) })
                .then(
                    (port) => port.deviceId !== "",
                    // More than one: the port is there (twice, e.g. a stack's and a copy's).
                    (err: Error) => (NOTHING_FOUND.test(err.message) ? false : /More than one openstack_networking_port_v2/.test(err.message) || Promise.reject(err)),
                );
            return [name, inUse ? IMAGE_BOOT : undefined];
        }),
    );
    const found = Object.fromEntries(boots.filter((b): b is [string, string] => b[1] !== undefined));
    const keys = [...new Set([...Object.values(found), ...wanted])].filter((k) => k !== IMAGE_BOOT);
    const goldens = await Promise.all(
        keys.map(async (key): Promise<[string, { spec: BakeSpec; made: boolean } | undefined]> => {
            const volume = await oneVolume({ metadata: goldenFilter(key, stack) }, `the golden volume ${key.slice(0, 12)}`, ["available"]);
            if (!volume) return [key, undefined];
            const m = volume.metadata;
            return [key, { spec: { bbbVersion: m.bbbVersion, installerRef: m.installerRef, imageId: m.baseImageId, imageName: m.baseImageName }, made: !NOT_MADE.test(volume.status) }];
        }),
    );
    return { servers: found, goldens: Object.fromEntries(goldens.filter((g): g is [string, FoundBakes["goldens"][string]] => g[1] !== undefined)) };
}

export interface GoldenArgs {
    key: string;
    /** The stack's name: in the golden volume's metadata, which finds it. */
    stack: string;
    spec: BakeSpec;
    /** The golden volume is made, or a server's already (Cinder has it in any state): no builder. */
    baked: boolean;
    /** A BBB server's host: the builder is one but for its name, disk and protection (a bake has no DNS name). */
    builder: HostArgs;
    /** bbb-install.sh's URL for the spec's ref. */
    installerUrl: string;
    timeoutSeconds: number;
}

/** A golden volume, and while it is not made yet, its builder. */
export class Golden extends pulumi.ComponentResource {
    readonly volume: openstack.blockstorage.Volume;

    constructor(name: string, args: GoldenArgs, opts?: pulumi.ComponentResourceOptions) {
        super("bbb:bake:Golden", name, {}, opts);
        const volumeName = goldenName(args.key, args.spec);
        // The builder's disk, made from the base image, stays as long as the golden volume cloned from it: some Cinder
        // back ends refuse to delete a volume that has clones, and Pulumi deletes the golden volume (its dependent)
        // first. On Ceph the golden volume's blocks are the disk's anyway.
        const disk = new openstack.blockstorage.Volume(
            `${name}-disk`,
            {
                name: `${volumeName}-builder`,
                description: `${volumeName}: the bake's builder's disk, the golden volume's source (managed by Pulumi)`,
                size: BAKE_VOLUME_GB,
                imageId: args.spec.imageId,
                metadata: { ...bootMetadata(args.key), "bbb-stack": args.stack, purpose: "builder" },
            },
            { parent: this },
        );
        let source: pulumi.Input<string> = disk.id;
        if (!args.baked) {
            const builder = new Host(
                `${name}-builder`,
                {
                    ...args.builder,
                    fqdn: `${volumeName}-builder`,
                    protect: false,
                    sizedAtCreation: false,
                    boot: { disk },
                    builder: true,
                },
                { parent: this },
            );
            const bake = remoteStep(
                `${name}-builder-bake`,
                {
                    step: BAKE_STEP,
                    connection: builder.connection,
                    inputs: {
                        BAKE_NAME: volumeName,
                        BAKE_KEY: args.key,
                        VERSION: args.spec.bbbVersion,
                        INSTALLER_URL: args.installerUrl,
                        PUBLIC_IPV4: builder.ipv4,
                        PRIVATE_IPV4: builder.privateIpv4,
                        TIMEOUT_SECONDS: String(args.timeoutSeconds),
                    },
                    triggers: [builder.instanceId],
                },
                { parent: this, dependsOn: [builder.ready] },
            );
            // The disk is cloned once the builder is off (its filesystem then is quiet): the step schedules the
            // power-off and returns; Nova then sees the guest stop. Not in a preview, which clones nothing (and
            // where the step's output is known when the step ran before: no waiting there).
            const off = pulumi.all([bake.stdout, builder.instanceId]).apply(([, id]) => (pulumi.runtime.isDryRun() ? id : poweredOff(id)));
            source = pulumi.all([disk.id, off]).apply(([id]) => id);
        }
        this.volume = new openstack.blockstorage.Volume(
            name,
            {
                name: volumeName,
                description: `BigBlueButton ${args.spec.bbbVersion}, bbb-install.sh ${args.spec.installerRef}, on ${args.spec.imageName} (${args.spec.imageId}); no host identity`,
                size: BAKE_VOLUME_GB,
                sourceVolId: source,
                metadata: goldenMetadata(args.key, args.spec, args.stack),
            },
            // Once made, it stays what it is: its builder's disk goes, and its clones depend on it.
            { parent: this, ignoreChanges: ["sourceVolId"], customTimeouts: { create: "60m" } },
        );
        this.registerOutputs({});
    }
}

/** Waits until Nova reports the instance powered off (`shutoff`); fails with what it last saw after POWER_OFF.timeoutSeconds. */
export async function poweredOff(id: string): Promise<string> {
    const deadline = Date.now() + POWER_OFF.timeoutSeconds * 1000;
    for (;;) {
        const { powerState } = await openstack.compute.getInstanceV2({ id });
        if (powerState === "shutoff") return id;
        if (Date.now() >= deadline) {
            throw new Error(
                `the bake's builder ${id} is still ${powerState} ${POWER_OFF.timeoutSeconds}s after its bake; it powers itself off when ` +
                    "the bake is done (see: openstack console log show " + id + "). The next pulumi up waits for it again.",
            );
        }
        await new Promise((resolve) => setTimeout(resolve, POWER_OFF.pollSeconds * 1000));
    }
}
