// npm run impact: what `pulumi up` does to each host, and what is at stake, for real changes of the committed
// stack files (the program evaluated under mocks before and after); and the commands impact and firewall:diff
// run end to end in a temporary git repository.
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { assessImpact, Impact, NO_RUN, renderImpact } from "../scripts/impact";
import { Tree, workingTree, writeTree } from "../scripts/trees";
import { evaluateProgram, inventoryOf, ProgramModules, Run, stackConfig } from "./harness";

const ROOT = path.join(__dirname, "..");
const PROD = stackConfig(ROOT, "prod")!;
const DEV = stackConfig(ROOT, "dev")!;

/** The prod stack file with one change each, as an operator would make it. */
const CHANGES: Record<string, Record<string, unknown>> = {
    "flavors.bbb and flavors.scalelite": { flavors: { bbb: "m1.2xlarge", scalelite: "m1.xlarge" } },
    "volumeSizes.bbb and volumeSizes.turn": { volumeSizes: { bbb: 100, turn: 30 } },
    "image and volumeSizes.turn": { image: "Ubuntu 22.04 2026-11", volumeSizes: { bbb: 80, turn: 30 } },
    "poolSize lowered": { poolSize: 2 },
    "secretGeneration raised": { secretGeneration: 2 },
    "privacy standard": { privacy: "standard" },
    "dataVolumeSizes: scalelite grown, greenlight shrunk": { dataVolumeSizes: { scalelite: 30, greenlight: 5 } },
    "greenlight off": { greenlight: false },
};

/**
 * Every run of this file in one module registry, one after the other: loading the program costs more than
 * evaluating it, and a run leaves nothing behind for the next (the test "nothing changed" would see it).
 */
let modules: ProgramModules;
/** The stack's run as its last update left it: deployed, then updated once more (a bake's builder gone). */
const deployed = async (config: Record<string, unknown>, stack: string) => {
    const first = await evaluateProgram(modules, config, { anyName: true }, stack);
    return evaluateProgram(modules, config, { anyName: true, inventory: inventoryOf(first) }, stack);
};

let prod: Run;
const after: Record<string, Run> = {};
let devBase: Run | undefined;
const devRun = async () => (devBase ??= await deployed(DEV, "dev"));
/** A change of the deployed stack: the next update, in the cloud the last one left. */
const evaluate = (config: Record<string, unknown>, stack = "prod") => {
    const deployedRun = stack === "prod" ? prod : devBase;
    return evaluateProgram(modules, config, { anyName: true, inventory: deployedRun && inventoryOf(deployedRun) }, stack);
};
beforeAll(async () => {
    jest.isolateModules(() => {
        modules = require("../scripts/offline").loadProgram();
    });
    prod = await deployed(PROD, "prod");
    after["nothing"] = await evaluate(PROD);
    for (const [name, change] of Object.entries(CHANGES)) after[name] = await evaluate({ ...PROD, ...change });
}, 60000);

const impactOf = (change: string): Impact => assessImpact(prod, after[change]);
const report = (change: string) => renderImpact("prod", "HEAD", impactOf(change));
/** The table rows of a report, as a user reads them. */
const rows = (text: string) => text.split("\n").filter((line) => line.startsWith("| ") && !line.startsWith("| host |") && !line.startsWith("| ---"));

test("every changed stack evaluates", () => {
    expect(Object.entries(after).filter(([, run]) => run.error).map(([name, run]) => `${name}: ${run.error!.message}`)).toEqual([]);
});

test("nothing changed: nothing happens on any host, exit code 0", () => {
    const impact = impactOf("nothing");
    expect(impact.level).toBe(0);
    expect(impact.hosts.every((h) => h.rows.length === 0)).toBe(true);
    expect(report("nothing")).toBe("### Impact on stack `prod` against `HEAD`\n\nNothing happens on any host. Exit code 0.");
});

test("flavors: Scalelite is resized (it reboots); a pool's BBB servers keep theirs (a new flavor is for new servers), exit code 1", () => {
    const change = "flavors.bbb and flavors.scalelite";
    const text = report(change);
    expect([impactOf(change).level, impactOf(change).meetingsAtRisk]).toEqual([1, []]);
    expect(rows(text)).toEqual([
        "| scalelite | scalelite | resize the VM: flavor m1.large → m1.xlarge | scalelite is down while the VM reboots |",
        "| bbb-1, bbb-2, bbb-3 | bbb | nothing on the VM (ignoreChanges): it keeps its flavor m1.xlarge; new VMs get m1.2xlarge |  |",
    ]);
    expect(text).toContain("Nothing happens on monitoring, turn, greenlight, streaming.");
});

test("volumeSizes: a force-new field of the boot volume replaces TURN's VM, its steps folded in; the BBB servers keep theirs", () => {
    const change = "volumeSizes.bbb and volumeSizes.turn";
    expect([impactOf(change).level, impactOf(change).meetingsAtRisk]).toEqual([1, []]);
    const text = rows(report(change));
    expect(text).toContain("| bbb-1, bbb-2, bbb-3 | bbb | nothing on the VM (ignoreChanges): it keeps its boot volume of 80 GB; new VMs get 100 GB |  |");
    const turn = text.filter((r) => r.startsWith("| turn |"));
    expect(turn).toHaveLength(1);
    expect(turn[0]).toMatch(/^\| turn \| turn \| replace the VM \(boot volume 20 → 30 GB\), then run every step on the new one \| TURN-relayed media stops until coturn runs on the new VM; what is on the boot volume is lost/);
    expect(turn[0]).not.toContain("image");
});

test("a replaced VM is made from today's image: the engine checks a replacement against the program's inputs, ignoreChanges aside", () => {
    const text = rows(report("image and volumeSizes.turn"));
    const turn = text.filter((r) => r.startsWith("| turn |"));
    expect(turn).toHaveLength(1);
    expect(turn[0]).toContain("the new VM is made from today's image");
    expect(text).toContain("| scalelite | scalelite | nothing on the VM (ignoreChanges): it keeps its image; new VMs get the new image |  |");
    // The pool's servers boot from clones of the golden volume (no image of their own): nothing happens on them,
    // and the new image is baked into a new golden volume for new servers.
    expect(text.filter((r) => r.includes("| bbb |"))).toEqual([]);
    expect(text).toContainEqual(expect.stringMatching(/^\| bake-[0-9a-f]{12}-builder \| bake-builder \| new host: create the VM, then run every step on it \|/));
    expect(report("image and volumeSizes.turn")).toMatch(
        /- bake golden volume `bake-[0-9a-f]{12}` \(BigBlueButton jammy-300, bbb-install\.sh \S+, on Ubuntu 22\.04 2026-11 \(\S+\)\): a builder VM installs BigBlueButton's packages \(about 30 min\), new servers boot from clones of it/,
    );
});

test("the single topology: a new flavor resizes bbb-1 (it reboots), a new boot volume size replaces it: meetings at risk, exit code 2", async () => {
    const dev = await devRun();
    const resized = assessImpact(dev, await evaluate({ ...DEV, flavors: { bbb: "m1.xlarge" } }, "dev"));
    expect([resized.level, resized.meetingsAtRisk]).toEqual([2, ["bbb-1"]]);
    const [row, ...more] = rows(renderImpact("dev", "HEAD", resized));
    expect(more).toEqual([]);
    expect(row).toMatch(/^\| bbb-1 \| bbb \| resize the VM: flavor m1\.large → m1\.xlarge \| .*the VM reboots/);
    const replaced = renderImpact("dev", "HEAD", assessImpact(dev, await evaluate({ ...DEV, volumeSizes: { bbb: 100 } }, "dev")));
    expect(replaced).toContain("**Meetings at risk** on 1 of 1 BigBlueButton servers: bbb-1. Exit code 2.");
    expect(rows(replaced)).toEqual([expect.stringMatching(/^\| bbb-1 \| bbb \| replace the VM \(boot volume 80 → 100 GB\), then run every step on the new one \| .*the VM is replaced.*; what is on the boot volume is lost/)]);
});

test("a single server's Greenlight on a new image, or logging for another privacy, is recreated: meetings go on", async () => {
    const withGreenlight = await evaluate({ ...DEV, greenlight: true }, "dev");
    const upgraded = assessImpact(withGreenlight, await evaluate({ ...DEV, greenlight: true, greenlightVersion: "v3.8.3" }, "dev"));
    expect([upgraded.level, upgraded.meetingsAtRisk]).toEqual([1, []]);
    expect(rows(renderImpact("dev", "HEAD", upgraded))).toEqual([
        "| bbb-1 | bbb | re-run `install` (bbb-installer): GREENLIGHT_VERSION changed |  |",
        "| bbb-1 | bbb | re-run `configure` (bbb-configure): GREENLIGHT_VERSION, INSTALL_ID changed | Greenlight's containers are recreated (Greenlight pauses; running meetings go on) |",
        "| bbb-1 | bbb | re-run `data-policy` (bbb-data-policy): INSTALL_ID changed |  |",
    ]);
});

test("a VM behind a meetings check (a local command it depends on, components/guard.ts) changes when idle, or now when forced", async () => {
    const dev = await devRun();
    const flavor = { flavors: { bbb: "m1.xlarge" } };
    const guarded = await evaluate({ ...DEV, ...flavor }, "dev");
    const guard = guarded.resources.find((r) => r.type === "command:local:Command" && guarded.resources.find((vm) => vm.name === "bbb-1-vm")!.dependsOn.includes(r.urn));
    // Without such a check (older programs), the reboot simply ends the meetings.
    const unguarded = { ...guarded, resources: guarded.resources.filter((r) => r !== guard).map((r) => ({ ...r, dependsOn: r.dependsOn.filter((u) => u !== guard?.urn) })) };
    expect(rows(renderImpact("dev", "HEAD", assessImpact(dev, unguarded)))).toEqual([
        "| bbb-1 | bbb | resize the VM: flavor m1.large → m1.xlarge | **meetings on it end**: the VM reboots |",
    ]);
    if (!guard) return; // the program has no meetings check (yet)
    expect(rows(renderImpact("dev", "HEAD", assessImpact(dev, guarded)))[0]).toMatch(/\| when idle: the VM reboots; a meetings check first refuses while meetings run \(forceReinstall ends them\) \|$/);
    const forced = await evaluate({ ...DEV, ...flavor, forceReinstall: true }, "dev");
    expect(rows(renderImpact("dev", "HEAD", assessImpact(dev, forced))).find((r) => r.includes("resize the VM"))).toMatch(
        /\| \*\*meetings on it end\*\*: the VM reboots \(forceReinstall is on\) \|$/,
    );
});

test("poolSize lowered in prod: deleting bbb-3's protected VM is refused, and so is its removal from Scalelite; nothing else of it is listed", () => {
    const impact = impactOf("poolSize lowered");
    expect([impact.level, impact.meetingsAtRisk]).toEqual([1, []]);
    expect(rows(report("poolSize lowered")).filter((r) => r.startsWith("| bbb-3 |"))).toEqual([
        "| bbb-3 | bbb | nothing: deleting the VM is refused, it is protected (the prod stack) | `pulumi up` stops there; to go ahead, run `pulumi up` with allowDestructiveChanges: true first (it lifts the protection), then this change |",
    ]);
});

test("poolSize lowered once allowDestructiveChanges lifted the protection: bbb-3 leaves Scalelite (refused while meetings run, forceRemove off) and is deleted; TURN's peers follow", async () => {
    const allowed = { ...PROD, allowDestructiveChanges: true };
    const impact = assessImpact(await evaluate(allowed), await evaluate({ ...allowed, poolSize: 2 }));
    const report = (i: Impact) => renderImpact("prod", "HEAD", i);
    expect([impact.level, impact.meetingsAtRisk]).toEqual([2, ["bbb-3"]]);
    const text = rows(report(impact));
    expect(text).toContain(
        "| bbb-3 | bbb | removal from Scalelite: cordoned, then removed once it hosts no meeting | while meetings run on it, `pulumi up` stops there and the server stays, cordoned (forceRemove is off) |",
    );
    expect(text).toContain("| bbb-3 | bbb | delete the host: its VM and boot volume | only once that removal succeeded |");
    expect(text.find((r) => r.startsWith("| turn |"))).toMatch(/re-run `coturn` \(turn-coturn\): \w+ changed \| coturn restarts if its configuration changed: relayed calls reconnect \|$/);
    expect(text.filter((r) => /^\| bbb-[12]\b/.test(r))).toEqual([]);
});

test("secretGeneration raised: every server gets a new SECRET and restarts when idle", () => {
    const impact = impactOf("secretGeneration raised");
    expect(impact.level).toBe(2);
    expect(impact.meetingsAtRisk).toEqual(["bbb-1", "bbb-2", "bbb-3"]);
    const text = report("secretGeneration raised");
    expect(rows(text)).toContain("| bbb-1, bbb-2, bbb-3 | bbb | re-run `configure` (bbb-configure): SECRET changed | restart BigBlueButton when idle (new secret or properties) |");
    expect(rows(text).find((r) => r.includes("`registration`"))).toContain("(scalelite-node, on scalelite): CHANGE, SECRET changed");
    expect(text).toContain("- new secrets `bbb-1-secret`, `bbb-2-secret`, `bbb-3-secret` (`keepers` changed)");
    expect(impact.hosts.filter((h) => h.rows.length > 0).map((h) => h.host)).toEqual(["bbb-1", "bbb-2", "bbb-3"]);
});

test("privacy: BigBlueButton and bbb-webrtc-sfu restart when idle, coturn's logging changes", () => {
    const text = rows(report("privacy standard"));
    expect(text).toContain("| bbb-1, bbb-2, bbb-3 | bbb | re-run `configure` (bbb-configure): PROPERTIES changed | restart BigBlueButton when idle (new secret or properties) |");
    expect(text.find((r) => r.includes("`data-policy`"))).toMatch(/PRIVACY changed \| restart bbb-webrtc-sfu when idle/);
    expect(text.find((r) => r.startsWith("| turn |"))).toContain("re-run `coturn` (turn-coturn): LOGGING changed");
    expect(impactOf("privacy standard").level).toBe(2);
});

test("dataVolumeSizes: a volume grows online; one made smaller is refused by Cinder (an update in provider v1.54.1), nothing lost", () => {
    const change = "dataVolumeSizes: scalelite grown, greenlight shrunk";
    const impact = impactOf(change);
    expect([impact.level, impact.meetingsAtRisk, impact.dataAtRisk]).toEqual([1, [], []]);
    const text = rows(report(change));
    expect(text).toContain("| scalelite | scalelite | grow the data volume: 20 → 30 GB | online; its data is kept |");
    expect(text).toContain(
        "| greenlight | greenlight | shrink the data volume: 10 → 5 GB | Cinder cannot shrink a volume: `pulumi up` fails at it and nothing is lost; set the size back |",
    );
    // Only the two hosts with the volumes; their setup step may run again for the new size, but nothing restarts.
    expect(text.filter((r) => !/^\| (scalelite|greenlight) \|/.test(r))).toEqual([]);
    expect(text.filter((r) => /restart|re-created|meetings/.test(r))).toEqual([]);
    expect(report(change)).toContain("Steps run again or hosts change; no meeting is at risk. Exit code 1.");
});

test("a data volume that leaves the program: deleted, and said to be protected (pulumi up stops) or DATA LOST", () => {
    const impact = impactOf("greenlight off");
    expect([impact.level, impact.dataAtRisk]).toEqual([2, ["greenlight-data"]]);
    const text = rows(report("greenlight off"));
    expect(text).toContain("| greenlight | greenlight | delete the data volume (10 GB) | protected: `pulumi up` refuses and stops there (set `protectData: false` first, after a snapshot, to let it go) |");
    const unprotected = assessImpact(
        { ...prod, resources: prod.resources.map((r) => ({ ...r, protect: false })) },
        after["greenlight off"],
    );
    expect(renderImpact("prod", "HEAD", unprotected)).toContain("| greenlight | greenlight | delete the data volume (10 GB) | **DATA LOST**: it is not protected |");
});

test("a base without the stack: every host is new, exit code 1", () => {
    const impact = assessImpact(NO_RUN, prod);
    expect(impact.level).toBe(1);
    expect(impact.hosts.map((h) => [h.host, h.rows.map((r) => r.does)])).toContainEqual(["bbb-1", ["new host: create the VM, then run every step on it"]]);
    expect(impact.hosts.find((h) => h.host === "scalelite")!.rows.map((r) => r.does)).toEqual([
        "new host: create the VM, then run every step on it",
        "new data volume (20 GB, protected), attached to the VM",
    ]);
});

test("the single topology: a new secretGeneration is a new bbbSecret, which consumers need", async () => {
    const [dev, rotated] = [await devRun(), await evaluate({ ...DEV, secretGeneration: 2 }, "dev")];
    const text = renderImpact("dev", "HEAD", assessImpact(dev, rotated));
    expect(rows(text)).toEqual(["| bbb-1 | bbb | re-run `configure` (bbb-configure): SECRET changed | restart BigBlueButton when idle (new secret or properties) |"]);
    expect(text).toContain("- new secrets `api-secret` (`keepers` changed): outputs `bbbSecret`, `consumerSecrets`, `integrations` change: consumers need the new values");
});

test("never shows a secret: step inputs are named, not shown", () => {
    const secrets = [prod.outputs.bbbSecret as string, ...Object.values(prod.outputs.consumerSecrets as Record<string, string>)];
    const nodeSecrets = prod.resources.filter((r) => /^bbb-\d+-secret$/.test(r.name)).map((r) => r.outputs.result as string);
    expect(nodeSecrets).toHaveLength(3);
    for (const change of Object.keys(after)) {
        const text = report(change);
        for (const secret of [...secrets, ...nodeSecrets, "ab".repeat(32)]) expect(text).not.toContain(secret);
    }
});

test("the README's example is what npm run impact prints for poolSize lowered today", () => {
    const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    const start = readme.indexOf("````markdown\n### Impact on stack `prod`");
    expect(start).toBeGreaterThan(0);
    const shown = readme.slice(start + "````markdown\n".length, readme.indexOf("\n````", start));
    expect(shown).toBe(report("poolSize lowered"));
});

describe("the commands, in a temporary git repository", () => {
    let repo: string;
    beforeAll(() => {
        repo = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-impact-"));
        // The program and the stack files as committed sources, and the tools transpiled into bin/ (as tsc would).
        const sources: Tree = new Map([...workingTree(ROOT), ["Pulumi.yaml", fs.readFileSync(path.join(ROOT, "Pulumi.yaml"))]]);
        for (const [name, content] of sources) {
            fs.mkdirSync(path.dirname(path.join(repo, name)), { recursive: true });
            fs.writeFileSync(path.join(repo, name), content);
        }
        fs.writeFileSync(path.join(repo, ".gitignore"), "bin/\nnode_modules\n");
        const tools = fs.readdirSync(path.join(ROOT, "scripts")).filter((f) => f.endsWith(".ts"));
        const components = [...sources.keys()].filter((name) => name.startsWith("components/"));
        writeTree(
            new Map([
                ...tools.map((f): [string, Buffer] => [`bin/scripts/${f}`, fs.readFileSync(path.join(ROOT, "scripts", f))]),
                ...components.map((name): [string, Buffer] => [`bin/${name}`, sources.get(name)!]),
            ]),
            repo,
        );
        const git = (...args: string[]) => require("child_process").execFileSync("git", args, { cwd: repo, stdio: "pipe" });
        git("init", "-q");
        git("add", "-A");
        git("-c", "user.name=test", "-c", "user.email=test@example.org", "commit", "-q", "-m", "base");
        // The change under review: a bigger Scalelite host, TURN's older relay range, and a comment in TURN's script.
        fs.appendFileSync(path.join(repo, "Pulumi.prod.yaml"), "  bbb:flavors:\n    scalelite: m1.xlarge\n  bbb:turnRelayPorts: 49152-65535\n");
        fs.appendFileSync(path.join(repo, "scripts", "remote", "turn-coturn.sh"), "# reviewed\n");
    });
    afterAll(() => fs.rmSync(repo, { recursive: true, force: true }));

    const run = (tool: string, ...args: string[]) =>
        new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
            const child = spawn(process.execPath, [path.join(repo, "bin", "scripts", `${tool}.js`), ...args], { cwd: repo });
            const out = { stdout: "", stderr: "" };
            child.stdout.on("data", (d) => (out.stdout += d));
            child.stderr.on("data", (d) => (out.stderr += d));
            child.on("close", (status) => resolve({ status, ...out }));
        });

    test("impact against HEAD (the default): the resize, TURN's new relay range and script, exit code 1; firewall:diff: the relay rules, exit code 1", async () => {
        const [impact, firewall] = await Promise.all([run("impact", "--stack", "prod"), run("firewall-diff", "--stack", "prod", "--base", "HEAD")]);
        expect([impact.status, impact.stderr]).toEqual([1, ""]);
        expect(impact.stdout).toContain("### Impact on stack `prod` against `HEAD`");
        expect(impact.stdout).toContain("| scalelite | scalelite | resize the VM: flavor m1.large → m1.xlarge | scalelite is down while the VM reboots |");
        expect(impact.stdout).toMatch(/\| turn \| turn \| re-run `coturn` \(turn-coturn\): RELAY_MIN changed; its script changed \| coturn restarts/);
        expect([firewall.status, firewall.stderr]).toEqual([1, ""]);
        expect(firewall.stdout).toContain("| turn | ~~removed~~ | 32769-65535 | udp | 0.0.0.0/0 | IPv4 | TURN relay range (coturn min-port/max-port) |");
        expect(firewall.stdout).toContain("| turn | **added** | 49152-65535 | udp | ::/0 | IPv6 | TURN relay range (coturn min-port/max-port) |");
    }, 60000);

    test("errors exit 3: no --stack, a stack that does not exist, a ref that does not exist", async () => {
        const [usage, missing, ref] = await Promise.all([
            run("impact"),
            run("impact", "--stack", "staging"),
            run("impact", "--stack", "prod", "--base", "no-such-ref"),
        ]);
        expect([usage.status, usage.stderr]).toEqual([3, "usage: npm run impact -- --stack <name> [--base <git-ref>]\n"]);
        expect([missing.status, missing.stderr]).toEqual([3, "impact: the working tree has no Pulumi.staging.yaml\n"]);
        expect(ref.status).toBe(3);
        expect(ref.stderr).toMatch(/^impact: /);
    }, 30000);
});

test("alert e-mails configured: the monitoring host's step re-runs for its new inputs alone (its script is unchanged), nothing else, exit code 1", async () => {
    const alerts = { email: "ops@example.org", smtp: { server: "smtp.example.org:587", from: "bbb-alerts@example.org", username: "bbb-alerts", password: "pw-Secret-1" } };
    const impact = assessImpact(prod, await evaluate({ ...PROD, alerts }));
    const changed = impact.hosts.filter((h) => h.rows.length > 0);
    expect(changed.map((h) => h.host)).toEqual(["monitoring"]);
    expect(changed[0].rows.map((r) => r.does)).toEqual(["re-run `setup` (monitoring-setup): ALERTMANAGER_YML, SMTP_PASSWORD changed"]);
    expect(impact.level).toBe(1);
});

test("Greenlight turned off: its restic password goes with it, which leaves its kept backups unreadable: exit code 2, with the way to save it", async () => {
    const impact = assessImpact(prod, await evaluate({ ...PROD, greenlight: false }));
    expect(impact.stack).toContainEqual({
        does: "delete `greenlight-backup-password`: the restic password of greenlight's backups",
        stake: "**the backups its Swift container keeps can no longer be read**: save it first (`pulumi stack output --show-secrets backupPasswords`)",
        level: 2,
    });
    expect(impact.level).toBe(2);
});

test("backups turned off: each host's container is forgotten, kept with its data; its step turns the timer off (ENABLED false); exit code 1", async () => {
    const impact = assessImpact(prod, await evaluate({ ...PROD, backups: { enabled: false } }));
    const rows = impact.hosts.find((h) => h.host === "scalelite")!.rows.map((r) => r.does);
    expect(rows).toEqual([
        "forget `backups` (Container: kept in the cloud, with its data), delete `backup-credential` (ApplicationCredential)",
        expect.stringMatching(/^re-run `backup` \(backup-setup\): .*ENABLED.* changed/),
    ]);
    expect(impact.stack.filter((r) => r.level === 2)).toEqual([]);
    expect(impact.level).toBe(1);
});
