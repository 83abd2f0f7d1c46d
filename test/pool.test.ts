// The pool topology under mocks: Scalelite, registrations, scaling, drain, data volumes, consumer secrets.
import { BASE_CONFIG, byName, changedInputs, diff, serverResources, evaluate, ofType, Registered, Run, stepInputs, waitsFor } from "./harness";

/** Servers by the whole installer: test/bake.test.ts has baked ones. */
const POOL = { ...BASE_CONFIG, scalelite: true, greenlight: true, consumers: ["mattermost", "pod"], bake: false };
const COMMAND = "command:remote:Command";
const VOLUME = "openstack:blockstorage/volume:Volume";

const NODE_RESOURCES = (n: number) => serverResources(`bbb-${n}`);

let three: Run;
let four: Run;
let five: Run;
/** A throw-away stack that forces removals. */
let custom: Run;
beforeAll(async () => {
    three = await evaluate({ ...POOL, poolSize: 3 });
    four = await evaluate({ ...POOL, poolSize: 4 });
    five = await evaluate({ ...POOL, poolSize: 5, drain: ["bbb-5"] });
    custom = await evaluate({ ...POOL, poolSize: 2, protectData: false, dataVolumeSizes: { scalelite: 50 }, forceRemove: true });
});

test("the runs evaluate", () => {
    expect([three.error, four.error, five.error, custom.error]).toEqual([undefined, undefined, undefined, undefined]);
});

test("scaling 3 -> 4 adds bbb-4's resources and updates only TURN's peer list", () => {
    expect(diff(three, four)).toEqual({ added: NODE_RESOURCES(4).sort(), removed: [], changed: ["turn-coturn"] });
});

test("scaling 5 -> 3 removes bbb-4 and bbb-5 (registrations first, see below) and updates only TURN's peer list", () => {
    expect(diff(five, three)).toEqual({ added: [], removed: [...NODE_RESOURCES(4), ...NODE_RESOURCES(5)].sort(), changed: ["turn-coturn"] });
});

test("a node leaving the pool is removed from Scalelite before its VM goes: the registration depends on the node", () => {
    const registration = byName(five, "bbb-5-registration");
    expect(registration.inputs.delete).toBe("sudo -n bash -s remove # scalelite-node");
    // Pulumi deletes dependents first: the VM is deleted only after the registration's delete succeeded.
    expect([...waitsFor(five, "bbb-5-registration")]).toEqual(expect.arrayContaining(["bbb-5-configure", "bbb-5-data-policy", "bbb-5-vm", "scalelite-setup"]));
    expect(registration.inputs.triggers).toEqual([]);
});

test("every node is registered with its own URL and secret, on the Scalelite host", () => {
    for (const n of [1, 2, 3, 4]) {
        const registration = byName(four, `bbb-${n}-registration`);
        const inputs = stepInputs(registration.inputs.stdin);
        expect(inputs).toMatchObject({
            STEP: "scalelite-node",
            NODE_ID: `bbb-${n}.example.org`,
            API_URL: `https://bbb-${n}.example.org/bigbluebutton/api`,
            DRAIN: "false",
        });
        expect(inputs.SECRET).toBe(stepInputs(byName(four, `bbb-${n}-configure`).inputs.stdin).SECRET);
        expect(registration.inputs.connection.host).toBe("203.0.113.3");
        expect(registration.secretInputs).toContain("stdin");
    }
});

test("drain: the listed node is cordoned, the others enabled", () => {
    expect(stepInputs(byName(five, "bbb-5-registration").inputs.stdin).DRAIN).toBe("true");
    expect(stepInputs(byName(five, "bbb-4-registration").inputs.stdin).DRAIN).toBe("false");
});

test("Scalelite's setup gets the pinned version, its volume, the primary and every consumer's secret", () => {
    const inputs = stepInputs(byName(four, "scalelite-setup").inputs.stdin);
    const consumers = four.outputs.consumerSecrets as Record<string, string>;
    expect(Object.keys(consumers).sort()).toEqual(["greenlight", "mattermost", "pod"]);
    expect(inputs).toMatchObject({ FQDN: "scalelite.example.org", SCALELITE_VERSION: "v1.8.5", VOLUME_ID: "scalelite-data-id", FORCE_REMOVE: "false" });
    expect(inputs.LOADBALANCER_SECRET).toBe(four.outputs.bbbSecret);
    expect(inputs.LOADBALANCER_SECRETS.split(":").sort()).toEqual([four.outputs.bbbSecret as string, ...Object.values(consumers)].sort());
    expect(new Set(Object.values(consumers)).size).toBe(3);
});

test("outputs: Scalelite's API, the primary secret, the consumers' secrets (secret), Greenlight's URL", () => {
    expect(four.outputs.bbbApiUrl).toBe("https://bbb.example.org/bigbluebutton/api");
    expect(four.outputs.greenlightUrl).toBe("https://greenlight.example.org/");
    expect(four.secretOutputs.sort()).toEqual(["backupPasswords", "bbbSecret", "consumerSecrets", "integrations"]);
});

test("Greenlight runs on its own host against Scalelite, with its own consumer secret, after Scalelite is up", () => {
    const inputs = stepInputs(byName(four, "greenlight-setup").inputs.stdin);
    expect(inputs).toMatchObject({
        FQDN: "greenlight.example.org",
        BBB_ENDPOINT: "https://scalelite.example.org/bigbluebutton/api/",
        BBB_SECRET: (four.outputs.consumerSecrets as Record<string, string>).greenlight,
        VOLUME_ID: "greenlight-data-id",
        GREENLIGHT_VERSION: "v3.8.2.4",
    });
    expect(waitsFor(four, "greenlight-setup")).toContain("scalelite-setup");
});

describe("data volumes", () => {
    const volumes = (run: Run) => ofType(run, VOLUME);
    const attachmentOf = (run: Run, name: string): Registered => byName(run, `${name}-data-attach`);

    test("Scalelite and Greenlight each have one, attached to their own VM, protected by default", () => {
        expect(volumes(four).map((v) => [v.name, v.inputs.size, v.protect])).toEqual([
            ["scalelite-data", 20, true],
            ["greenlight-data", 10, true],
        ]);
        expect(attachmentOf(four, "scalelite").inputs).toEqual({ instanceId: "scalelite-vm-id", volumeId: "scalelite-data-id" });
        expect(attachmentOf(four, "greenlight").inputs).toEqual({ instanceId: "greenlight-vm-id", volumeId: "greenlight-data-id" });
        expect(attachmentOf(four, "scalelite").deleteBeforeReplace).toBe(true);
    });

    test("the setup waits for the attachment", () => {
        expect(waitsFor(four, "scalelite-setup")).toContain("scalelite-data-attach");
    });

    test("protectData: false (a throw-away stack) leaves them unprotected; sizes follow dataVolumeSizes", () => {
        expect(volumes(custom).map((v) => [v.name, v.inputs.size, v.protect])).toEqual([
            ["scalelite-data", 50, false],
            ["greenlight-data", 10, false],
        ]);
    });
});

test("forceRemove reaches the Scalelite host, where the removal step reads it", () => {
    expect(stepInputs(byName(four, "scalelite-setup").inputs.stdin).FORCE_REMOVE).toBe("false");
    expect(stepInputs(byName(custom, "scalelite-setup").inputs.stdin).FORCE_REMOVE).toBe("true");
});

test("the single topology keeps one secret: consumerSecrets is { default: bbbSecret }", async () => {
    const run = await evaluate(BASE_CONFIG);
    expect(run.outputs.consumerSecrets).toEqual({ default: run.outputs.bbbSecret });
    expect(ofType(run, VOLUME)).toEqual([]);
    expect(ofType(run, COMMAND).map((c) => c.name)).not.toContain(expect.stringContaining("registration"));
});

test("after an installer run (a new bbbVersion) the registration runs again, so a server Scalelite disabled meanwhile is enabled", async () => {
    const upgraded = await evaluate({ ...POOL, poolSize: 3, bbbVersion: "jammy-301" });
    const changed = diff(three, upgraded).changed;
    for (const n of [1, 2, 3]) expect(changed).toEqual(expect.arrayContaining([`bbb-${n}-install`, `bbb-${n}-registration`]));
    expect(changed.filter((name) => name.endsWith("-maintenance"))).toEqual([]);
});

describe("changes that restart servers go one server at a time", () => {
    const change = (run: Run, step: string) => stepInputs(byName(run, step).inputs.stdin).CHANGE;

    test("each server's installer waits for its maintenance step, which waits only for the Scalelite host to be up", () => {
        for (const n of [1, 2, 3, 4]) {
            expect([...waitsFor(four, `bbb-${n}-install`)]).toContain(`bbb-${n}-maintenance`);
            const waits = [...waitsFor(four, `bbb-${n}-maintenance`)];
            expect(waits).toContain("scalelite-ready");
            // A new platform's installers run while Scalelite is being set up.
            expect(waits).not.toContain("scalelite-setup");
            expect(byName(four, `bbb-${n}-maintenance`).inputs.create).toBe("sudo -n bash -s maintenance # scalelite-node");
        }
    });

    test("maintenance and registration share the server's change fingerprint; the registration runs again when it changes", async () => {
        for (const n of [1, 2, 3]) expect(change(three, `bbb-${n}-maintenance`)).toBe(change(three, `bbb-${n}-registration`));
        const fingerprints = [1, 2, 3].map((n) => change(three, `bbb-${n}-maintenance`));
        expect(new Set(fingerprints).size).toBe(3);
        const email = await evaluate({ ...POOL, poolSize: 3, letsEncryptEmail: "noc@example.org" });
        const privacy = await evaluate({ ...POOL, poolSize: 3, privacy: "standard" });
        for (const run of [email, privacy]) {
            const changed = diff(three, run).changed;
            for (const n of [1, 2, 3]) expect(changed).toEqual(expect.arrayContaining([`bbb-${n}-maintenance`, `bbb-${n}-registration`]));
            for (const n of [1, 2, 3]) expect(change(run, `bbb-${n}-maintenance`)).not.toBe(change(three, `bbb-${n}-maintenance`));
        }
    });

    test("another installer ref alone takes no server out of service (the installer notes it, it runs nothing); the pinned default counts as the release branch earlier versions ran", async () => {
        for (const ref of ["0123abcd", "v3.0.x-release"]) {
            const run = await evaluate({ ...POOL, poolSize: 3, bbbInstallerRef: ref });
            for (const n of [1, 2, 3]) expect(change(run, `bbb-${n}-maintenance`)).toBe(change(three, `bbb-${n}-maintenance`));
            expect(diff(three, run).changed.filter((name) => name.endsWith("-maintenance"))).toEqual([]);
        }
    });

    test("a new secretGeneration is a change of every server's fingerprint (it goes one server at a time)", async () => {
        const rotated = await evaluate({ ...POOL, poolSize: 3, secretGeneration: 2 });
        for (const n of [1, 2, 3]) {
            expect(change(rotated, `bbb-${n}-maintenance`)).not.toBe(change(three, `bbb-${n}-maintenance`));
            expect(stepInputs(byName(rotated, `bbb-${n}-maintenance`).inputs.stdin).SECRET).not.toBe(stepInputs(byName(three, `bbb-${n}-maintenance`).inputs.stdin).SECRET);
        }
    });

    test("the registration step says `create` when Pulumi creates it, so that a replaced step's delete removes nothing", () => {
        const registration = byName(four, "bbb-1-registration");
        expect([registration.inputs.create, registration.inputs.update, registration.inputs.delete]).toEqual([
            "sudo -n bash -s create # scalelite-node",
            "sudo -n bash -s # scalelite-node",
            "sudo -n bash -s remove # scalelite-node",
        ]);
    });
});

test("a grown data volume runs its host's setup again, which grows the filesystem to the volume's size", () => {
    expect(stepInputs(byName(four, "scalelite-setup").inputs.stdin).VOLUME_SIZE).toBe(String(byName(four, "scalelite-data").inputs.size));
    expect(stepInputs(byName(custom, "scalelite-setup").inputs.stdin).VOLUME_SIZE).toBe("50");
    expect(stepInputs(byName(four, "greenlight-setup").inputs.stdin).VOLUME_SIZE).toBe(String(byName(four, "greenlight-data").inputs.size));
});

test("a new BBB flavor or boot volume size in a pool changes no running server: new servers (scale-up, a release) get it", async () => {
    const bigger = await evaluate({ ...POOL, poolSize: 3, flavors: { bbb: "m1.xlarge" }, volumeSizes: { bbb: 200 } });
    expect(diff(three, bigger).changed.filter((name) => /^bbb-\d+-vm$/.test(name))).toEqual([]);
    const vm = byName(bigger, "bbb-1-vm");
    expect(vm.inputs.flavorName).toBe("m1.xlarge");
    expect(vm.ignoreChanges).toEqual(expect.arrayContaining(["flavorName", "blockDevices[0].volumeSize"]));
    // Scalelite, TURN and Greenlight are resized in place as before (one host each, no meetings on them).
    expect(byName(bigger, "scalelite-vm").ignoreChanges).not.toContain("flavorName");
});

test("growing from one server to a pool keeps the secret consumers hold: Scalelite's primary is bbb-1's secret", async () => {
    const single = await evaluate({ ...BASE_CONFIG, secretGeneration: 3 });
    const grown = await evaluate({ ...BASE_CONFIG, secretGeneration: 3, scalelite: true, poolSize: 2 });
    // As the engine compares (the new run's ignoreChanges on both sides): nothing of it changes.
    expect(changedInputs(byName(single, "api-secret"), byName(grown, "api-secret"))).toEqual([]);
    expect(stepInputs(byName(grown, "scalelite-setup").inputs.stdin).LOADBALANCER_SECRET).toBe(grown.outputs.bbbSecret);
    // In the single topology a new generation is a new secret.
    expect(changedInputs(byName(single, "api-secret"), byName(await evaluate({ ...BASE_CONFIG, secretGeneration: 4 }), "api-secret"))).toEqual(["keepers"]);
});
