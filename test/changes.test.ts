// The README's table "Every setting: what changing it does to meetings and data": one row per config key,
// and its impact column is what `npm run impact` says (assessImpact, offline as the command evaluates) for the
// change below made to the prod stack file; "refused" where the configuration check refuses it.
import * as fs from "fs";
import * as path from "path";
import { CONFIG_KEYS } from "../components/config";
import { assessImpact } from "../scripts/impact";
import { evaluateProgram, inventoryOf, PLACEHOLDER_PRIVATE_KEY, ProgramModules, Run, stackConfig } from "./harness";

const ROOT = path.join(__dirname, "..");
const PROD = stackConfig(ROOT, "prod")!;

/** The change the README's row describes, per key. */
const CHANGES: Record<string, unknown> = {
    domain: "example.net",
    hostnamePrefix: "prod-",
    apiHostname: "meet",
    allowDestructiveChanges: true,
    letsEncryptEmail: "noc@example.org",
    sshAllowedCidrs: ["198.51.100.0/24", "203.0.113.0/24"],
    allowSshFromAnywhere: true,
    sshPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFq8iT1n3vZ0mK7p2xW9cR4bD6eH5jL0sN3uY8aQ1tVz ops@example.org",
    // As npm run impact sees a key set again in the stack file: its placeholder, with the new ciphertext's digest.
    sshPrivateKey: PLACEHOLDER_PRIVATE_KEY.replace("offline-placeholder", "offline-placeholder-0123456789ab"),
    image: "Ubuntu 22.04 2026-11",
    flavors: { bbb: "m1.2xlarge" },
    volumeSizes: { bbb: 200 },
    bbbVersion: "jammy-301",
    network: { mode: "floating", name: "private", floatingIpPool: "public" },
    poolSize: 4,
    bake: false,
    scalelite: false,
    greenlight: false,
    dns: { provider: "none" },
    turnRelayPorts: "49152-65535",
    bbbInstallerRef: "v3.0.x-release",
    forceReinstall: true,
    bbbRelease: 2,
    upgrade: { servers: 1, from: { bbbVersion: "jammy-300" } },
    scaleliteVersion: "v1.8.6",
    greenlightVersion: "v3.8.3",
    consumers: ["mattermost", "pod"],
    drain: ["bbb-3"],
    forceRemove: true,
    dataVolumeSizes: { scalelite: 50 },
    protectData: false,
    privacy: "standard",
    recordings: { enabled: true },
    dialIn: { number: "+49 30 1234567", sipProviderCidrs: ["192.0.2.0/24"], gateway: { host: "sip.example.net", username: "4930123", password: "pw" } },
    webhooks: true,
    webhookUrls: ["https://hooks.example.org/bbb"],
    monitoring: false,
    alerts: { email: "ops@example.org", smtp: { server: "smtp.example.org:587", from: "bbb-alerts@example.org", username: "bbb-alerts", password: "pw" } },
    backups: { enabled: false },
    streaming: { enabled: true, workers: 3 },
    secretGeneration: 2,
    consumerSecretGenerations: { greenlight: 2 },
};

/** The README table's rows: key -> impact column. */
function readmeRows(): Map<string, string> {
    const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    const start = readme.indexOf("### Every setting: what changing it does to meetings and data");
    const table = readme.slice(start, readme.indexOf("\n\n", readme.indexOf("| key | change |", start)));
    const rows = new Map<string, string>();
    for (const line of table.split("\n").filter((l) => /^\| `/.test(l))) {
        const cells = line.split(" | ");
        rows.set(cells[0].replace(/^\| `|`$/g, ""), cells[2]);
    }
    return rows;
}

let modules: ProgramModules;
/** The next update of the deployed stack (as npm run impact has it: in the cloud the last update left). */
const evaluate = (config: Record<string, unknown>, inventory = prod && inventoryOf(prod)) => evaluateProgram(modules, config, { anyName: true, inventory }, "prod");
let prod: Run;
beforeAll(async () => {
    jest.isolateModules(() => {
        modules = require("../scripts/offline").loadProgram();
    });
    prod = await evaluate(PROD, inventoryOf(await evaluate(PROD)));
});

test("every config key has a row, and every row a key", () => {
    expect([...readmeRows().keys()].sort()).toEqual([...CONFIG_KEYS].sort());
    expect(Object.keys(CHANGES).sort()).toEqual([...CONFIG_KEYS].sort());
});

test("each row's impact column is what npm run impact says for its change", async () => {
    const rows = readmeRows();
    const said: Record<string, string> = {};
    const computed: Record<string, string> = {};
    for (const [key, value] of Object.entries(CHANGES)) {
        const after = await evaluate({ ...PROD, [key]: value });
        computed[key] = after.error ? "refused" : String(assessImpact(prod, after).level);
        said[key] = rows.get(key) ?? "(no row)";
    }
    expect(said).toEqual(computed);
}, 120000);
