// Upgrades: in a pool, a new release (bbbRelease with bbbVersion or image) replaces the servers one at a time
// through `upgrade.servers`; in the single topology a new bbbVersion re-runs the installer in place.
import { BASE_CONFIG, byName, diff, evaluate, Run, serverResources, stepInputs, waitsFor } from "./harness";

/** Servers by the whole installer: test/bake.test.ts has the baked rounds. */
const POOL = { ...BASE_CONFIG, scalelite: true, poolSize: 3, bake: false };
const IMAGES = { images: ["Ubuntu 22.04", "Ubuntu 22.04 2026-11"] };
/** The pool's second release: a new package line and a new image. */
const RELEASE_2 = { ...POOL, bbbRelease: 2, bbbVersion: "jammy-301", image: "Ubuntu 22.04 2026-11" };
const FROM = { bbbVersion: "jammy-300", image: "Ubuntu 22.04" };
const round = (servers: number) => evaluate({ ...RELEASE_2, upgrade: { servers, from: FROM } }, IMAGES);

let before: Run;
let rounds: Run[];
let after: Run;
beforeAll(async () => {
    before = await evaluate(POOL, IMAGES);
    rounds = [];
    for (const servers of [0, 1, 2, 3]) rounds.push(await round(servers));
    after = await evaluate(RELEASE_2, IMAGES);
});

test("the runs evaluate", () => {
    expect([before, ...rounds, after].map((run) => run.error)).toEqual([undefined, undefined, undefined, undefined, undefined, undefined]);
});

test("starting an upgrade (servers: 0) changes nothing, and neither does ending it (upgrade removed once servers is poolSize)", () => {
    expect(diff(before, rounds[0])).toEqual({ added: [], removed: [], changed: [] });
    expect(diff(rounds[3], after)).toEqual({ added: [], removed: [], changed: [] });
});

test.each([1, 2, 3])("round %i replaces bbb-%i alone: the new server is added, the old one removed, TURN's peers follow", (n) => {
    expect(diff(rounds[n - 1], rounds[n])).toEqual({
        added: serverResources(`bbb-${n}-r2`),
        removed: serverResources(`bbb-${n}`),
        changed: ["turn-coturn"],
    });
});

test("TURN's peers are the program's servers by name and addresses: in a round the new server joins and the old one leaves", () => {
    // The TURN host itself keeps relaying to the old server while its name resolves (test/turn-coturn.test.ts):
    // Pulumi deletes its DNS records only after its removal from Scalelite, which waits for its meetings.
    const peers = (run: Run) => stepInputs(byName(run, "turn-coturn").inputs.stdin).PEERS.split("\n");
    expect(peers(before)).toEqual([
        "bbb-1.example.org 203.0.113.11",
        "bbb-2.example.org 203.0.113.12",
        "bbb-3.example.org 203.0.113.13",
    ]);
    expect(peers(rounds[1])).toEqual([
        "bbb-1-r2.example.org 203.0.113.81",
        "bbb-2.example.org 203.0.113.12",
        "bbb-3.example.org 203.0.113.13",
    ]);
    const names = (run: Run) => peers(run).map((line) => line.split(" ")[0]);
    expect([before, ...rounds, after].map(names)).toEqual([
        ["bbb-1.example.org", "bbb-2.example.org", "bbb-3.example.org"],
        ["bbb-1.example.org", "bbb-2.example.org", "bbb-3.example.org"],
        ["bbb-1-r2.example.org", "bbb-2.example.org", "bbb-3.example.org"],
        ["bbb-1-r2.example.org", "bbb-2-r2.example.org", "bbb-3.example.org"],
        ["bbb-1-r2.example.org", "bbb-2-r2.example.org", "bbb-3-r2.example.org"],
        ["bbb-1-r2.example.org", "bbb-2-r2.example.org", "bbb-3-r2.example.org"],
    ]);
});

test("the new server runs the new release; the servers not yet upgraded keep theirs", () => {
    const install = (run: Run, host: string) => stepInputs(byName(run, `${host}-install`).inputs.stdin);
    const image = (run: Run, host: string) => byName(run, `${host}-vm`).inputs.blockDevices[0].uuid;
    expect([install(rounds[1], "bbb-1-r2").VERSION, image(rounds[1], "bbb-1-r2")]).toEqual(["jammy-301", "image-uuid-ubuntu-22-04-2026-11"]);
    expect([install(rounds[1], "bbb-2").VERSION, image(rounds[1], "bbb-2")]).toEqual(["jammy-300", "image-uuid-ubuntu-22-04"]);
    expect(install(rounds[1], "bbb-2").INSTALLER_URL).toBe(install(before, "bbb-2").INSTALLER_URL);
});

test("the new server has its own name, secret and Scalelite id, so it runs beside the old one until that is removed", () => {
    const registration = (run: Run, host: string) => stepInputs(byName(run, `${host}-registration`).inputs.stdin);
    const fresh = registration(rounds[1], "bbb-1-r2");
    const old = registration(before, "bbb-1");
    expect([fresh.NODE_ID, old.NODE_ID]).toEqual(["bbb-1-r2.example.org", "bbb-1.example.org"]);
    expect(fresh.SECRET).not.toBe(old.SECRET);
    expect(byName(rounds[1], "bbb-1-r2-vm").inputs.name).toBe("bbb-1-r2.example.org");
    expect((rounds[1].outputs.hosts as { name: string }[]).map((h) => h.name)).toEqual(["turn", "scalelite", "bbb-1-r2", "bbb-2", "bbb-3"]);
    // The new server is registered only once installed and configured; Pulumi deletes what left the program
    // (the old server, its registration first) after every creation: installed and registered, then cordoned
    // and removed once it hosts no meeting (the registration's delete refuses while meetings run).
    expect([...waitsFor(rounds[1], "bbb-1-r2-registration")]).toEqual(expect.arrayContaining(["bbb-1-r2-install", "bbb-1-r2-data-policy"]));
    expect(byName(before, "bbb-1-registration").inputs.delete).toBe("sudo -n bash -s remove # scalelite-node");
});

test("drain names the place in the pool, whatever the release of the server there", async () => {
    const drained = await evaluate({ ...RELEASE_2, drain: ["bbb-1", "bbb-3"], upgrade: { servers: 1, from: FROM } }, IMAGES);
    const drain = (host: string) => stepInputs(byName(drained, `${host}-registration`).inputs.stdin).DRAIN;
    expect([drain("bbb-1-r2"), drain("bbb-2"), drain("bbb-3")]).toEqual(["true", "false", "true"]);
});

test("without upgrade, a new release replaces every server in one pulumi up (no limit on how many at once)", () => {
    expect(diff(before, after)).toEqual({
        added: [1, 2, 3].flatMap((n) => serverResources(`bbb-${n}-r2`)).sort(),
        removed: [1, 2, 3].flatMap((n) => serverResources(`bbb-${n}`)).sort(),
        changed: ["turn-coturn"],
    });
});

test("an image of the release before that the cloud does not have is a configuration problem", async () => {
    const run = await evaluate({ ...RELEASE_2, upgrade: { servers: 1, from: { image: "Ubuntu 22.04 gone" } } }, IMAGES);
    expect(run.error?.message).toContain("upgrade.from.image");
    expect(run.resources.filter((r) => r.custom)).toEqual([]);
});

test("single topology: a new bbbVersion re-runs the installer on bbb-1 in place (behind the busy-host guard)", async () => {
    const single = await evaluate(BASE_CONFIG);
    const upgraded = await evaluate({ ...BASE_CONFIG, bbbVersion: "jammy-301" });
    const changes = diff(single, upgraded);
    expect([changes.added, changes.removed]).toEqual([[], []]);
    expect(changes.changed).toEqual(["bbb-1-configure", "bbb-1-data-policy", "bbb-1-install"]);
    expect(stepInputs(byName(upgraded, "bbb-1-install").inputs.stdin)).toMatchObject({ VERSION: "jammy-301", FORCE_REINSTALL: "false", UPGRADE_IN_PLACE: "true" });
});

test("in a pool, a new bbbVersion without a new release is refused by the servers themselves (they upgrade by replacement)", async () => {
    const inPlace = await evaluate({ ...POOL, bbbVersion: "jammy-301" }, IMAGES);
    expect(diff(before, inPlace).changed).toEqual(expect.arrayContaining(["bbb-1-install", "bbb-2-install", "bbb-3-install"]));
    for (const n of [1, 2, 3]) expect(stepInputs(byName(inPlace, `bbb-${n}-install`).inputs.stdin).UPGRADE_IN_PLACE).toBe("false");
});
