// Hosts that keep data (Scalelite, Greenlight): a data volume, block storage that outlives the VM (the
// databases and Redis live on it), attached to the host's instance and protected from deletion unless the
// stack says otherwise; and the secrets of a Rails application with its own database.
import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";
import * as random from "@pulumi/random";
import { Host, HostArgs } from "./host";

export interface DataVolumeArgs {
    host: Host;
    /** Size in GB. */
    size: number;
    /** `protect`: pulumi destroy and replacements stop at the volume. */
    protect: boolean;
}

export function dataVolume(name: string, args: DataVolumeArgs, parent: pulumi.Resource) {
    const volume = new openstack.blockstorage.Volume(
        `${name}-data`,
        { size: args.size, description: `${args.host.fqdn}: data (managed by Pulumi)`, enableOnlineResize: true },
        { parent, protect: args.protect },
    );
    const attachment = new openstack.compute.VolumeAttach(
        `${name}-data-attach`,
        { instanceId: args.host.instanceId, volumeId: volume.id },
        // A replaced VM releases the volume before the new one takes it.
        { parent, deleteBeforeReplace: true },
    );
    return { volume, attachment };
}

export interface AppHostArgs {
    host: HostArgs;
    /** Data volume size in GB. */
    dataVolumeSize: number;
    /** Protect the data volume from deletion. */
    protectData: boolean;
}

/** A host with a data volume, a Rails SECRET_KEY_BASE (hex) and a database password, as Pulumi secrets. */
export function appHost(name: string, args: AppHostArgs, parent: pulumi.ComponentResource) {
    const host = new Host(name, args.host, { parent });
    const data = dataVolume(name, { host, size: args.dataVolumeSize, protect: args.protectData }, parent);
    const secretKeyBase = new random.RandomBytes(`${name}-secret-key-base`, { length: 64 }, { parent });
    const dbPassword = new random.RandomPassword(`${name}-db-password`, { length: 32, special: false }, { parent });
    return { host, data, secretKeyBase: pulumi.secret(secretKeyBase.hex), dbPassword: pulumi.secret(dbPassword.result) };
}
