// Baked BBB servers (pool topology, setting `bake`): BigBlueButton's packages installed once per bake key into a
// golden Cinder volume, which new servers boot from as clones of their own (docs/bake.md says why: the
// OpenStack provider makes neither Glance images from volumes nor snapshots, and Cinder clones a volume in seconds
// on Ceph).
//
// A bake, in the `pulumi up` that first needs it: a builder VM boots from a volume of the base image, runs
// bbb-bake (the pinned installer with a placeholder name, then every host identity scrubbed) and powers itself
// off; once Nova reports it off, the golden volume is cloned from the builder's disk, and the servers from the
// golden volume. The next `pulumi up` no longer declares the builder, so Pulumi deletes it (VM, port, address,
// disk). A failed bake leaves no golden volume (the step records nothing, the clone is never asked for), and
// the next `pulumi up` goes on with the same builder.
//
// Which golden volume a server boots from is fixed when it is created: the stack exports it (`baking`), and the
// next run reads it back (readBaking), so that a server keeps its golden volume, and that volume is kept, whatever
// the current inputs are, until the server is gone. Servers that existed before baking keep their image disks.
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";
import { BAKE_VOLUME_GB } from "./config/schema";
import { Host, HostArgs } from "./host";
import { remoteStep, SCRIPTS_DIR } from "./remote";

/** What a golden volume is made of: the inputs of a bake. */
export interface BakeSpec {
    bbbVersion: string;
    /** Git ref of bbb-install.sh. */
    installerRef: string;
    /** The base image's Glance id (a rotated image behind the same name is another input) and name. */
    imageId: string;
    imageName: string;
}

/** What the stack exports of its bakes, and reads back in its next run. */
export interface Baking {
    /** Each BBB server's boot: the key of the golden volume it was cloned from, or "image" (not baked). */
    servers: Record<string, string>;
    /** Every golden volume the stack keeps, by key. */
    goldens: Record<string, BakeSpec>;
}

export const IMAGE_BOOT = "image";
export const BAKE_STEP = "bbb-bake";

/** How long the program waits for a builder to power itself off after its bake, and how often it asks Nova. */
export const POWER_OFF = { timeoutSeconds: 900, pollSeconds: 10 };

/** The bake's own script: a new version of it bakes again. */
const bakeScriptHash = () => createHash("sha256").update(fs.readFileSync(path.join(SCRIPTS_DIR, `${BAKE_STEP}.sh`))).digest("hex");

/** The key of a bake: a hash of what goes into the golden volume. */
export function bakeKey(spec: BakeSpec): string {
    return createHash("sha256")
        .update(JSON.stringify([spec.bbbVersion, spec.installerRef, spec.imageId, BAKE_VOLUME_GB, bakeScriptHash()]))
        .digest("hex");
}

/** The golden volume's name, after what it holds: bbb-bake-jammy-300-26ce2d16-<image id>-<key>. */
export function goldenName(key: string, spec: BakeSpec): string {
    const part = (text: string) => text.replace(/[^A-Za-z0-9]+/g, "").slice(0, 8);
    return `bbb-bake-${spec.bbbVersion}-${part(spec.installerRef)}-${part(spec.imageId)}-${key.slice(0, 8)}`;
}

/**
 * The stack's own last exported `baking` and `hosts` (a StackReference to itself: Pulumi reads the outputs of
 * its last successful update; a stack never updated has none). The BBB servers in `hosts` but not in `baking`
 * were created before baking existed: they booted from the image.
 */
export async function readBaking(stack: string): Promise<Baking> {
    const self = new pulumi.StackReference("self", { name: `${pulumi.getOrganization()}/${pulumi.getProject()}/${stack}` });
    const [baking, hosts] = await Promise.all([self.getOutputDetails("baking"), self.getOutputDetails("hosts")]);
    const recorded = (baking.value ?? { servers: {}, goldens: {} }) as Baking;
    const before = ((hosts.value ?? []) as { name: string; role: string }[]).filter((h) => h.role === "bbb" && !(h.name in recorded.servers));
    return { servers: { ...Object.fromEntries(before.map((h) => [h.name, IMAGE_BOOT])), ...recorded.servers }, goldens: recorded.goldens };
}

export interface GoldenArgs {
    key: string;
    spec: BakeSpec;
    /** The golden volume exists (the stack exported it after an update): no builder. */
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
        let source: pulumi.Input<string> | undefined;
        if (!args.baked) {
            const builder = new Host(
                `${name}-builder`,
                {
                    ...args.builder,
                    fqdn: `${volumeName}-builder`,
                    protect: false,
                    sizedAtCreation: false,
                    volumeSize: BAKE_VOLUME_GB,
                    boot: { volume: { imageId: args.spec.imageId, metadata: { "bbb-bake": args.key, purpose: "builder" } } },
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
            // power-off and returns; Nova then sees the guest stop. Not in a preview, where the step has not run.
            const off = pulumi.all([bake.stdout, builder.instanceId]).apply(([, id]) => poweredOff(id));
            source = pulumi.all([builder.bootVolume!.id, off]).apply(([id]) => id);
        }
        this.volume = new openstack.blockstorage.Volume(
            name,
            {
                name: volumeName,
                description: `BigBlueButton ${args.spec.bbbVersion}, bbb-install.sh ${args.spec.installerRef}, on ${args.spec.imageName} (${args.spec.imageId}); no host identity`,
                size: BAKE_VOLUME_GB,
                sourceVolId: source,
                metadata: { "bbb-bake": args.key, bbbVersion: args.spec.bbbVersion, installerRef: args.spec.installerRef, baseImageId: args.spec.imageId },
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
