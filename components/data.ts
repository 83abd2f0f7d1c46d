// A data volume of a host: block storage that outlives the VM (databases and Redis live on it), attached to
// the host's instance, protected from deletion unless the stack says otherwise.
import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";
import { Host } from "./host";

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
