// Which hosts a topology has, and what they are called.
import { Role } from "./config";

export type Topology = "single" | "pool";

export interface HostSpec {
    /** Stable short name: turn, bbb-1 .. bbb-N, scalelite, greenlight. */
    name: string;
    role: Role;
}

export interface TopologyInputs {
    poolSize: number;
    scalelite: boolean;
    greenlight: boolean;
}

export function topologyOf(inputs: TopologyInputs): Topology {
    return inputs.scalelite ? "pool" : "single";
}

export function bbbNodeName(index: number): string {
    return `bbb-${index}`;
}

/**
 * The hosts of a topology. Single: turn and bbb-1 (Greenlight, when on, runs on bbb-1).
 * Pool: turn, scalelite, bbb-1 .. bbb-N and greenlight when on.
 */
export function hostSpecs(inputs: TopologyInputs): HostSpec[] {
    const nodes: HostSpec[] = Array.from({ length: inputs.poolSize }, (_, i) => ({ name: bbbNodeName(i + 1), role: "bbb" }));
    if (topologyOf(inputs) === "single") return [{ name: "turn", role: "turn" }, ...nodes];
    return [
        { name: "turn", role: "turn" },
        { name: "scalelite", role: "scalelite" },
        ...nodes,
        ...(inputs.greenlight ? [{ name: "greenlight", role: "greenlight" as const }] : []),
    ];
}

export function fqdn(host: string, prefix: string, domain: string): string {
    return `${prefix}${host}.${domain}`;
}

/** The roles a topology has hosts for, in host order. */
export function rolesOf(inputs: TopologyInputs): Role[] {
    return [...new Set(hostSpecs(inputs).map((h) => h.role))];
}
