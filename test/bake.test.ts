// Baked servers under mocks (components/bake.ts): a pool's first deploy bakes a golden volume with a builder VM and
// boots its servers from clones of it; the next update deletes the builder; the same inputs again change nothing;
// a changed input bakes a new golden volume while the servers keep theirs; servers that existed before baking keep
// their image disks.
import { assessImpact } from "../scripts/impact";
import { BASE_CONFIG, byName, diff, evaluate, inventoryOf, ofType, Registered, Run, stepInputs } from "./harness";

const POOL = { ...BASE_CONFIG, scalelite: true, poolSize: 2 };
const IMAGES = { images: ["Ubuntu 22.04", "Ubuntu 22.04 2026-12"] };
const VOLUME = "openstack:blockstorage/volume:Volume";
const GOLDEN = /^bake-[0-9a-f]{12}$/;

const goldens = (run: Run) => ofType(run, VOLUME).filter((v) => GOLDEN.test(v.name));
const builders = (run: Run) => run.resources.filter((r) => r.custom && /^bake-[0-9a-f]{12}-builder/.test(r.name)).map((r) => r.name);
const keyOf = (run: Run, server: string) => (run.outputs.baking as { servers: Record<string, string> }).servers[server];
/** The update after `run`: the cloud holds what `run` made. */
const next = (run: Run, config: Record<string, unknown>, cloud = {}) => evaluate(config, { ...cloud, inventory: inventoryOf(run) });

let first: Run;
let second: Run;
beforeAll(async () => {
    first = await evaluate(POOL);
    second = await next(first, POOL);
});

describe("a pool's first deploy", () => {
    test("bakes: a builder VM boots a disk of the image, runs bbb-bake, and the golden volume is cloned from that disk once the bake is done", () => {
        expect(first.error).toBeUndefined();
        const [golden] = goldens(first);
        expect(goldens(first)).toHaveLength(1);
        const disk = byName(first, `${golden.name}-disk`);
        expect(disk.inputs.imageId).toBe("image-uuid-ubuntu-22-04");
        const vm = byName(first, `${golden.name}-builder-vm`);
        expect(vm.inputs.blockDevices).toEqual([{ sourceType: "volume", destinationType: "volume", uuid: `${disk.name}-id`, bootIndex: 0, deleteOnTermination: false }]);
        // Refreshed, the builder reads shutoff: Pulumi must not start it again.
        expect(vm.ignoreChanges).toContain("powerState");
        const bake = byName(first, `${golden.name}-builder-bake`);
        const inputs = stepInputs(bake.inputs.stdin);
        expect(inputs).toMatchObject({ STEP: "bbb-bake", VERSION: "jammy-300", BAKE_KEY: keyOf(first, "bbb-1"), PUBLIC_IPV4: "203.0.113.5", PRIVATE_IPV4: "10.0.0.5" });
        expect(inputs.INSTALLER_URL).toMatch(/\/bbb-install\/26ce2d16c2a82ef962d685525b0c20bb89d4d151\/bbb-install\.sh$/);
        expect(inputs.BAKE_NAME).toBe(golden.inputs.name);
        // The golden volume waits for the bake step and the builder's disk (its source).
        expect(golden.inputs.sourceVolId).toBe(`${disk.name}-id`);
        expect(golden.propertyDependencies.sourceVolId).toEqual(expect.arrayContaining([bake.urn, disk.urn]));
        expect(golden.inputs.name).toMatch(/^bbb-bake-jammy-300-26ce2d16-imageuui-[0-9a-f]{8}$/);
        expect(golden.inputs.metadata).toEqual({
            "bbb-bake": keyOf(first, "bbb-1"),
            "bbb-stack": "dev",
            purpose: "golden",
            bbbVersion: "jammy-300",
            installerRef: "26ce2d16c2a82ef962d685525b0c20bb89d4d151",
            baseImageId: "image-uuid-ubuntu-22-04",
            baseImageName: "Ubuntu 22.04",
        });
        expect(golden.ignoreChanges).toEqual(["sourceVolId"]);
        expect(golden.protect).toBe(false);
        // The clone waits until Nova reports the builder off (its disk quiet).
        expect(first.invoked).toContainEqual({ token: "openstack:compute/getInstanceV2:getInstanceV2", inputs: { id: `${vm.name}-id` } });
    });

    test("every server boots from a clone of its own of the golden volume, and its installer step finalises it", () => {
        const [golden] = goldens(first);
        for (const server of ["bbb-1", "bbb-2"]) {
            const boot = byName(first, `${server}-boot`);
            expect(boot.inputs).toMatchObject({ sourceVolId: `${golden.name}-id`, size: 80, name: `${server}.example.org` });
            expect(boot.ignoreChanges).toEqual(["sourceVolId", "size"]);
            expect(byName(first, `${server}-vm`).inputs.blockDevices).toEqual([
                { sourceType: "volume", destinationType: "volume", uuid: `${server}-boot-id`, bootIndex: 0, deleteOnTermination: false },
            ]);
            // A new boot volume must replace the VM: its uuid is not ignored.
            expect(byName(first, `${server}-vm`).ignoreChanges).not.toContain("blockDevices[0].uuid");
            expect(stepInputs(byName(first, `${server}-install`).inputs.stdin).BAKE_KEY).toBe(keyOf(first, server));
        }
        expect(new Set([keyOf(first, "bbb-1"), keyOf(first, "bbb-2")]).size).toBe(1);
    });

    test("the builder is no BBB server: no DNS name, not protected in prod, no meetings guard", async () => {
        const prod = await evaluate({ ...POOL, sshAllowedCidrs: ["198.51.100.0/24"] }, {}, "prod");
        const [golden] = goldens(prod);
        const vm = byName(prod, `${golden.name}-builder-vm`);
        expect(vm.protect).toBe(false);
        expect(vm.inputs.metadata.role).toBe("bake-builder");
        expect(byName(prod, "bbb-1-vm").protect).toBe(true);
        expect(stepInputs(byName(prod, `${golden.name}-builder-ready`).inputs.stdin).FQDN).toBe("");
        expect(prod.resources.filter((r) => r.name.startsWith(`${golden.name}-builder`) && /guard|check|cloudflare/.test(`${r.name} ${r.type}`))).toEqual([]);
    });
});

describe("the updates after", () => {
    test("the next pulumi up deletes the builder and changes nothing else", () => {
        expect(builders(first)).toHaveLength(6);
        expect(diff(first, second)).toEqual({ added: [], removed: builders(first).sort(), changed: [] });
        // The builder's disk stays with the golden volume cloned from it, which depends on it (deleted first).
        const [golden] = goldens(second);
        expect(golden.propertyDependencies.sourceVolId).toEqual([byName(second, `${golden.name}-disk`).urn]);
        expect(builders(second)).toEqual([]);
        expect(goldens(second).map((g) => g.name)).toEqual(goldens(first).map((g) => g.name));
    });

    test("a new secret reaches a baked server through configure, and its seed (which does nothing once finalised), never its installer step", async () => {
        const rotated = await next(second, { ...POOL, secretGeneration: 2 });
        const { changed } = diff(second, rotated);
        expect(changed).toEqual(expect.arrayContaining(["bbb-1-seed", "bbb-1-configure"]));
        expect(changed).not.toContain("bbb-1-install");
        expect(stepInputs(byName(rotated, "bbb-1-seed").inputs.stdin).SECRET).toBe(stepInputs(byName(rotated, "bbb-1-configure").inputs.stdin).SECRET);
    });

    test("the same inputs again do nothing (no new bake)", async () => {
        const third = await next(second, POOL);
        expect(diff(second, third)).toEqual({ added: [], removed: [], changed: [] });
    });

    test("a new image bakes a new golden volume; the servers keep theirs, and it stays while they use it", async () => {
        const rotated = await next(second, { ...POOL, image: "Ubuntu 22.04 2026-12" }, IMAGES);
        const { added, removed, changed } = diff(second, rotated);
        const [old] = goldens(second);
        const fresh = goldens(rotated).find((g) => g.name !== old.name)!;
        expect(fresh.inputs.metadata.baseImageId).toBe("image-uuid-ubuntu-22-04-2026-12");
        expect(added).toEqual(expect.arrayContaining([fresh.name, `${fresh.name}-builder-vm`, `${fresh.name}-builder-bake`]));
        expect(added.every((n) => n.startsWith(fresh.name))).toBe(true);
        expect({ removed, changed }).toEqual({ removed: [], changed: [] });
        expect(keyOf(rotated, "bbb-1")).toBe(keyOf(second, "bbb-1"));
        // A server added now gets the new one.
        const grown = await next(await next(rotated, { ...POOL, image: "Ubuntu 22.04 2026-12" }, IMAGES), { ...POOL, image: "Ubuntu 22.04 2026-12", poolSize: 3 }, IMAGES);
        expect(byName(grown, "bbb-3-boot").inputs.sourceVolId).toBe(`${fresh.name}-id`);
        expect(byName(grown, "bbb-1-boot").inputs.sourceVolId).toBe(`${old.name}-id`);
    });

    test("a rolling upgrade: the release bakes first (servers: 0), its servers boot from the new golden volume, the old one goes with the last old server", async () => {
        const release = { ...POOL, bbbRelease: 2, bbbVersion: "jammy-301" };
        const declared = await next(second, { ...release, upgrade: { servers: 0, from: { bbbVersion: "jammy-300" } } });
        const { added, changed } = diff(second, declared);
        expect(changed).toEqual([]);
        expect(added.every((n) => GOLDEN.test(n.slice(0, 17)))).toBe(true);
        const baked = await next(declared, { ...release, upgrade: { servers: 0, from: { bbbVersion: "jammy-300" } } });
        const round1 = await next(baked, { ...release, upgrade: { servers: 1, from: { bbbVersion: "jammy-300" } } });
        expect(diff(baked, round1).added).toEqual(expect.arrayContaining(["bbb-1-r2-boot", "bbb-1-r2-vm"]));
        expect(builders(round1)).toEqual([]);
        const newGolden = goldens(declared).find((g) => g.inputs.metadata.bbbVersion === "jammy-301")!;
        expect(byName(round1, "bbb-1-r2-boot").inputs.sourceVolId).toBe(`${newGolden.name}-id`);
        // A server added during the upgrade, not upgraded yet, runs the release before: its golden volume.
        const grown = await next(round1, { ...release, poolSize: 3, upgrade: { servers: 1, from: { bbbVersion: "jammy-300" } } });
        const [oldGoldenNow] = goldens(second);
        expect(byName(grown, "bbb-3-boot").inputs.sourceVolId).toBe(`${oldGoldenNow.name}-id`);
        const done = await next(round1, { ...release, upgrade: { servers: 2, from: { bbbVersion: "jammy-300" } } });
        const [oldGolden] = goldens(second);
        expect(diff(round1, done).removed).toEqual(expect.arrayContaining([oldGolden.name, "bbb-2-boot", "bbb-2-vm"]));
        expect(goldens(done).map((g) => g.name)).toEqual([newGolden.name]);
        // What npm run impact says of it: the golden volume goes with its builder's disk, no data at risk.
        const impact = assessImpact(round1, done);
        expect(impact.stack.map((r) => r.does)).toContainEqual(
            expect.stringMatching(new RegExp(`^delete golden volume \`${oldGolden.name}\` \\(BigBlueButton jammy-300, .*\\) and the builder's disk it was cloned from$`)),
        );
        expect(impact.stack.filter((r) => r.does.includes(`${oldGolden.name}-disk`))).toEqual([]);
        expect(impact.dataAtRisk).toEqual([]);
    });
});

test("the key covers what the builder runs (bbb-bake.sh and lib.sh) and every input", () => {
    const { bakeKey, bakeScripts } = require("../components/bake");
    const spec = { bbbVersion: "jammy-300", installerRef: "26ce2d16", imageId: "i-1", imageName: "Ubuntu 22.04" };
    const key = bakeKey(spec);
    expect(bakeKey(spec, bakeScripts())).toBe(key);
    expect(bakeScripts()).toContain("bbb_install_run");
    expect(bakeKey(spec, `${bakeScripts()}\n# changed`)).not.toBe(key);
    for (const change of [{ bbbVersion: "jammy-301" }, { installerRef: "v3.0.x-release" }, { imageId: "i-2" }]) expect(bakeKey({ ...spec, ...change })).not.toBe(key);
    expect(bakeKey({ ...spec, imageName: "renamed" })).toBe(key);
});

describe("what the cloud holds decides, not what the stack exported", () => {
    test("a bake that failed (no golden volume in Cinder) is finished by the next pulumi up on the same builder", async () => {
        // The failed update made the builder, and the servers' ports, but no golden volume, boot volume or VM.
        const failed = inventoryOf({ resources: first.resources.filter((r) => !GOLDEN.test(r.name) && !/^bbb-\d+-(boot|vm)$/.test(r.name)) });
        const retry = await evaluate(POOL, { inventory: failed });
        expect(diff(first, retry)).toEqual({ added: [], removed: [], changed: [] });
        const [golden] = goldens(retry);
        expect(golden.inputs.sourceVolId).toBe(`${golden.name}-disk-id`);
    });

    test("a server whose removal was refused keeps its golden volume when it stays, though the inputs changed since", async () => {
        const rotated = await next(second, { ...POOL, poolSize: 3 }, IMAGES);
        const settledThree = await next(await next(rotated, { ...POOL, poolSize: 3 }), { ...POOL, poolSize: 3 });
        const [old] = goldens(settledThree);
        // Rotated image, bbb-3 to go; the removal is refused: its volumes stay in the cloud. Then it stays.
        const kept = await next(settledThree, { ...POOL, poolSize: 3, image: "Ubuntu 22.04 2026-12" }, IMAGES);
        expect(keyOf(kept, "bbb-3")).toBe(keyOf(settledThree, "bbb-3"));
        expect(goldens(kept).map((g) => g.name)).toContain(old.name);
        expect(diff(settledThree, kept).changed).toEqual([]);
    });
});

describe("what Cinder says, as it says it", () => {
    const withStatus = (run: Run, name: string, status: string) => {
        const inventory = inventoryOf(run);
        inventory.volumes = inventory.volumes.map((v) => (v.id === `${name}-id` ? { ...v, status } : v));
        return inventory;
    };

    test("dev and prod in one project each bake their own golden volume of the same key", async () => {
        // dev (its hosts dev-bbb-1 ...) has baked and deployed; prod, the same release, deploys next.
        const dev = await evaluate({ ...POOL, hostnamePrefix: "dev-" });
        const prod = await evaluate(POOL, { inventory: inventoryOf(dev) }, "prod");
        expect(prod.error).toBeUndefined();
        expect(goldens(prod)[0].inputs.metadata["bbb-bake"]).toBe(goldens(dev)[0].inputs.metadata["bbb-bake"]);
        const [golden] = goldens(prod);
        expect(golden.inputs.metadata["bbb-stack"]).toBe("prod");
        expect(builders(prod)).toHaveLength(6);
    });

    test("a golden volume being backed up is made: no builder, and its servers keep it; one deleted outside Pulumi leaves its servers their disks", async () => {
        const [golden] = goldens(second);
        const backingUp = await evaluate(POOL, { inventory: withStatus(second, golden.name, "backing-up") });
        expect(diff(second, backingUp)).toEqual({ added: [], removed: [], changed: [] });
        // Rotated image: a new golden volume for new servers; the old one, deleted outside Pulumi, is not made again.
        const gone = inventoryOf(second);
        gone.volumes = gone.volumes.filter((v) => v.id !== `${golden.name}-id`);
        const rotated = await evaluate({ ...POOL, image: "Ubuntu 22.04 2026-12" }, { ...IMAGES, inventory: gone });
        expect(rotated.error).toBeUndefined();
        expect(goldens(rotated).map((g) => g.name)).not.toContain(golden.name);
        expect(diff(second, rotated).changed).toEqual([]);
    });

    test("a boot volume replaced create-before-delete (the old one still attached) still says its server's key", async () => {
        const inventory = inventoryOf(second);
        const old = inventory.volumes.find((v) => v.id === "bbb-1-boot-id")!;
        inventory.volumes = [...inventory.volumes.map((v) => (v === old ? { ...v, status: "in-use" } : v)), { ...old, id: "bbb-1-boot-new-id", status: "available" }];
        const run = await evaluate(POOL, { inventory });
        expect(run.error).toBeUndefined();
        expect(keyOf(run, "bbb-1")).toBe(keyOf(second, "bbb-1"));
    });

    test("two golden volumes of one key both available: the problem is told in the provider's words, with what to do", async () => {
        const inventory = inventoryOf(second);
        const [golden] = goldens(second);
        inventory.volumes.push({ ...inventory.volumes.find((v) => v.id === `${golden.name}-id`)!, id: "stray-id" });
        const run = await evaluate(POOL, { inventory });
        expect(run.error?.message).toMatch(/^the golden volume [0-9a-f]{12}: Your openstack_blockstorage_volume_v3 query returned multiple results \(openstack volume list --long: a volume this stack does not hold in its state can be deleted\)$/);
    });
});

describe("servers that existed before baking", () => {
    /** A pool deployed by an earlier version of this program (or with bake: false): ports, image disks, no boot volumes. */
    const before = () => evaluate({ ...POOL, bake: false });

    test("keep their image disks; a server added afterwards is baked", async () => {
        const old = await before();
        const now = await next(old, POOL);
        const servers = (run: Run) => run.resources.filter((r: Registered) => /^bbb-\d+-/.test(r.name));
        expect(diff({ resources: servers(old) }, { resources: servers(now) })).toEqual({ added: [], removed: [], changed: [] });
        expect(byName(now, "bbb-1-vm").inputs.blockDevices[0].sourceType).toBe("image");
        expect(keyOf(now, "bbb-1")).toBe("image");
        const grown = await next(await next(now, POOL), { ...POOL, poolSize: 3 });
        expect(byName(grown, "bbb-3-vm").inputs.blockDevices[0].sourceType).toBe("volume");
        expect(byName(grown, "bbb-2-vm").inputs.blockDevices[0].sourceType).toBe("image");
    });
});

describe("not baked", () => {
    test("bake: false boots every server from the image, with no golden volume", async () => {
        const run = await evaluate({ ...POOL, bake: false });
        expect(goldens(run)).toEqual([]);
        expect(byName(run, "bbb-1-vm").inputs.blockDevices[0]).toMatchObject({ sourceType: "image", uuid: "image-uuid-ubuntu-22-04" });
        expect(stepInputs(byName(run, "bbb-1-install").inputs.stdin).BAKE_KEY).toBeUndefined();
    });

    test("the single topology upgrades in place: nothing baked", async () => {
        const run = await evaluate(BASE_CONFIG);
        expect(goldens(run)).toEqual([]);
        expect(run.outputs.baking).toEqual({ servers: { "bbb-1": "image" }, goldens: {} });
    });

    test("a builder that does not power itself off fails the update with what to look at; the golden volume is not made", async () => {
        jest.resetModules();
        const bake = require("../components/bake");
        bake.POWER_OFF.timeoutSeconds = 0;
        const pulumi = require("@pulumi/pulumi");
        await pulumi.runtime.setMocks(
            { newResource: () => ({ id: "x", state: {} }), call: () => ({ id: "vm-1", powerState: "active" }) },
            "bbb",
            "dev",
        );
        await expect(bake.poweredOff("vm-1")).rejects.toThrow(/the bake's builder vm-1 is still active 0s after its bake.*openstack console log show vm-1.*next pulumi up waits for it again/);
    });
});

test("bake needs boot volumes at least as big as the golden volume", async () => {
    const run = await evaluate({ ...POOL, volumeSizes: { bbb: 20 } });
    expect(run.error?.message).toMatch(/volumeSizes\.bbb[\s\S]*at least 30 GB with bake on[\s\S]*pulumi config set -s dev --path volumeSizes\.bbb 30 {2}\(or: pulumi config set -s dev bake false\)/);
    expect((await evaluate({ ...POOL, volumeSizes: { bbb: 20 }, bake: false })).error).toBeUndefined();
});
