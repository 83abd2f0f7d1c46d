// The remote steps the program declares, under mocks: their order, their inputs and their secrecy.
import { PIN_DIGITS } from "../components/bbb";
import { BASE_CONFIG, byName, evaluate, ofType, Run, stepInputs, TEST_PRIVATE_KEY, waitsFor } from "./harness";

const TURN_SECRET = "ab".repeat(32);
const steps = (run: Run) => ofType(run, "command:remote:Command").map((r) => r.name);
const inputsOf = (run: Run, name: string) => stepInputs(byName(run, name).inputs.stdin);

describe("single topology with Greenlight", () => {
    let run: Run;
    beforeAll(async () => {
        run = await evaluate({ ...BASE_CONFIG, greenlight: true }, { ipv6: true });
    });

    test("declares readiness, coturn, installer and configuration steps", () => {
        expect(run.error).toBeUndefined();
        expect(steps(run).sort()).toEqual(["bbb-1-api-name", "bbb-1-backup", "bbb-1-configure", "bbb-1-data-policy", "bbb-1-greenlight-storage", "bbb-1-install", "bbb-1-ready", "turn-coturn", "turn-ready"]);
    });

    test("the installer gets the pinned commit, the version, the name, the e-mail, TURN, -g and Greenlight's pinned tag", () => {
        expect(inputsOf(run, "bbb-1-install")).toMatchObject({
            STEP: "bbb-installer",
            // The head of bbb-install's v3.0.x-release that docs/upstream.md was read at, not the moving branch.
            INSTALLER_URL: "https://raw.githubusercontent.com/bigbluebutton/bbb-install/26ce2d16c2a82ef962d685525b0c20bb89d4d151/bbb-install.sh",
            GREENLIGHT_VERSION: "v3.8.2.4",
            VERSION: "jammy-300",
            FQDN: "bbb-1.example.org",
            EMAIL: "ops@example.org",
            TURN_HOST: "turn.example.org",
            TURN_SECRET,
            GREENLIGHT: "true",
            FORCE_REINSTALL: "false",
            // Behind its floating IP: bbb-install.sh is told both (it detects NAT only where the router hairpins).
            PUBLIC_IPV4: "203.0.113.11",
            PRIVATE_IPV4: "10.0.0.11",
        });
    });

    test("bbb-1 answers to the exported secret, with recordings off, the version hidden, quiet logs (strict privacy)", () => {
        const inputs = inputsOf(run, "bbb-1-configure");
        expect(inputs.SECRET).toBe(run.outputs.bbbSecret);
        expect(inputs.PROPERTIES.split("\n")).toEqual([
            "allowRevealOfBBBVersion=false",
            "disableRecordingDefault=true",
            "allowStartStopRecording=false",
            "autoStartRecording=false",
            "breakoutRoomsRecord=false",
            "defaultKeepEvents=false",
            "appLogLevel=WARN",
        ]);
        expect(inputsOf(run, "bbb-1-data-policy")).toMatchObject({ PRIVACY: "strict", VIDEO: "false", RETENTION_DAYS: "0" });
        expect(inputs).toMatchObject({ GREENLIGHT_VERSION: "v3.8.2.4", GREENLIGHT_LOG_LEVEL: "warn" });
        expect(inputsOf(run, "turn-coturn").LOGGING).toBe("none");
    });

    test("coturn is configured from the matrix's ports, turnRelayPorts and the addresses of the TURN host", () => {
        expect(inputsOf(run, "turn-coturn")).toMatchObject({
            FQDN: "turn.example.org",
            REALM: "example.org",
            SECRET: TURN_SECRET,
            PRIVATE_IPV4: "10.0.0.2",
            PUBLIC_IPV4: "203.0.113.2",
            IPV6: "2001:db8:1::2",
            LISTENING_PORT: "3478",
            TLS_PORT: "443",
            RELAY_MIN: "32769",
            RELAY_MAX: "65535",
        });
    });

    test("TURN's peers are exactly bbb-1, by name, with its public addresses (poolSize 1)", () => {
        expect(inputsOf(run, "turn-coturn").PEERS).toBe("bbb-1.example.org 2001:db8:1::b 203.0.113.11");
    });

    test("the installer waits for its own host only: not for TURN's install", () => {
        const waits = waitsFor(run, "bbb-1-install");
        expect(waits).toContain("bbb-1-ready");
        expect([...waits].filter((n) => n.startsWith("turn-"))).toEqual(["turn-secret"]);
    });

    test("bbb-1 answers the API name alone: its certificate step gets the name and its addresses, after the name's records and its configuration", () => {
        expect(inputsOf(run, "bbb-1-api-name")).toMatchObject({
            FQDN: "bbb-1.example.org",
            API_FQDN: "bbb.example.org",
            EMAIL: "ops@example.org",
            IPV4: "203.0.113.11",
            IPV6: "2001:db8:1::b",
        });
        expect([...waitsFor(run, "bbb-1-api-name")]).toEqual(expect.arrayContaining(["api-a", "api-aaaa", "bbb-1-data-policy"]));
        expect(run.outputs.bbbApiUrl).toBe("https://bbb.example.org/bigbluebutton/api");
    });

    test("configuration follows the installer, and runs again after every installer run", () => {
        expect(waitsFor(run, "bbb-1-configure")).toContain("bbb-1-install");
        expect(inputsOf(run, "bbb-1-configure").INSTALL_ID).toMatch(/^[0-9a-f]{64}$/);
    });

    test("TURN's configuration waits for its readiness and for the BBB addresses, not for BBB installs", () => {
        const waits = waitsFor(run, "turn-coturn");
        expect([...waits]).toEqual(expect.arrayContaining(["turn-ready", "bbb-1-port", "bbb-1-fip"]));
        expect([...waits].filter((n) => /^bbb-1-(install|configure|ready|vm)$/.test(n))).toEqual([]);
    });

    test("every step re-runs on a replaced VM (the instance id is a trigger)", () => {
        expect(byName(run, "bbb-1-install").inputs.triggers).toEqual(["bbb-1-vm-id"]);
        expect(byName(run, "bbb-1-configure").inputs.triggers).toEqual(["bbb-1-vm-id"]);
        expect(byName(run, "turn-coturn").inputs.triggers).toEqual(["turn-vm-id"]);
    });

    test("secrets travel only on stdin, marked secret; the command lines carry none", () => {
        for (const name of ["bbb-1-install", "bbb-1-configure", "turn-coturn"]) {
            const step = byName(run, name);
            expect([name, step.secretInputs.sort()]).toEqual([name, ["connection", "stdin"]]);
            expect(step.inputs.create).toBe(`sudo -n bash -s # ${step.inputs.stdin.match(/^STEP='([a-z-]+)'/)[1]}`);
            expect(step.inputs.environment).toBeUndefined();
            expect(step.inputs.addPreviousOutputInEnv).toBe(false);
        }
    });
});

describe("pool topology, three nodes", () => {
    let run: Run;
    beforeAll(async () => {
        run = await evaluate({ ...BASE_CONFIG, poolSize: 3, scalelite: true, greenlight: true, forceReinstall: true }, { ipv6: true });
    });

    test("every node is installed and configured; Greenlight is not installed on a node", () => {
        expect(run.error).toBeUndefined();
        for (const n of [1, 2, 3]) {
            expect(steps(run)).toEqual(expect.arrayContaining([`bbb-${n}-install`, `bbb-${n}-configure`]));
            expect(inputsOf(run, `bbb-${n}-install`)).toMatchObject({ GREENLIGHT: "false", FORCE_REINSTALL: "true" });
        }
    });

    test("TURN's peers are exactly the three nodes, by name, with their public addresses", () => {
        expect(inputsOf(run, "turn-coturn").PEERS.split("\n")).toEqual([
            "bbb-1.example.org 2001:db8:1::b 203.0.113.11",
            "bbb-2.example.org 2001:db8:1::c 203.0.113.12",
            "bbb-3.example.org 2001:db8:1::d 203.0.113.13",
        ]);
    });

    test("Scalelite answers the API name: its setup gets the name and Scalelite's addresses, after the name's records; the nodes' certificates name themselves alone", () => {
        expect(inputsOf(run, "scalelite-setup")).toMatchObject({ FQDN: "scalelite.example.org", API_FQDN: "bbb.example.org", IPV4: "203.0.113.3", IPV6: "2001:db8:1::3" });
        expect([...waitsFor(run, "scalelite-setup")]).toEqual(expect.arrayContaining(["api-a", "api-aaaa"]));
        // The name moves only after bbb-1's meetings check (a single server grown into this pool).
        expect([...waitsFor(run, "api-a")]).toContain("api-move-check");
        // bbb-1, which may have answered it as a single server, gives the name up; the others never had it.
        expect(inputsOf(run, "bbb-1-api-name").API_FQDN).toBe("");
        expect(steps(run).filter((s) => s.endsWith("-api-name"))).toEqual(["bbb-1-api-name"]);
    });

    test("Scalelite's and Greenlight's hosts keep the stack's privacy (strict by default); BBB servers have no Greenlight to configure", () => {
        expect(inputsOf(run, "scalelite-setup").PRIVACY).toBe("strict");
        expect(inputsOf(run, "greenlight-setup").PRIVACY).toBe("strict");
        for (const n of [1, 2, 3]) expect(Object.keys(inputsOf(run, `bbb-${n}-configure`))).not.toContain("GREENLIGHT_VERSION");
    });

    test("Scalelite's conference numbers have the dial-in PIN's length (Scalelite would make them 9 digits)", () => {
        expect(inputsOf(run, "scalelite-setup").VOICE_BRIDGE_LEN).toBe(String(PIN_DIGITS));
        expect(PIN_DIGITS).toBe(5);
    });

    test("a server's registration and retire steps know its VM: a new VM is registered again, a kept one put back", () => {
        for (const n of [1, 2, 3]) {
            expect(inputsOf(run, `bbb-${n}-registration`).INSTANCE_ID).toBe(`bbb-${n}-vm-id`);
            expect(inputsOf(run, `bbb-${n}-retire`)).toEqual({ STEP: "scalelite-node", NODE_ID: `bbb-${n}.example.org`, INSTANCE_ID: `bbb-${n}-vm-id`, MAINTENANCE_WAIT_SECONDS: "86400" });
            expect(byName(run, `bbb-${n}-retire`).inputs.triggers).toEqual([`bbb-${n}-vm-id`]);
        }
    });

    test("nodes never wait for each other", () => {
        for (const n of [1, 2, 3]) {
            const others = [...waitsFor(run, `bbb-${n}-configure`)].filter((name) => /^bbb-\d+-/.test(name) && !name.startsWith(`bbb-${n}-`));
            expect([n, others]).toEqual([n, []]);
        }
    });

    test("each node has its own secret, none of them the consumers' secret", () => {
        const secrets = [1, 2, 3].map((n) => inputsOf(run, `bbb-${n}-configure`).SECRET);
        expect(new Set(secrets).size).toBe(3);
        expect(secrets).not.toContain(run.outputs.bbbSecret);
        for (const n of [1, 2, 3]) expect(byName(run, `bbb-${n}-secret`).type).toBe("random:index/randomPassword:RandomPassword");
    });

    test("no secret travels unmarked", () => {
        const nodeSecrets = [1, 2, 3].map((n) => inputsOf(run, `bbb-${n}-configure`).SECRET);
        for (const r of run.resources) {
            for (const [key, value] of Object.entries(r.inputs)) {
                const text = JSON.stringify(value);
                const carries = [TEST_PRIVATE_KEY.split("\n")[1], TURN_SECRET, run.outputs.bbbSecret as string, ...nodeSecrets].some((s) => text.includes(s));
                if (carries) expect([r.name, key, r.secretInputs.includes(key)]).toEqual([r.name, key, true]);
            }
        }
    });
});

describe("a step runs again only when its own inputs or script change", () => {
    const stdinOf = (run: Run) => Object.fromEntries(ofType(run, "command:remote:Command").map((r) => [r.name, r.inputs.stdin]));
    let base: Record<string, string>;
    beforeAll(async () => {
        base = stdinOf(await evaluate(BASE_CONFIG));
    });

    test("an unrelated change (a flavor, a volume size) leaves every step's stdin as it was", async () => {
        const changed = stdinOf(await evaluate({ ...BASE_CONFIG, flavors: { turn: "m1.large" }, volumeSizes: { bbb: 120 } }));
        expect(changed).toEqual(base);
    });

    test("a new bbbVersion re-runs the installer and, after it, the configuration and data policy; nothing else", async () => {
        const changed = stdinOf(await evaluate({ ...BASE_CONFIG, bbbVersion: "jammy-301" }));
        const differing = Object.keys(base).filter((name) => base[name] !== changed[name]).sort();
        expect(differing).toEqual(["bbb-1-configure", "bbb-1-data-policy", "bbb-1-install"]);
    });
});
