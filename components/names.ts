// Which hosts a topology has, and what they are called.
import { Role } from "./config/types";

export type Topology = "single" | "pool";

/** What a BBB server is built from; a pool's servers carry the release number in their names from 2 on. */
export interface BbbRelease {
    number: number;
    bbbVersion: string;
    image: string;
    /** Git ref of bbb-install.sh. */
    installerRef: string;
}

export interface HostSpec {
    /** Stable short name: turn, scalelite, greenlight; bbb-1 .. bbb-N, with -r<release> from release 2 on. */
    name: string;
    role: Role;
    /** bbb: the server's place in the pool (bbb-1 .. bbb-N), whatever its release. */
    slot?: string;
    /** bbb: the release it runs. */
    release?: BbbRelease;
}

export interface TopologyInputs {
    poolSize: number;
    scalelite: boolean;
    greenlight: boolean;
    /** A monitoring host, in either topology. */
    monitoring?: boolean;
    /** A streaming host, in either topology. */
    streaming?: { enabled: boolean };
    bbbRelease: number;
    bbbVersion: string;
    image: string;
    bbbInstallerRef: string;
    /** A rolling upgrade: bbb-1 .. bbb-<servers> run bbbRelease, the others the release before, `from`. */
    upgrade?: { servers: number; from: Omit<BbbRelease, "number"> };
}

export function topologyOf(inputs: Pick<TopologyInputs, "scalelite">): Topology {
    return inputs.scalelite ? "pool" : "single";
}

function bbbNodeName(index: number): string {
    return `bbb-${index}`;
}

/** bbb-2 for release 1, bbb-2-r3 for release 3: a new release gets new names, so it can run beside the old. */
export function bbbHostName(index: number, release: number): string {
    return release > 1 ? `${bbbNodeName(index)}-r${release}` : bbbNodeName(index);
}

/** The release server `index` runs: bbbRelease, or during a rolling upgrade the one before for the servers not yet upgraded. */
export function releaseOf(inputs: TopologyInputs, index: number): BbbRelease {
    const { upgrade } = inputs;
    if (upgrade && index > upgrade.servers) return { number: inputs.bbbRelease - 1, ...upgrade.from };
    return { number: inputs.bbbRelease, bbbVersion: inputs.bbbVersion, image: inputs.image, installerRef: inputs.bbbInstallerRef };
}

/**
 * The hosts of a topology. Single: turn and bbb-1 (Greenlight, when on, runs on bbb-1).
 * Pool: turn, scalelite, the BBB servers and greenlight when on. Either: then streaming and monitoring, when on.
 */
export function hostSpecs(inputs: TopologyInputs): HostSpec[] {
    const nodes: HostSpec[] = Array.from({ length: inputs.poolSize }, (_, i) => {
        const release = releaseOf(inputs, i + 1);
        return { name: bbbHostName(i + 1, release.number), role: "bbb", slot: bbbNodeName(i + 1), release };
    });
    const extras: HostSpec[] = [
        ...(inputs.streaming?.enabled ? [{ name: "streaming", role: "streaming" as const }] : []),
        ...(inputs.monitoring ? [{ name: "monitoring", role: "monitoring" as const }] : []),
    ];
    if (topologyOf(inputs) === "single") return [{ name: "turn", role: "turn" }, ...nodes, ...extras];
    return [
        { name: "turn", role: "turn" },
        { name: "scalelite", role: "scalelite" },
        ...nodes,
        ...(inputs.greenlight ? [{ name: "greenlight", role: "greenlight" as const }] : []),
        ...extras,
    ];
}

/** The stack where BBB servers and data volumes are protected unless allowDestructiveChanges (policy/ too). */
export const PROD_STACK = "prod";

export function fqdn(host: string, prefix: string, domain: string): string {
    return `${prefix}${host}.${domain}`;
}

/** The roles a topology has hosts for, in host order. */
export function rolesOf(inputs: TopologyInputs): Role[] {
    return [...new Set(hostSpecs(inputs).map((h) => h.role))];
}
