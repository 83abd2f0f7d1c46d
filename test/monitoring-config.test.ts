// components/monitoring-config.ts, checked by the real tools: promtool (check config, check rules, test rules),
// amtool check-config and the blackbox exporter's --config.check (Debian's prometheus, prometheus-alertmanager and
// prometheus-blackbox-exporter; scripts/system-tools.sh). The dashboards of monitoring/dashboards are checked too.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
    alertmanagerConfig,
    alertRules,
    blackboxConfig,
    DATASOURCE,
    grafanaFiles,
    MONITORING_PATHS,
    MonitoringInputs,
    prometheusConfig,
    SMTP_PASSWORD_SLOT,
    upstreamDashboardList,
    UPSTREAM_DASHBOARDS,
} from "../components/monitoring-config";

const POOL: MonitoringInputs = {
    hosts: [
        { name: "turn", role: "turn", fqdn: "turn.example.org", privateIpv4: "10.0.0.2" },
        { name: "bbb-1", role: "bbb", fqdn: "bbb-1.example.org", privateIpv4: "10.0.0.11" },
        { name: "bbb-2", role: "bbb", fqdn: "bbb-2.example.org", privateIpv4: "10.0.0.12" },
        { name: "scalelite", role: "scalelite", fqdn: "scalelite.example.org", privateIpv4: "10.0.0.5" },
        { name: "greenlight", role: "greenlight", fqdn: "greenlight.example.org", privateIpv4: "10.0.0.6" },
        { name: "monitoring", role: "monitoring", fqdn: "monitoring.example.org", privateIpv4: "10.0.0.7" },
    ],
    probes: {
        https: ["https://bbb-1.example.org/bigbluebutton/api", "https://bbb-2.example.org/bigbluebutton/api", "https://greenlight.example.org/", "https://monitoring.example.org/"],
        tls: ["turn.example.org:443"],
        scaleliteHealth: "https://scalelite.example.org/health_check",
    },
    drained: [],
    privacy: "standard",
    recordings: true,
    backups: ["scalelite", "greenlight"],
    grafanaFqdn: "monitoring.example.org",
};
const ALERTS: MonitoringInputs["alerts"] = {
    email: "ops@example.org",
    smtp: { smarthost: "smtp.example.org:587", from: "monitoring@example.org", username: "monitoring", requireTls: true },
};
const VARIANTS: [string, MonitoringInputs][] = [
    ["standard, no alerts", POOL],
    ["standard, e-mail alerts", { ...POOL, alerts: ALERTS }],
    ["strict, e-mail alerts without SMTP login, a drained server", { ...POOL, privacy: "strict", recordings: false, drained: ["bbb-2.example.org"], alerts: { ...ALERTS, smtp: { ...ALERTS.smtp, username: undefined } } }],
    ["strict, two drained servers", { ...POOL, privacy: "strict", drained: ["bbb-1.example.org", "bbb-2.example.org"] }],
];

let dir: string;
beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-monitoring-"))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Writes the generated files as the step lays them out in /etc/prometheus. */
function writeFiles(inputs: MonitoringInputs): void {
    fs.mkdirSync(path.join(dir, "rules"));
    fs.writeFileSync(path.join(dir, "prometheus.yml"), prometheusConfig(inputs));
    fs.writeFileSync(path.join(dir, MONITORING_PATHS.rules), alertRules(inputs));
    fs.writeFileSync(path.join(dir, "alertmanager.yml"), alertmanagerConfig(inputs));
    fs.writeFileSync(path.join(dir, "blackbox.yml"), blackboxConfig());
}

function tool(command: string, ...args: string[]): { status: number | null; output: string } {
    const r = spawnSync(command, args, { cwd: dir, encoding: "utf8" });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** The parsed YAML of a generated file (JSON after a comment line). */
const parsed = (text: string) => JSON.parse(text.slice(text.indexOf("\n") + 1));

test.each(VARIANTS)("%s: promtool, amtool and the blackbox exporter accept what is generated", (_name, inputs) => {
    writeFiles(inputs);
    for (const [command, ...args] of [
        ["promtool", "check", "config", "prometheus.yml"],
        ["promtool", "check", "rules", MONITORING_PATHS.rules],
        ["amtool", "check-config", "alertmanager.yml"],
        ["prometheus-blackbox-exporter", "--config.check", "--config.file=blackbox.yml"],
    ]) {
        const r = tool(command, ...args);
        expect({ command: [command, ...args].join(" "), status: r.status, output: r.status === 0 ? "" : r.output }).toEqual({
            command: [command, ...args].join(" "),
            status: 0,
            output: "",
        });
    }
});

test("the tools refuse a broken file: the checks can fail", () => {
    writeFiles(POOL);
    fs.writeFileSync(path.join(dir, MONITORING_PATHS.rules), alertRules(POOL).replace('"scalelite_server_online == 0"', '"scalelite_server_online =="'));
    expect(tool("promtool", "check", "config", "prometheus.yml").status).not.toBe(0);
    fs.writeFileSync(path.join(dir, "alertmanager.yml"), alertmanagerConfig(POOL).replace('"receiver": "null"', '"receiver": "nobody"'));
    expect(tool("amtool", "check-config", "alertmanager.yml").status).not.toBe(0);
    fs.writeFileSync(path.join(dir, "blackbox.yml"), blackboxConfig().replace('"^success"', '"^(success"'));
    expect(tool("prometheus-blackbox-exporter", "--config.check", "--config.file=blackbox.yml").status).not.toBe(0);
});

test("node and bbb targets are the fixed addresses, labelled with the host's FQDN as instance", () => {
    const config = parsed(prometheusConfig(POOL));
    const job = (name: string) => config.scrape_configs.find((j: { job_name: string }) => j.job_name === name);
    expect(job("node").static_configs).toContainEqual({ targets: ["10.0.0.11:9100"], labels: { instance: "bbb-1.example.org", host: "bbb-1", role: "bbb" } });
    expect(job("node").static_configs).toHaveLength(POOL.hosts.length);
    expect(job("bbb")).toMatchObject({ scrape_interval: "60s", scrape_timeout: "30s" });
    expect(job("bbb").static_configs.map((c: { targets: string[] }) => c.targets[0])).toEqual(["10.0.0.11:9688", "10.0.0.12:9688"]);
    expect(job("blackbox_tls").static_configs).toEqual([{ targets: ["turn.example.org:443"] }]);
    expect(job("blackbox_scalelite").params).toEqual({ module: ["scalelite_health"] });
    expect(config.alerting.alertmanagers[0].static_configs[0].targets).toEqual(["127.0.0.1:9093"]);
});

test("strict privacy drops the front-ends' names (bbb_meetings_participants_origin); standard keeps them", () => {
    const relabel = (inputs: MonitoringInputs) =>
        parsed(prometheusConfig(inputs)).scrape_configs.find((j: { job_name: string }) => j.job_name === "bbb").metric_relabel_configs;
    expect(relabel({ ...POOL, privacy: "strict" })).toEqual([{ source_labels: ["__name__"], regex: "bbb_meetings_participants_origin", action: "drop" }]);
    expect(relabel(POOL)).toBeUndefined();
});

test("Alertmanager: a null receiver without alerts; e-mail with a slot the step puts the password in, resolved alerts sent", () => {
    expect(parsed(alertmanagerConfig(POOL))).toMatchObject({ route: { receiver: "null" }, receivers: [{ name: "null" }] });
    const mail = parsed(alertmanagerConfig({ ...POOL, alerts: ALERTS }));
    expect(mail.global).toEqual({
        smtp_smarthost: "smtp.example.org:587",
        smtp_from: "monitoring@example.org",
        smtp_require_tls: true,
        smtp_auth_username: "monitoring",
        smtp_auth_password: "@SMTP_PASSWORD@",
    });
    expect(mail.receivers).toEqual([{ name: "email", email_configs: [{ to: "ops@example.org", send_resolved: true }] }]);
});

test("no generated file holds a secret: passwords are only named by their files, or the slot the step fills", () => {
    const inputs = { ...POOL, alerts: ALERTS };
    const grafana = grafanaFiles(inputs);
    for (const text of [prometheusConfig(inputs), alertRules(inputs), alertmanagerConfig(inputs), blackboxConfig(), grafana.ini, grafana.datasources, grafana.dashboards]) {
        expect(text.replace(`"smtp_auth_password": ${SMTP_PASSWORD_SLOT}`, "")).not.toMatch(/"(smtp_auth_password|password|basic_auth|secureJsonData)"|admin_password = [^$]/);
    }
    expect(grafana.ini).toContain(`admin_password = $__file{${MONITORING_PATHS.grafanaAdminPassword}}`);
});

test("Grafana: loopback, HTTPS root URL, no anonymous access or sign-up, no phoning home; one provisioned data source", () => {
    const { ini, datasources, dashboards } = grafanaFiles(POOL);
    for (const line of [
        "http_addr = 127.0.0.1",
        "http_port = 3000",
        "root_url = https://monitoring.example.org/",
        "admin_user = admin",
        "cookie_secure = true",
        "allow_sign_up = false",
        "reporting_enabled = false",
        "check_for_updates = false",
        "data = /var/lib/grafana",
    ]) {
        expect(ini.split("\n")).toContain(line);
    }
    expect(ini).toMatch(/\[auth\.anonymous\]\nenabled = false/);
    expect(parsed(datasources).datasources).toEqual([expect.objectContaining({ uid: DATASOURCE.uid, name: DATASOURCE.name, type: "prometheus", url: "http://127.0.0.1:9090" })]);
    expect(parsed(dashboards).providers).toEqual([expect.objectContaining({ allowUiUpdates: false, disableDeletion: true, options: { path: MONITORING_PATHS.dashboards } })]);
});

test("the upstream dashboards are named by a pinned commit and their sums", () => {
    expect(upstreamDashboardList().split("\n")).toEqual(
        UPSTREAM_DASHBOARDS.files.map((f) => `${f.sha256} ${path.basename(f.path)} https://raw.githubusercontent.com/greenstatic/bigbluebutton-exporter/${UPSTREAM_DASHBOARDS.commit}/${f.path}`),
    );
    expect(UPSTREAM_DASHBOARDS.commit).toMatch(/^[0-9a-f]{40}$/);
});

// promtool test rules: series in, alerts out. Each case states when an alert fires and when it must not.
const node = (host: string) => `job="node", instance="${host}.example.org", host="${host}"`;
const UNIT_TESTS = {
    rule_files: [MONITORING_PATHS.rules],
    evaluation_interval: "1m",
    tests: [
        {
            name: "host down fires after its 5 minutes",
            interval: "1m",
            input_series: [{ series: `up{${node("turn")}, role="turn"}`, values: "1 0x15" }],
            alert_rule_test: [
                { eval_time: "4m", alertname: "HostDown", exp_alerts: [] },
                {
                    eval_time: "7m",
                    alertname: "HostDown",
                    exp_alerts: [
                        {
                            exp_labels: { severity: "critical", job: "node", instance: "turn.example.org", host: "turn", role: "turn" },
                            exp_annotations: {
                                summary: "Host turn.example.org is down",
                                description: "The node exporter of turn (turn.example.org, role turn) has not answered Prometheus for 5 minutes.",
                            },
                        },
                    ],
                },
            ],
        },
        {
            name: "a certificate expiring in 10 days fires, one in 20 days does not",
            // Samples a minute apart: Prometheus takes a series older than 5 minutes for gone.
            interval: "1m",
            input_series: [
                { series: 'probe_ssl_earliest_cert_expiry{job="blackbox_tls", instance="turn.example.org:443"}', values: `${10 * 86400}x80` },
                { series: 'probe_ssl_earliest_cert_expiry{job="blackbox_http", instance="https://bbb-1.example.org/bigbluebutton/api"}', values: `${20 * 86400}x80` },
            ],
            alert_rule_test: [
                {
                    eval_time: "70m",
                    alertname: "CertificateExpiringSoon",
                    exp_alerts: [
                        {
                            exp_labels: { severity: "warning", job: "blackbox_tls", instance: "turn.example.org:443" },
                            exp_annotations: {
                                summary: "The certificate of turn.example.org:443 expires within 14 days",
                                description:
                                    "The certificate served at turn.example.org:443 expires in 9d 22h 50m 0s: certbot's renewal has not happened (see: journalctl -u certbot on that host).",
                            },
                        },
                    ],
                },
            ],
        },
        {
            name: "a disabled server fires unless it is drained",
            interval: "1m",
            input_series: [
                { series: `scalelite_server_state{${node("scalelite")}, server="bbb-1.example.org", state="disabled"}`, values: "1x30" },
                { series: `scalelite_server_state{${node("scalelite")}, server="bbb-2.example.org", state="disabled"}`, values: "1x30" },
            ],
            alert_rule_test: [
                {
                    eval_time: "20m",
                    alertname: "ScaleliteServerDisabled",
                    exp_alerts: [
                        {
                            exp_labels: { severity: "warning", job: "node", instance: "scalelite.example.org", host: "scalelite", server: "bbb-1.example.org", state: "disabled" },
                            exp_annotations: {
                                summary: "BigBlueButton server bbb-1.example.org is disabled in Scalelite",
                                description: "bbb-1.example.org has been disabled in Scalelite for 15 minutes although the stack is not draining it: it gets no meetings.",
                            },
                        },
                    ],
                },
            ],
        },
        {
            name: "a backup 37 hours old fires, one 10 hours old does not; a host without any fires after 36 hours",
            interval: "1m",
            input_series: [
                { series: `bbb_backup_last_success_timestamp_seconds{${node("scalelite")}}`, values: "0x2300" },
                { series: `up{${node("scalelite")}}`, values: "1x2300" },
                // Always 10 hours ago.
                { series: `bbb_backup_last_success_timestamp_seconds{${node("greenlight")}}`, values: "-36000+60x2300" },
                { series: `up{${node("greenlight")}}`, values: "1x2300" },
                { series: `up{${node("bbb-1")}}`, values: "1x2300" },
            ],
            alert_rule_test: [
                { eval_time: "35h", alertname: "BackupTooOld", exp_alerts: [] },
                {
                    eval_time: "37h",
                    alertname: "BackupTooOld",
                    exp_alerts: [
                        {
                            exp_labels: { severity: "critical", job: "node", instance: "scalelite.example.org", host: "scalelite" },
                            exp_annotations: {
                                summary: "The last backup of scalelite is older than 36 hours",
                                description:
                                    "scalelite (scalelite.example.org) last backed up successfully 1d 13h 0m 0s ago: the nightly backup fails (see: journalctl -u bbb-backup on that host).",
                            },
                        },
                    ],
                },
                { eval_time: "37h", alertname: "BackupMissing", exp_alerts: [] },
            ],
        },
        {
            name: "a textfile the timers stopped rewriting fires; the nightly backup's (bbb-backup writes bbb_backup.prom) does not",
            interval: "1m",
            input_series: [
                { series: `node_textfile_mtime_seconds{${node("scalelite")}, file="scalelite.prom"}`, values: "0x60" },
                { series: `node_textfile_mtime_seconds{${node("scalelite")}, file="bbb_backup.prom"}`, values: "0x60" },
                { series: `node_textfile_mtime_seconds{${node("greenlight")}, file="/var/lib/prometheus/node-exporter/bbb_backup.prom"}`, values: "0x60" },
            ],
            alert_rule_test: [
                {
                    eval_time: "30m",
                    alertname: "TextfileStale",
                    exp_alerts: [
                        {
                            exp_labels: { severity: "warning", job: "node", instance: "scalelite.example.org", host: "scalelite", file: "scalelite.prom" },
                            exp_annotations: {
                                summary: "Metrics file scalelite.prom on scalelite.example.org is stale",
                                description: "scalelite.prom in the node exporter's textfile directory on scalelite has not been rewritten for over 15 minutes: the timer that writes it is not running.",
                            },
                        },
                    ],
                },
            ],
        },
        {
            name: "Scalelite's server list unreadable for 10 minutes fires (its server alerts cannot meanwhile)",
            interval: "1m",
            input_series: [{ series: `scalelite_status_up{${node("scalelite")}}`, values: "1 0x20" }],
            alert_rule_test: [
                { eval_time: "9m", alertname: "ScaleliteMetricsDown", exp_alerts: [] },
                {
                    eval_time: "12m",
                    alertname: "ScaleliteMetricsDown",
                    exp_alerts: [
                        {
                            exp_labels: { severity: "warning", job: "node", instance: "scalelite.example.org", host: "scalelite" },
                            exp_annotations: {
                                summary: "Scalelite's view of the servers cannot be read on scalelite.example.org",
                                description:
                                    "bbb-scalelite-metrics has not read Scalelite's server list (rake status) for 10 minutes: the Scalelite server alerts cannot fire meanwhile (see: journalctl -u bbb-scalelite-metrics on that host).",
                            },
                        },
                    ],
                },
            ],
        },
        {
            name: "a backup host that never reports a backup fires after 36 hours",
            interval: "1m",
            input_series: [
                { series: `up{${node("scalelite")}}`, values: "1x2300" },
                { series: `bbb_backup_last_success_timestamp_seconds{${node("greenlight")}}`, values: "0+60x2300" },
                { series: `up{${node("greenlight")}}`, values: "1x2300" },
            ],
            alert_rule_test: [
                { eval_time: "35h", alertname: "BackupMissing", exp_alerts: [] },
                {
                    eval_time: "37h",
                    alertname: "BackupMissing",
                    exp_alerts: [
                        {
                            exp_labels: { severity: "critical", job: "node", instance: "scalelite.example.org", host: "scalelite" },
                            exp_annotations: {
                                summary: "scalelite reports no successful backup",
                                description: "scalelite (scalelite.example.org) has run for 36 hours without reporting a successful backup.",
                            },
                        },
                    ],
                },
            ],
        },
    ],
};

test("promtool test rules: host down, certificates, drained servers, backups", () => {
    writeFiles({ ...POOL, drained: ["bbb-2.example.org"] });
    fs.writeFileSync(path.join(dir, "tests.yml"), JSON.stringify(UNIT_TESTS, null, 2));
    const r = tool("promtool", "test", "rules", "tests.yml");
    expect(r.output).toContain("SUCCESS");
    expect(r.status).toBe(0);
});

test("without recordings there is no recordings alert; without backups no backup alert", () => {
    const names = (inputs: MonitoringInputs) => parsed(alertRules(inputs)).groups[0].rules.map((r: { alert: string }) => r.alert);
    expect(names(POOL)).toEqual(expect.arrayContaining(["RecordingsWaiting", "BackupTooOld", "BackupMissing"]));
    expect(names({ ...POOL, recordings: false, backups: [] })).not.toEqual(expect.arrayContaining(["RecordingsWaiting"]));
    expect(names({ ...POOL, recordings: false, backups: [] }).filter((n: string) => /Recordings|Backup/.test(n))).toEqual([]);
});

describe("dashboards", () => {
    const DIR = path.join(__dirname, "..", "monitoring", "dashboards");
    const files = fs.readdirSync(DIR).filter((f) => f.endsWith(".json"));
    interface Panel {
        title?: string;
        datasource?: unknown;
        targets?: { datasource?: unknown }[];
        panels?: Panel[];
    }

    test("there is the pool overview", () => expect(files).toContain("pool-overview.json"));

    test.each(files)("%s parses, has a fixed uid, and every panel and query uses the provisioned data source", (file) => {
        const dashboard = JSON.parse(fs.readFileSync(path.join(DIR, file), "utf8"));
        expect(dashboard.uid).toMatch(/^[A-Za-z0-9_-]{1,40}$/);
        expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
        const variables = new Map<string, { type: string; query: string }>((dashboard.templating?.list ?? []).map((v: { name: string; type: string; query: string }) => [v.name, v]));
        const ok = (ds: unknown): boolean => {
            if (typeof ds === "string") {
                const variable = variables.get(ds.replace(/^\$\{?|\}$/g, ""));
                return ds.startsWith("$") && variable?.type === "datasource" && variable.query === "prometheus";
            }
            const ref = ds as { type?: string; uid?: string } | undefined;
            return ref?.type === "prometheus" && (ref.uid === DATASOURCE.uid || (ref.uid !== undefined && ok(ref.uid)));
        };
        const panels = (list: Panel[]): Panel[] => list.flatMap((p) => [p, ...panels(p.panels ?? [])]);
        const wrong = panels(dashboard.panels).flatMap((p) =>
            [p.datasource, ...(p.targets ?? []).map((t) => t.datasource)].filter((ds) => !ok(ds)).map((ds) => `${p.title}: ${JSON.stringify(ds)}`),
        );
        expect(wrong).toEqual([]);
    });
});
