// What the program must learn from the cloud before it declares anything: the network (and whether it
// gives hosts a routable IPv6 address), the image id for boot volumes, and that each flavor exists and is
// big enough. Every problem is reported together, like configuration problems.
import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";
import { ConfigError, ConfigProblem, Role, Settings } from "./config";
import { isRoutableIpv6 } from "./addresses";
import { BackupEndpoint, backupHosts, lookupBackupEndpoint } from "./backup";

/** Smallest flavor each role runs on; BBB's numbers are bbb-install.sh's own refusal limits. */
export const FLAVOR_MINIMUMS: Record<Role, { vcpus: number; ramMb: number; recommended?: { vcpus: number; ramMb: number } }> = {
    turn: { vcpus: 1, ramMb: 1024, recommended: { vcpus: 2, ramMb: 2048 } },
    bbb: { vcpus: 4, ramMb: 4096, recommended: { vcpus: 8, ramMb: 16384 } },
    scalelite: { vcpus: 2, ramMb: 4096, recommended: { vcpus: 4, ramMb: 8192 } },
    greenlight: { vcpus: 2, ramMb: 2048, recommended: { vcpus: 2, ramMb: 4096 } },
    monitoring: { vcpus: 1, ramMb: 2048, recommended: { vcpus: 2, ramMb: 4096 } },
    // One worker's share (THM BBB-Streaming-Server README v1.1.1, "Requirements": 2 CPUs and 2 GB a stream);
    // `streaming.workers` scales it (streamingNeeds).
    streaming: { vcpus: 2, ramMb: 4096, recommended: { vcpus: 4, ramMb: 8192 } },
};

/**
 * What `workers` concurrent streams need: at least one vCPU each (Chrome and x264 at 1080p30 fall behind on less),
 * and BSS's recommended 2 vCPUs and 2 GB each, plus 2 GB for nginx, Redis and the system.
 */
export function streamingNeeds(workers: number): { vcpus: number; ramMb: number; recommended: { vcpus: number; ramMb: number } } {
    return { vcpus: Math.max(FLAVOR_MINIMUMS.streaming.vcpus, workers), ramMb: Math.max(FLAVOR_MINIMUMS.streaming.ramMb, 1024 * workers + 2048), recommended: { vcpus: 2 * workers, ramMb: 2048 * workers + 2048 } };
}

export interface CloudFacts {
    networkId: string;
    /** The network has a globally routable IPv6 subnet, so every port gets an address for an AAAA record. */
    hasIpv6: boolean;
    /** The network's IPv4 subnets (e.g. Scalelite's NFS share is exported to them). */
    ipv4Cidrs: string[];
    /** Glance image id by image name: `image`'s, and during a rolling upgrade `upgrade.from.image`'s. */
    imageIds: Record<string, string>;
    /** Where the hosts' restic logs in, when a host is backed up. */
    backupEndpoint?: BackupEndpoint;
}

const reason = (err: unknown) => (err instanceof Error ? err.message : String(err)).split("\n")[0];

export async function lookupCloud(settings: Settings, roles: readonly Role[]): Promise<CloudFacts> {
    const problems: ConfigProblem[] = [];
    const network = openstack.networking.getNetwork({ name: settings.network.name }).catch((err) => {
        problems.push({
            key: "network.name",
            expected: "the name of an existing network in this OpenStack project",
            given: `${JSON.stringify(settings.network.name)} (${reason(err)})`,
            fix: "openstack network list, then: pulumi config set --path network.name <name>",
        });
        return undefined;
    });
    const pool =
        settings.network.mode === "floating"
            ? openstack.networking.getNetwork({ name: settings.network.floatingIpPool, external: true }).catch((err) => {
                  problems.push({
                      key: "network.floatingIpPool",
                      expected: "the name of an external network floating IPs come from",
                      given: `${JSON.stringify(settings.network.floatingIpPool)} (${reason(err)})`,
                      fix: "openstack network list --external, then: pulumi config set --path network.floatingIpPool <name>",
                  });
              })
            : Promise.resolve();
    // Every image a server is built from: `image`, and during a rolling upgrade the one before.
    const imageKeys: Record<string, string> = { [settings.image]: "image" };
    if (settings.upgrade && !(settings.upgrade.from.image in imageKeys)) imageKeys[settings.upgrade.from.image] = "upgrade.from.image";
    const images = Object.entries(imageKeys).map(([name, key]) =>
        openstack.images
            .getImage({ name, mostRecent: true })
            .then((img): [string, string] => [name, img.id])
            .catch((err) => {
                problems.push({
                    key,
                    expected: "the name of an image visible to this project",
                    given: `${JSON.stringify(name)} (${reason(err)})`,
                    fix: `openstack image list, then: pulumi config set${key === "image" ? "" : " --path"} ${key} '<name>'`,
                });
                return undefined;
            }),
    );
    const flavors = roles.map(async (role) => {
        const name = settings.flavors[role];
        const fix = `openstack flavor list, then: pulumi config set --path flavors.${role} <name>${role === "streaming" ? "  (or fewer streams: pulumi config set --path streaming.workers <n>)" : ""}`;
        const min = role === "streaming" ? streamingNeeds(settings.streaming.workers) : FLAVOR_MINIMUMS[role];
        const forWhat = role === "streaming" ? `${settings.streaming.workers} streams (streaming.workers)` : role;
        try {
            const flavor = await openstack.compute.getFlavor({ name });
            const vcpus = flavor.vcpus ?? 0;
            const ram = flavor.ram ?? 0;
            if (vcpus < min.vcpus || ram < min.ramMb) {
                problems.push({
                    key: `flavors.${role}`,
                    expected: `a flavor with at least ${min.vcpus} vCPUs and ${min.ramMb} MB RAM for ${forWhat}`,
                    given: `${JSON.stringify(name)} with ${vcpus} vCPUs and ${ram} MB`,
                    fix,
                });
            } else if (min.recommended && (vcpus < min.recommended.vcpus || ram < min.recommended.ramMb)) {
                pulumi.log.warn(
                    `flavors.${role}: ${name} (${vcpus} vCPUs, ${ram} MB) is below the recommended ` +
                        `${min.recommended.vcpus} vCPUs and ${min.recommended.ramMb} MB for production${role === "streaming" ? ` (${forWhat})` : ""}`,
                );
            }
        } catch (err) {
            problems.push({ key: `flavors.${role}`, expected: "the name of an existing flavor", given: `${JSON.stringify(name)} (${reason(err)})`, fix });
        }
    });

    const backups =
        Object.keys(backupHosts(settings)).length === 0
            ? Promise.resolve(undefined)
            : lookupBackupEndpoint()
                  .then((found) => {
                      if (!("key" in found)) return found;
                      problems.push(found);
                      return undefined;
                  })
                  .catch((err) => {
                      problems.push({
                          key: "backups.enabled",
                          expected: "a cloud whose service catalog the provider can read (the backups go to its Swift object storage)",
                          given: `true (${reason(err)})`,
                          fix: "pulumi config set --path backups.enabled false  (and back the databases up another way)",
                      });
                      return undefined;
                  });

    const [net, , imageIds, backupEndpoint] = await Promise.all([network, pool, Promise.all(images), backups, ...flavors]);
    let hasIpv6 = false;
    let ipv4Cidrs: string[] = [];
    if (net) {
        const subnets = await Promise.all(net.subnets.map((subnetId) => openstack.networking.getSubnet({ subnetId })));
        hasIpv6 = subnets.some((s) => s.ipVersion === 6 && isRoutableIpv6(s.cidr.split("/")[0]));
        ipv4Cidrs = subnets.filter((s) => s.ipVersion === 4).map((s) => s.cidr);
    }
    if (problems.length > 0 || !net) throw new ConfigError(problems);
    return { networkId: net.id, hasIpv6, ipv4Cidrs, imageIds: Object.fromEntries(imageIds as [string, string][]), ...(backupEndpoint ? { backupEndpoint } : {}) };
}
