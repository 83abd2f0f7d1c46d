// Test helpers: the program evaluated under mocks (scripts/offline.ts) in a fresh module registry per run,
// and fixtures.
import { evaluateProgram, CloudMock, Run } from "../scripts/offline";

export * from "../scripts/offline";

/** A private key of the right shape (never a real one). */
export const TEST_PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-test-only\n-----END OPENSSH PRIVATE KEY-----\n";

export const BASE_CONFIG: Record<string, unknown> = {
    domain: "example.org",
    letsEncryptEmail: "ops@example.org",
    sshAllowedCidrs: ["198.51.100.0/24", "2001:db8:100::/48"],
    sshPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB6Yp3pQ7nHc5oQ3lQe8Y5jv1mN0w2kq6d0hTqX9c6sZ ops@example.org",
    sshPrivateKey: TEST_PRIVATE_KEY,
    network: { mode: "floating", name: "private", floatingIpPool: "public" },
    dns: { provider: "cloudflare", zoneId: "023e105f4ecef8ad9ca31a8372d0c353" },
};

/** Evaluates index.ts with `config` (pass BASE_CONFIG yourself) in a fresh module registry. */
export async function evaluate(config: Record<string, unknown>, cloud: CloudMock = {}, stack = "dev"): Promise<Run> {
    let modules!: Parameters<typeof evaluateProgram>[0];
    jest.isolateModules(() => {
        modules = require("../scripts/offline").loadProgram();
    });
    return evaluateProgram(modules, config, cloud, stack);
}

/** The resources of one BBB server of a pool (floating network, Cloudflare): host, steps, secret, registration. */
export function serverResources(host: string): string[] {
    // bbb-1, which may have answered the API name as a single server, has a step that gives it up.
    return ["a", "configure", "data-policy", "fip", "fip-assoc", "install", "maintenance", "port", "ready", "registration", "retire", "secret", "vm", "vm-guard"]
        .concat(host === "bbb-1" ? ["api-name"] : [])
        .map((suffix) => `${host}-${suffix}`)
        .sort();
}
