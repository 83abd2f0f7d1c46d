// Monitoring and backups under mocks: the monitoring host, the exporters on every host and the firewall rules
// that let the monitoring host alone reach them; the backups' Swift containers, credentials and steps.
import { parse as parseYaml } from "yaml";
import { NEVER_WORLD_PORTS } from "../components/ports";
import { BASE_CONFIG, byName, evaluate, firewallOf, MOCK_KEYSTONE, ofType, Run, stepInputs, waitsFor } from "./harness";

const POOL = { ...BASE_CONFIG, scalelite: true, poolSize: 2, greenlight: true };
const ALERTS = { email: "ops@example.org", smtp: { server: "smtp.example.org:587", from: "bbb-alerts@example.org", username: "bbb-alerts", password: "smtp-pw-Secret-42" } };
const ports = (run: Run, host: string, port: string) =>
    firewallOf(run)[host].filter((r) => r.ports === port).map((r) => `${r.protocol} ${r.source} ${r.family}`).sort();
const inputs = (run: Run, name: string) => stepInputs(byName(run, name).inputs.stdin);
const steps = (run: Run, script: string) => ofType(run, "command:remote:Command").filter((c) => stepInputs(c.inputs.stdin).STEP === script).map((c) => c.name).sort();

let plain: Run;
let pool: Run;
let single: Run;
beforeAll(async () => {
    plain = await evaluate(POOL);
    pool = await evaluate({ ...POOL, monitoring: true, alerts: ALERTS, drain: ["bbb-2"] }, {}, "prod");
    single = await evaluate({ ...BASE_CONFIG, monitoring: true, greenlight: true, privacy: "standard", recordings: { enabled: true } });
});

test("all runs evaluate", () => {
    expect([plain, pool, single].map((r) => r.error?.message)).toEqual([undefined, undefined, undefined]);
});

describe("monitoring", () => {
    test("off by default: no monitoring host, no exporter, no exporter port open", () => {
        expect((plain.outputs.hosts as { name: string }[]).map((h) => h.name)).not.toContain("monitoring");
        expect([...steps(plain, "node-exporter"), ...steps(plain, "bbb-exporter"), ...steps(plain, "monitoring-setup")]).toEqual([]);
        for (const [host, rules] of Object.entries(firewallOf(plain))) expect([host, rules.filter((r) => ["9100", "9688"].includes(r.ports))]).toEqual([host, []]);
        expect(plain.outputs.grafanaUrl).toBeUndefined();
    });

    test("on: a monitoring host, a node exporter on every host and the BigBlueButton exporter on every BBB server", () => {
        const hosts = (pool.outputs.hosts as { name: string; role: string }[]).map((h) => h.name);
        expect(hosts).toEqual(["turn", "scalelite", "bbb-1", "bbb-2", "greenlight", "monitoring"]);
        expect(steps(pool, "node-exporter")).toEqual(hosts.map((h) => `${h}-node-exporter`).sort());
        expect(steps(pool, "bbb-exporter")).toEqual(["bbb-1-bbb-exporter", "bbb-2-bbb-exporter"]);
        expect(steps(pool, "monitoring-setup")).toEqual(["monitoring-setup"]);
    });

    test("the exporters listen on each host's fixed address, and the BBB exporter has that server's own secret, as a secret", () => {
        expect(inputs(pool, "bbb-1-node-exporter").LISTEN_IPV4).toBe("10.0.0.11");
        expect(inputs(pool, "scalelite-node-exporter").LISTEN_IPV4).toBe("10.0.0.3");
        expect(inputs(pool, "monitoring-node-exporter").LISTEN_IPV4).toBe("10.0.0.6");
        // The ports the security groups open (components/ports.ts) and Prometheus scrapes.
        expect([inputs(pool, "turn-node-exporter").PORT, inputs(pool, "bbb-2-bbb-exporter").PORT]).toEqual(["9100", "9688"]);
        const exporter = byName(pool, "bbb-2-bbb-exporter");
        expect(stepInputs(exporter.inputs.stdin).SECRET).toBe(stepInputs(byName(pool, "bbb-2-configure").inputs.stdin).SECRET);
        expect(exporter.secretInputs).toContain("stdin");
        expect(inputs(pool, "scalelite-node-exporter").SCALELITE_METRICS_PROGRAM).toContain("rake status");
        expect(inputs(pool, "bbb-1-node-exporter").SCALELITE_METRICS_PROGRAM).toBeUndefined();
    });

    test("an exporter step runs after the host's own steps (apt takes one at a time)", () => {
        expect([...waitsFor(pool, "bbb-1-node-exporter")]).toEqual(expect.arrayContaining(["bbb-1-install", "bbb-1-configure", "bbb-1-data-policy"]));
        expect([...waitsFor(pool, "bbb-1-bbb-exporter")]).toContain("bbb-1-node-exporter");
        expect([...waitsFor(pool, "scalelite-node-exporter")]).toEqual(expect.arrayContaining(["scalelite-setup", "scalelite-backup"]));
        expect([...waitsFor(pool, "greenlight-backup")]).toContain("greenlight-setup");
        expect([...waitsFor(pool, "monitoring-node-exporter")]).toContain("monitoring-setup");
        expect([...waitsFor(pool, "turn-node-exporter")]).toContain("turn-coturn");
        // Prometheus is told of a host once its exporters answer: a server being installed raises no "down" alert.
        expect([...waitsFor(pool, "monitoring-setup")]).toEqual(expect.arrayContaining(["bbb-1-bbb-exporter", "bbb-2-node-exporter", "turn-node-exporter", "greenlight-node-exporter"]));
    });

    test("exporter ports open to the monitoring host's group only (IPv4: it scrapes fixed addresses), never to the world", () => {
        for (const host of ["turn", "scalelite", "bbb-1", "bbb-2", "greenlight", "monitoring"]) expect([host, ports(pool, host, "9100")]).toEqual([host, ["tcp group bbb-prod-monitoring IPv4"]]);
        for (const host of ["bbb-1", "bbb-2"]) expect(ports(pool, host, "9688")).toEqual(["tcp group bbb-prod-monitoring IPv4"]);
        for (const host of ["turn", "scalelite", "greenlight", "monitoring"]) expect(ports(pool, host, "9688")).toEqual([]);
        for (const [host, rules] of Object.entries(firewallOf(pool))) {
            const world = rules.filter((r) => r.source === "0.0.0.0/0" || r.source === "::/0");
            expect([host, world.filter((r) => NEVER_WORLD_PORTS.includes(Number(r.ports)))]).toEqual([host, []]);
        }
        expect(firewallOf(pool).monitoring.map((r) => `${r.ports} ${r.source}`).sort()).toEqual([
            "22 198.51.100.0/24", "22 2001:db8:100::/48", "443 0.0.0.0/0", "443 ::/0", "80 0.0.0.0/0", "80 ::/0", "9100 group bbb-prod-monitoring",
        ]);
    });

    test("Prometheus scrapes every host's fixed address, the BBB exporters and the public names' certificates", () => {
        const config = parseYaml(inputs(pool, "monitoring-setup").PROMETHEUS_YML) as { scrape_configs: { job_name: string; static_configs?: { targets: string[] }[] }[] };
        const targets = (job: string) => config.scrape_configs.filter((j) => j.job_name === job).flatMap((j) => (j.static_configs ?? []).flatMap((c) => c.targets)).sort();
        expect(targets("node")).toEqual(["10.0.0.11:9100", "10.0.0.12:9100", "10.0.0.2:9100", "10.0.0.3:9100", "10.0.0.4:9100", "10.0.0.6:9100"]);
        expect(targets("bbb")).toEqual(["10.0.0.11:9688", "10.0.0.12:9688"]);
        const probed = config.scrape_configs.filter((j) => j.job_name.startsWith("blackbox")).flatMap((j) => (j.static_configs ?? []).flatMap((c) => c.targets));
        expect(probed).toEqual(
            expect.arrayContaining(["https://bbb.example.org/bigbluebutton/api", "https://bbb-1.example.org/bigbluebutton/api", "https://greenlight.example.org/", "turn.example.org:443", "https://monitoring.example.org/api/health"]),
        );
    });

    test("Grafana: its URL and a generated admin password, as a secret output; the SMTP password reaches the host as a secret", () => {
        expect(pool.outputs.grafanaUrl).toBe("https://monitoring.example.org/");
        expect(pool.secretOutputs).toContain("grafanaAdminPassword");
        expect(pool.outputs.grafanaAdminPassword).toBe(inputs(pool, "monitoring-setup").GRAFANA_ADMIN_PASSWORD);
        const setup = byName(pool, "monitoring-setup");
        expect(stepInputs(setup.inputs.stdin).SMTP_PASSWORD).toBe(ALERTS.smtp.password);
        expect(setup.secretInputs).toContain("stdin");
        for (const file of ["PROMETHEUS_YML", "RULES_YML", "ALERTMANAGER_YML", "GRAFANA_INI"]) expect([file, stepInputs(setup.inputs.stdin)[file]]).not.toEqual([file, expect.stringContaining(ALERTS.smtp.password)]);
        expect(inputs(pool, "monitoring-setup").ALERTMANAGER_YML).toContain("ops@example.org");
    });

    test("a drained server's Scalelite state raises no alert; the others' does", () => {
        const rules = (parseYaml(inputs(pool, "monitoring-setup").RULES_YML) as { groups: { rules: { alert: string; expr: string }[] }[] }).groups[0].rules;
        const disabled = rules.find((r) => r.alert === "ScaleliteServerDisabled")!.expr;
        expect(disabled).toMatch(/server!~"[^"]*bbb-2\\\\\.example\\\\\.org/);
        expect(disabled).not.toMatch(/bbb-1/);
    });

    test("no exporter step needs its host when it goes: a dead VM can be replaced, a server removed, a stack destroyed", () => {
        for (const name of ["bbb-1-node-exporter", "bbb-1-bbb-exporter", "scalelite-node-exporter"]) expect([name, byName(pool, name).inputs.delete]).toEqual([name, undefined]);
    });

    test("the single topology has monitoring too: TURN, bbb-1 and the monitoring host", () => {
        expect(steps(single, "node-exporter")).toEqual(["bbb-1-node-exporter", "monitoring-node-exporter", "turn-node-exporter"]);
        expect(inputs(single, "bbb-1-bbb-exporter").RECORDINGS).toBe("true");
        expect(inputs(single, "bbb-1-bbb-exporter").PRIVACY).toBe("standard");
    });

    test("an SMTP password the host would refuse (a control character, a line separator) is refused before anything is created, not shown", async () => {
        for (const password of ["pw\u0085x", "pw\u2028x", "pw\tx"]) {
            const run = await evaluate({ ...POOL, monitoring: true, alerts: { ...ALERTS, smtp: { ...ALERTS.smtp, password } } });
            expect(run.error?.message).toMatch(/alerts\.smtp\.password[\s\S]*without control characters/);
            expect(run.error?.message).not.toContain(password);
        }
    });

    test("alerts without monitoring are refused before anything is created", async () => {
        const run = await evaluate({ ...POOL, alerts: ALERTS });
        expect(run.error?.message).toMatch(/alerts[\s\S]*monitoring: true/);
        expect(run.resources.filter((r) => r.custom)).toEqual([]);
    });
});

describe("backups", () => {
    const containers = (run: Run) => ofType(run, "openstack:objectstorage/container:Container");

    test("on by default wherever a database is: Scalelite and Greenlight in a pool, each to a container of its own", () => {
        expect(containers(plain).map((c) => c.inputs.name).sort()).toEqual(["bbb-backups-dev-greenlight", "bbb-backups-dev-scalelite"]);
        expect(steps(plain, "backup-setup")).toEqual(["greenlight-backup", "scalelite-backup"]);
        expect(plain.outputs.backups).toEqual({
            scalelite: { container: "bbb-backups-dev-scalelite", repository: "swift:bbb-backups-dev-scalelite:/" },
            greenlight: { container: "bbb-backups-dev-greenlight", repository: "swift:bbb-backups-dev-greenlight:/" },
        });
        expect(plain.secretOutputs).toContain("backupPasswords");
    });

    test("the containers outlive the stack (retained on delete, never force-destroyed)", () => {
        for (const c of containers(plain)) expect([c.name, c.retainOnDelete, c.inputs.forceDestroy]).toEqual([c.name, true, false]);
    });

    test("each host's credential reaches its own container only", () => {
        const credentials = ofType(plain, "openstack:identity/applicationCredential:ApplicationCredential");
        expect(credentials.map((c) => c.name).sort()).toEqual(["greenlight-backup-credential", "scalelite-backup-credential"]);
        // Names are unique per Keystone user, across projects: the project's id is in it.
        expect(credentials.map((c) => c.inputs.name).sort()).toEqual(["bbb-dev-greenlight-backups-0f1e2d3c", "bbb-dev-scalelite-backups-0f1e2d3c"]);
        // Its name is unique per Keystone user: a replacement deletes the old one first.
        expect(credentials.map((c) => c.deleteBeforeReplace)).toEqual([true, true]);
        const scalelite = byName(plain, "scalelite-backup-credential");
        const paths = (scalelite.inputs.accessRules as { path: string; method: string; service: string }[]).map((r) => `${r.service} ${r.method} ${r.path}`).sort();
        expect(paths).toEqual([
            "object-store DELETE /v1/*/bbb-backups-dev-scalelite/**",
            "object-store GET /v1/*/bbb-backups-dev-scalelite",
            "object-store GET /v1/*/bbb-backups-dev-scalelite/**",
            "object-store HEAD /v1/*/bbb-backups-dev-scalelite",
            "object-store HEAD /v1/*/bbb-backups-dev-scalelite/**",
            "object-store PUT /v1/*/bbb-backups-dev-scalelite/**",
        ]);
    });

    test("the step gets Keystone v3 from the catalog, the credential and the password as secrets, and what to back up", () => {
        const step = byName(plain, "scalelite-backup");
        const i = stepInputs(step.inputs.stdin);
        expect(i.OS_AUTH_URL).toBe(`${MOCK_KEYSTONE}/v3`);
        expect(i.OS_REGION_NAME).toBe("RegionOne");
        expect(i.REPOSITORY).toBe("swift:bbb-backups-dev-scalelite:/");
        expect(i.PARTS.split("\n")).toEqual(["postgres postgres scalelite", "redis redis /var/lib/bbb-data/redis"]);
        expect(i.RESTIC_PASSWORD).toBe((plain.outputs.backupPasswords as Record<string, string>).scalelite);
        expect([i.BACKUP_TIME, i.KEEP_DAILY, i.KEEP_WEEKLY, i.KEEP_MONTHLY]).toEqual(["02:30", "7", "4", "6"]);
        expect(step.secretInputs).toContain("stdin");
        expect(step.dependsOn.some((urn) => urn.endsWith("::scalelite-setup"))).toBe(true);
    });

    test("turned off, a host's backups stop by an update of its step (ENABLED false, nothing secret given); the step needs no host when it goes", async () => {
        const off = await evaluate({ ...POOL, backups: { enabled: false } });
        expect(inputs(off, "scalelite-backup")).toEqual({ STEP: "backup-setup", ENABLED: "false", ROLE: "scalelite", REPOSITORY: "swift:bbb-backups-dev-scalelite:/" });
        expect(byName(off, "scalelite-backup").urn).toBe(byName(plain, "scalelite-backup").urn);
        expect(inputs(plain, "scalelite-backup").ENABLED).toBe("true");
        for (const run of [off, plain]) expect(byName(run, "scalelite-backup").inputs.delete).toBeUndefined();
    });

    test("the single topology backs up Greenlight on bbb-1, and nothing without Greenlight", async () => {
        expect(steps(single, "backup-setup")).toEqual(["bbb-1-backup"]);
        const bare = await evaluate(BASE_CONFIG);
        expect([steps(bare, "backup-setup"), containers(bare), bare.outputs.backups]).toEqual([[], [], undefined]);
        expect(bare.invoked!.map((i) => i.token)).not.toContain("openstack:identity/getAuthScope:getAuthScope");
    });

    test("backups.enabled false: no container, no credential, backups off on the hosts; the passwords stay (the containers keep the backups they read)", async () => {
        const off = await evaluate({ ...POOL, backups: { enabled: false } });
        expect([containers(off).length, off.outputs.backups]).toEqual([0, undefined]);
        expect(ofType(off, "openstack:identity/applicationCredential:ApplicationCredential")).toEqual([]);
        expect(steps(off, "backup-setup").map((name) => inputs(off, name).ENABLED)).toEqual(["false", "false"]);
        expect(off.secretOutputs).toContain("backupPasswords");
        expect(off.outputs.backupPasswords).toEqual(plain.outputs.backupPasswords);
        expect(ofType(off, "random:index/randomPassword:RandomPassword").filter((r) => r.name.endsWith("-backup-password")).map((r) => r.urn)).toEqual(
            ofType(plain, "random:index/randomPassword:RandomPassword").filter((r) => r.name.endsWith("-backup-password")).map((r) => r.urn),
        );
    });

    test("a cloud without an object store is refused before anything is created, with the way out", async () => {
        const run = await evaluate(POOL, { noObjectStore: true });
        expect(run.error?.message).toMatch(/backups\.enabled[\s\S]*object-store[\s\S]*pulumi config set --path backups\.enabled false/);
        expect(run.resources.filter((r) => r.custom)).toEqual([]);
    });

    test("the backup time and retention are the operator's, checked", async () => {
        const set = await evaluate({ ...POOL, backups: { time: "04:05", keepDaily: 14, keepMonthly: 0 } });
        expect(inputs(set, "greenlight-backup")).toMatchObject({ BACKUP_TIME: "04:05", KEEP_DAILY: "14", KEEP_WEEKLY: "4", KEEP_MONTHLY: "0" });
        const bad = await evaluate({ ...POOL, backups: { time: "25:00", keepDaily: 0 } });
        expect(bad.error?.message).toMatch(/backups\.time[\s\S]*HH:MM/);
        expect(bad.error?.message).toMatch(/backups\.keepDaily/);
    });
});
