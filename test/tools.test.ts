// The offline plan and the firewall diff, on the program's own output for the committed stacks.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { diffFirewalls, renderDiff } from "../scripts/firewall-diff";
import { renderPlan } from "../scripts/plan";
import { evaluate, firewallOf, FirewallRule, Run, stackConfig, stackSecretKeys } from "./harness";

const ROOT = path.join(__dirname, "..");
const rule = (ports: string, protocol = "udp", source = "0.0.0.0/0", family = "IPv4", why = "media"): FirewallRule => ({ ports, protocol, source, family, why });

let dev: Run;
let prod: Run;
let streamingForward: Run;
beforeAll(async () => {
    dev = await evaluate(stackConfig(ROOT, "dev")!, { anyName: true }, "dev");
    prod = await evaluate(stackConfig(ROOT, "prod")!, { anyName: true }, "prod");
    const forward = { ...stackConfig(ROOT, "prod")!, streaming: { enabled: true, workers: 1, forward: "rtmp://live.example.net/app/KEY-77a1" } };
    streamingForward = await evaluate(forward, { anyName: true }, "prod");
});

describe("plan", () => {
    test("the committed stacks evaluate offline, with the private key only a placeholder", () => {
        expect([dev.error, prod.error]).toEqual([undefined, undefined]);
        expect(stackConfig(ROOT, "dev")!.sshPrivateKey).toContain("offline-placeholder");
        expect(stackConfig(ROOT, "staging")).toBeUndefined();
    });

    test("a secret in plain text in the stack file is refused, as pulumi up refuses it (the engine does not list it as secret)", async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "plain-"));
        try {
            const committed = fs.readFileSync(path.join(ROOT, "Pulumi.dev.yaml"), "utf8");
            const dialIn = '  bbb:dialIn:\n    number: "+49 30 1234567"\n    sipProviderCidrs: ["192.0.2.0/24"]\n    gateway: { host: sip.example.net, username: "4930123", password: Pl41n-t3xt }\n';
            const cases: [string, string, string][] = [
                ["plain-sip", committed + dialIn, "dialIn.gateway.password"],
                ["plain-key", committed + "  bbb:sshPrivateKey: |\n    -----BEGIN OPENSSH PRIVATE KEY-----\n    AAAA\n    -----END OPENSSH PRIVATE KEY-----\n", "sshPrivateKey"],
            ];
            for (const [stack, text, key] of cases) {
                fs.writeFileSync(path.join(dir, `Pulumi.${stack}.yaml`), text);
                const run = await evaluate(stackConfig(dir, stack)!, { anyName: true }, stack, stackSecretKeys(dir, stack));
                expect([stack, run.resources.length, run.error?.message]).toEqual([stack, 0, expect.stringContaining(`  ${key}\n    expected: a secret, stored encrypted`)]);
                expect(run.error!.message).not.toContain("Pl41n-t3xt");
            }
            // Encrypted, the same value passes.
            fs.writeFileSync(path.join(dir, "Pulumi.secure.yaml"), committed + dialIn.replace("password: Pl41n-t3xt", "password: { secure: v1:abc }"));
            expect((await evaluate(stackConfig(dir, "secure")!, { anyName: true }, "secure", stackSecretKeys(dir, "secure"))).error).toBeUndefined();
        } finally {
            fs.rmSync(dir, { recursive: true });
        }
    });

    test("shows hosts, each host's firewall with the reason of every rule, records, steps in order, outputs", () => {
        const text = renderPlan("prod", prod);
        expect(text).toMatch(/^# Plan for stack prod: 8 hosts, \d+ resources/);
        expect(text).toContain("| scalelite | scalelite | scalelite.example.org |  | m1.large | 40 | 20 GB, protected |");
        expect(text).toMatch(/\| bbb-2 \| bbb \| bbb-2\.example\.org \| jammy-300 \| m1\.xlarge \| 80, a clone of golden volume ([0-9a-f]{12}) \|  \|/);
        expect(text).toMatch(/## Golden volumes \(bake\)\n\n.*\n.*\n\| [0-9a-f]{12} \| bbb-bake-jammy-300-26ce2d16-\S+ \| BigBlueButton jammy-300, .* \| bbb-1, bbb-2, bbb-3 \| baked now by bake-[0-9a-f]{12}-builder/);
        expect(text).toContain("### turn\n");
        expect(text).toContain("| 32769-65535 | udp | 0.0.0.0/0 | IPv4 | TURN relay range (coturn min-port/max-port) |");
        expect(text).toContain("| 22 | tcp | 198.51.100.0/24 | IPv4 | SSH for the install steps and the operator |");
        expect(text).toContain("| bbb-3.example.org | A | public IPv4 of bbb-3 |");
        // A first deploy bakes: the servers come once the builder's bake is done (their disks are clones of its).
        expect(text).toMatch(/\| 1 \| bake-[0-9a-f]{12}-builder-ready \| wait-ready \| {2}\| {2}\| {2}\|/);
        expect(text).toMatch(/\| 2 \| bake-([0-9a-f]{12})-builder-bake \| bbb-bake \| {2}\| bake-\1-builder-ready \| {2}\|/);
        expect(text).toMatch(/\| 3 \| bbb-1-ready \| wait-ready \| bbb-1 \| bake-[0-9a-f]{12}-builder-bake \| {2}\|/);
        expect(text).toContain("| 4 | bbb-1-seed | bbb-seed | bbb-1 | bbb-1-ready |  |");
        expect(text).toContain("| 5 | bbb-1-install | bbb-installer | bbb-1 | bbb-1-seed, bbb-1-maintenance |  |");
        expect(text).toContain("| 2 | bbb-3-maintenance | scalelite-node | scalelite | scalelite-ready |  |");
        expect(text).toMatch(/\| 3 \| bbb-3-retire \| scalelite-node \| scalelite \| scalelite-setup, bake-[0-9a-f]{12}-builder-bake \| on removal too \|/);
        expect(text).toContain("| 8 | bbb-3-registration | scalelite-node | scalelite | bbb-3-data-policy, bbb-3-retire | on removal too |");
    });

    test("shows the streaming host, its rules (no RTMP from anywhere) and what a stream costs, never the forward target", () => {
        const text = renderPlan("prod", prod);
        expect(text).toContain("| streaming | streaming | streaming.example.org |  | m1.large | 80 |");
        const firewall = text.slice(text.indexOf("### streaming\n"), text.indexOf("\n### ", text.indexOf("### streaming\n") + 1));
        expect(firewall).toContain("| 443 | tcp | 0.0.0.0/0 | IPv4 | HTTPS: the live streams' viewer page and HLS (no login), the streaming API (its password) |");
        expect(firewall).not.toContain("1935");
        expect(text).toContain("## Streaming\n");
        expect(text).toContain("| streams at once | 2 (streaming.workers; each worker: 2 vCPUs, 2 GB) |");
        expect(text).toContain("| per stream | 4 Mbit/s from the worker; each viewer 4 Mbit/s more: about 250 viewers a Gbit/s of the host's bandwidth |");
        expect(text).toContain("| RTMP | the workers publish to nginx on 127.0.0.1:1935 (no firewall rule: nothing else reaches it) |");
        expect(text).toContain("| streamingApiPassword | [secret] |");
        const forwarded = renderPlan("prod", streamingForward);
        expect(forwarded).toContain("| forwarded to | streaming.forward (secret) |");
        expect(forwarded).not.toContain("KEY-77a1");
    });

    test("the README's excerpt of the prod plan is what npm run plan prints today", () => {
        const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
        const excerpt = readme.slice(readme.indexOf("````markdown\n# Plan for stack prod"), readme.indexOf("\n````\n", readme.indexOf("# Plan for stack prod")));
        const lines = renderPlan("prod", prod).split("\n");
        const shown = excerpt.split("\n").slice(1).filter((line) => line !== "" && !line.startsWith("(..."));
        expect(shown.length).toBeGreaterThan(40);
        // A bake's key follows the bake's scripts (lib.sh too): the excerpt keeps the one it was written with.
        const keyless = (line: string) => line.replace(/\b[0-9a-f]{12}\b/g, "<key>").replace(/(-imageuui-)[0-9a-f]{8}\b/g, "$1<key>");
        const printed = new Set(lines.map(keyless));
        expect(shown.filter((line) => !printed.has(keyless(line)))).toEqual([]);
    });

    test("the baking output points at the golden volumes' section only where there is one (a single server bakes nothing)", () => {
        expect(renderPlan("prod", prod)).toContain("| baking | (see Golden volumes) |");
        const single = renderPlan("dev", dev);
        expect(single).not.toContain("## Golden volumes");
        expect(single).toContain('| baking | {"servers":{"bbb-1":"image"},"goldens":{}} |');
    });

    test("never shows a secret: secret outputs are [secret]", () => {
        const text = renderPlan("prod", prod);
        expect(text).toContain("| bbbSecret | [secret] |");
        expect(text).toContain("| consumerSecrets | [secret] |");
        expect(text).toContain("| integrations | [secret] |");
        for (const secret of [prod.outputs.bbbSecret as string, ...Object.values(prod.outputs.consumerSecrets as Record<string, string>)]) {
            expect(text).not.toContain(secret);
        }
    });
});

describe("firewall diff", () => {
    test("nothing changed: no change", () => {
        expect(diffFirewalls(firewallOf(prod), firewallOf(prod))).toEqual([]);
        expect(renderDiff("prod", "main", [])).toContain("No change");
    });

    test("a widened range is one rule removed and one added, on every host of the role, grouped", () => {
        const before = { "bbb-1": [rule("16384-32768")], "bbb-2": [rule("16384-32768")], turn: [rule("3478")] };
        const after = { "bbb-1": [rule("16384-40000")], "bbb-2": [rule("16384-40000")], turn: [rule("3478")] };
        const changes = diffFirewalls(before, after);
        expect(changes).toEqual([{ hosts: ["bbb-1", "bbb-2"], added: [rule("16384-40000")], removed: [rule("16384-32768")] }]);
        expect(renderDiff("prod", "main", changes).split("\n").slice(-2)).toEqual([
            "| bbb-1, bbb-2 | ~~removed~~ | 16384-32768 | udp | 0.0.0.0/0 | IPv4 | media |",
            "| bbb-1, bbb-2 | **added** | 16384-40000 | udp | 0.0.0.0/0 | IPv4 | media |",
        ]);
    });

    test("a new reason for the same rule is no change: what a rule lets in is what counts", () => {
        expect(diffFirewalls({ turn: [rule("80", "tcp", "0.0.0.0/0", "IPv4", "old")] }, { turn: [rule("80", "tcp", "0.0.0.0/0", "IPv4", "new")] })).toEqual([]);
    });

    test("a base without the stack (or without the host) has every rule added", () => {
        const changes = diffFirewalls({}, firewallOf(dev));
        expect(changes.map((c) => c.hosts).sort()).toEqual([["bbb-1"], ["turn"]]);
        expect(changes.every((c) => c.removed.length === 0)).toBe(true);
    });

    test("dev against prod: the prod pool's extra hosts, and the exporter ports its monitoring opens on the hosts dev has too", () => {
        const changes = diffFirewalls(firewallOf(dev), firewallOf(prod));
        // The bake's builder (a first deploy of prod bakes) is in the BBB servers' group while it bakes.
        expect(changes.map((c) => c.hosts.join(",").replace(/^bake-[0-9a-f]{12}-builder,/, "<builder>,")).sort()).toEqual(["<builder>,bbb-2,bbb-3", "bbb-1", "monitoring,scalelite,greenlight,streaming", "turn"]);
        const gained = (host: string) => changes.find((c) => c.hosts.includes(host))!;
        expect(gained("bbb-1").added.map((r) => `${r.ports} ${r.source}`).sort()).toEqual(["9100 group bbb-prod-monitoring", "9688 group bbb-prod-monitoring"]);
        expect(gained("turn").added.map((r) => `${r.ports} ${r.source}`)).toEqual(["9100 group bbb-prod-monitoring"]);
        expect(changes.every((c) => c.removed.length === 0)).toBe(true);
    });
});

describe("--help", () => {
    test.each([
        ["plan", () => require("../scripts/plan").main(["--help"]), "usage: npm run plan -- --stack <name> [--ipv6]"],
        ["impact", () => require("../scripts/impact").main(["-h"]), "usage: npm run impact -- --stack <name> [--base <git-ref>]"],
        ["firewall:diff", () => require("../scripts/firewall-diff").main(["--help"]), "usage: npm run firewall:diff -- --stack <name> [--base <git-ref>]"],
        ["coverage", () => require("../scripts/coverage").main(["--help"]), "usage: npm run coverage [-- <script.sh> ...]"],
        ["stream", () => require("../scripts/stream").main(["--help"]), "usage: npm run stream -- start|stop|status --stack <name> --meeting <meeting id> [options]"],
        ["schema", () => require("../scripts/schema").main(["--help"], "/nonexistent"), "usage: npm run schema [-- --check]"],
    ])("%s prints its usage and exits 0, running nothing", async (_tool, run, usage) => {
        const printed: string[] = [];
        const log = jest.spyOn(console, "log").mockImplementation((text: string) => void printed.push(text));
        try {
            expect(await run()).toBe(0);
        } finally {
            log.mockRestore();
        }
        expect(printed).toHaveLength(1);
        expect(printed[0].split("\n")[0]).toBe(usage);
    });

    test("bench answers --help without running the benchmark (which runs only as the program, not when imported)", () => {
        const printed: string[] = [];
        const log = jest.spyOn(console, "log").mockImplementation((text: string) => void printed.push(text));
        try {
            require("../scripts/bench").entry(["--help"]);
        } finally {
            log.mockRestore();
        }
        expect(printed).toHaveLength(1);
        expect(printed[0].split("\n")[0]).toBe("usage: npm run bench");
    });
});
