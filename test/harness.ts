// Test helpers: the program evaluated under mocks (scripts/offline.ts) in a fresh module registry per run,
// and fixtures.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { evaluateProgram, CloudMock, Run } from "../scripts/offline";

export * from "../scripts/offline";

/** A key pair made for the tests alone (ssh-keygen -t ed25519 -N ""): never a host's. */
export const TEST_PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACCv9zzqsXuYObTuoW3t3IBnHsTvVCwZtg6ouQ7AWvQymgAAAJhSkEXsUpBF\n7AAAAAtzc2gtZWQyNTUxOQAAACCv9zzqsXuYObTuoW3t3IBnHsTvVCwZtg6ouQ7AWvQymg\nAAAEBR1XqVhOpShPuApkHmjM50wWUR/bl9iFn5r54s3ck2Fq/3POqxe5g5tO6hbe3cgGce\nxO9ULBm2Dqi5DsBa9DKaAAAAD29wc0BleGFtcGxlLm9yZwECAwQFBg==\n-----END OPENSSH PRIVATE KEY-----\n";
export const TEST_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK/3POqxe5g5tO6hbe3cgGcexO9ULBm2Dqi5DsBa9DKa ops@example.org";
/** A second test pair: the key rotated. */
export const ROTATED_KEYS = {
    sshPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGnwG5BzhlOhoeh9x8gONcCiSqrZGImFHX0ku7MPAeK2 ops@example.org",
    sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBp8BuQc4ZToaHofcfIDjXAokqq2RiJhR19JLuzDwHitgAAAJhUDSBwVA0g\ncAAAAAtzc2gtZWQyNTUxOQAAACBp8BuQc4ZToaHofcfIDjXAokqq2RiJhR19JLuzDwHitg\nAAAEAnKfm4YbzjkQS/yjLKKo39SrgtIme/6Dr80XLuCsaLTWnwG5BzhlOhoeh9x8gONcCi\nSqrZGImFHX0ku7MPAeK2AAAAD29wc0BleGFtcGxlLm9yZwECAwQFBg==\n-----END OPENSSH PRIVATE KEY-----\n",
};

/** A key pair of ssh-keygen's (OpenSSH's own formats and checks), made in a scratch directory; a later -N in args gives it a passphrase. */
export function keyPair(type: string, ...args: string[]): { publicKey: string; privateKey: string } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keys-"));
    try {
        execFileSync("ssh-keygen", ["-q", "-t", type, "-N", "", ...args, "-C", "ops@example.org", "-f", path.join(dir, "key")]);
        return { publicKey: fs.readFileSync(path.join(dir, "key.pub"), "utf8").trim(), privateKey: fs.readFileSync(path.join(dir, "key"), "utf8") };
    } finally {
        fs.rmSync(dir, { recursive: true });
    }
}

export const BASE_CONFIG: Record<string, unknown> = {
    domain: "example.org",
    letsEncryptEmail: "ops@example.org",
    sshAllowedCidrs: ["198.51.100.0/24", "2001:db8:100::/48"],
    sshPublicKey: TEST_PUBLIC_KEY,
    sshPrivateKey: TEST_PRIVATE_KEY,
    network: { mode: "floating", name: "private", floatingIpPool: "public" },
    dns: { provider: "cloudflare", zoneId: "023e105f4ecef8ad9ca31a8372d0c353" },
};

/** Evaluates index.ts with `config` (pass BASE_CONFIG yourself) in a fresh module registry. */
export async function evaluate(config: Record<string, unknown>, cloud: CloudMock = {}, stack = "dev", secretKeys?: string[]): Promise<Run> {
    let modules!: Parameters<typeof evaluateProgram>[0];
    jest.isolateModules(() => {
        modules = require("../scripts/offline").loadProgram();
    });
    return evaluateProgram(modules, config, cloud, stack, secretKeys);
}

/** The resources of one BBB server of a pool (floating network, Cloudflare): host, steps, secret, registration. */
export function serverResources(host: string): string[] {
    // bbb-1, which may have answered the API name as a single server, has a step that gives it up.
    return ["a", "configure", "data-policy", "fip", "fip-assoc", "install", "maintenance", "port", "ready", "registration", "retire", "secret", "vm", "vm-guard"]
        .concat(host === "bbb-1" ? ["api-name"] : [])
        .map((suffix) => `${host}-${suffix}`)
        .sort();
}
