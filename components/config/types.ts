// The names every part of the program shares: the project, the hosts' roles and a port range. A leaf module,
// so that names.ts and ports.ts can use them without importing the configuration (which imports them).

export const PROJECT = "bbb";

export type Role = "turn" | "bbb" | "scalelite" | "greenlight" | "monitoring" | "streaming";
export const ROLES: readonly Role[] = ["turn", "bbb", "scalelite", "greenlight", "monitoring", "streaming"];

/** Roles that keep data on a volume of their own: databases and Redis, or bbb's recordings (single topology). */
export type DataRole = "bbb" | "scalelite" | "greenlight";
export const DATA_ROLES: readonly DataRole[] = ["bbb", "scalelite", "greenlight"];

export interface PortRange {
    from: number;
    to: number;
}
