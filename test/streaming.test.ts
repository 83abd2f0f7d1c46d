// Streaming under mocks: the streaming host, its firewall (HTTPS from the world, RTMP from nowhere: the workers publish
// on the host itself), its step's inputs (the forward URL and the API password as secrets), its outputs, its flavor's
// check against streaming.workers, and its place in monitoring.
import * as fs from "fs";
import * as path from "path";
import { parse as parseYaml } from "yaml";
import { HLSJS } from "../components/streaming";
import { VIEWER_VENDOR_FILES } from "../components/streaming-config";
import { BASE_CONFIG, byName, evaluate, firewallOf, ofType, Run, stepInputs } from "./harness";

const POOL = { ...BASE_CONFIG, scalelite: true, poolSize: 2 };
const FORWARD = "rtmp://peertube.example.net:1935/live/0f3c9a7e-stream-key";
const inputs = (run: Run, name: string) => stepInputs(byName(run, name).inputs.stdin);
const hostNames = (run: Run) => (run.outputs.hosts as { name: string }[]).map((h) => h.name);

let plain: Run;
let pool: Run;
let single: Run;
beforeAll(async () => {
    plain = await evaluate(BASE_CONFIG);
    pool = await evaluate({ ...POOL, monitoring: true, streaming: { enabled: true, workers: 1, bitrate: 3, forward: FORWARD } }, {}, "prod");
    single = await evaluate({ ...BASE_CONFIG, privacy: "standard", streaming: { enabled: true } });
});

test("all runs evaluate", () => {
    expect([plain, pool, single].map((r) => r.error?.message)).toEqual([undefined, undefined, undefined]);
});

test("off by default: no streaming host, no step, no output", () => {
    expect(hostNames(plain)).not.toContain("streaming");
    expect(ofType(plain, "command:remote:Command").filter((c) => stepInputs(c.inputs.stdin).STEP === "streaming-setup")).toEqual([]);
    expect(Object.keys(plain.outputs).filter((k) => k.startsWith("streaming"))).toEqual([]);
});

test("on, in either topology: a streaming host before the monitoring host, with its name in DNS", () => {
    expect(hostNames(pool)).toEqual(["turn", "scalelite", "bbb-1", "bbb-2", "streaming", "monitoring"]);
    expect(hostNames(single)).toEqual(["turn", "bbb-1", "streaming"]);
    expect((single.outputs.dnsRecords as { name: string }[]).map((r) => r.name)).toContain("streaming.example.org");
});

test("firewall: 80 and 443 from the world, SSH from the operators, the node exporter from monitoring; RTMP from nowhere", () => {
    expect(firewallOf(pool).streaming.map((r) => `${r.ports} ${r.source}`).sort()).toEqual([
        "22 198.51.100.0/24", "22 2001:db8:100::/48", "443 0.0.0.0/0", "443 ::/0", "80 0.0.0.0/0", "80 ::/0", "9100 group bbb-prod-monitoring",
    ]);
    for (const [host, rules] of Object.entries(firewallOf(pool))) expect([host, rules.filter((r) => r.ports === "1935")]).toEqual([host, []]);
});

test("the step: workers, bitrate, images pinned to a release, the forward URL and the API password only in its secret stdin", () => {
    const setup = byName(pool, "streaming-setup");
    const i = inputs(pool, "streaming-setup");
    expect(i).toMatchObject({ FQDN: "streaming.example.org", WORKERS: "1", BITRATE: "3", PRIVACY: "strict", FORCE: "false", FORWARD_URL: FORWARD, API_USER: "bbb-streaming" });
    for (const image of ["WORKER_IMAGE", "CONTROLLER_IMAGE"]) expect(i[image]).toMatch(/^pilos\/bbb-streaming-server:(worker|controller)-1\.1\.1$/);
    expect(setup.secretInputs).toContain("stdin");
    expect(i.API_PASSWORD).toBe(pool.outputs.streamingApiPassword);
    expect(i.API_PASSWORD).toMatch(/^[A-Za-z0-9]{32}$/);
    // The key sits in the stdin alone: not in a generated file, not in the command line.
    for (const [name, value] of Object.entries(i)) if (name !== "FORWARD_URL") expect([name, value]).not.toEqual([name, expect.stringContaining("stream-key")]);
    expect(JSON.stringify(setup.inputs.create)).not.toContain("stream-key");
    expect(inputs(single, "streaming-setup")).toMatchObject({ WORKERS: "2", BITRATE: "4", PRIVACY: "standard", FORWARD_URL: "", KEEP_DAYS: "14" });
});

test("recording follows privacy unless streaming.record says otherwise: strict records nothing unasked", async () => {
    const records = (run: Run) => inputs(run, "streaming-setup").RTMP_CONF.includes("record all;");
    expect(inputs(pool, "streaming-setup").PRIVACY).toBe("strict");
    expect(records(pool)).toBe(false);
    expect(records(single)).toBe(true);
    const asked = await evaluate({ ...BASE_CONFIG, streaming: { enabled: true, record: true, keepDays: 30 } });
    expect([records(asked), inputs(asked, "streaming-setup").KEEP_DAYS]).toEqual([true, "30"]);
    const declined = await evaluate({ ...BASE_CONFIG, privacy: "standard", streaming: { enabled: true, record: false } });
    expect(records(declined)).toBe(false);
});

test("outputs: the viewer origin and the API, its password secret", () => {
    expect(pool.outputs).toMatchObject({ streamingUrl: "https://streaming.example.org/", streamingApiUrl: "https://streaming.example.org/api/" });
    expect(pool.secretOutputs).toContain("streamingApiPassword");
    expect(pool.secretOutputs).not.toContain("streamingUrl");
});

test("monitoring: the node exporter on the streaming host, after its setup; the viewer page probed", () => {
    expect(stepInputs(byName(pool, "streaming-node-exporter").inputs.stdin).LISTEN_IPV4).toBe("10.0.0.7");
    const config = parseYaml(inputs(pool, "monitoring-setup").PROMETHEUS_YML) as { scrape_configs: { job_name: string; static_configs?: { targets: string[] }[] }[] };
    const targets = config.scrape_configs.flatMap((j) => (j.static_configs ?? []).flatMap((c) => c.targets));
    expect(targets).toEqual(expect.arrayContaining(["10.0.0.7:9100", "https://streaming.example.org/"]));
});

test("a flavor too small for streaming.workers is refused with both ways out; the default carries the default", async () => {
    const run = await evaluate({ ...BASE_CONFIG, streaming: { enabled: true, workers: 5 } });
    expect(run.error?.message).toContain("flavors.streaming");
    expect(run.error?.message).toContain("at least 5 vCPUs and 7168 MB RAM for 5 streams (streaming.workers)");
    expect(run.error?.message).toContain("pulumi config set --path streaming.workers");
    expect(run.resources).toEqual([]);
});

test("hls.js: the version and integrity the host checks are the package-lock's, and the files it serves are in that package", () => {
    const lock = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "package-lock.json"), "utf8")) as { packages: Record<string, { version: string; integrity: string }> };
    expect(lock.packages["node_modules/hls.js"]).toMatchObject({ version: HLSJS.version, integrity: HLSJS.integrity });
    for (const file of Object.values(VIEWER_VENDOR_FILES)) expect(fs.existsSync(path.join(__dirname, "..", "node_modules", "hls.js", file))).toBe(true);
});
