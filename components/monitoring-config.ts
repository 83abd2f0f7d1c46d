// The monitoring host's files, generated from a description of the platform: pure functions, plain data in,
// file contents out (no Pulumi resource here). scripts/remote/monitoring-setup.sh writes them on the host and
// checks them there with promtool, amtool and the blackbox exporter before it restarts anything; the tests check
// them with the same tools (test/monitoring-config.test.ts).
//
// The YAML files are written in JSON's syntax (YAML 1.2 is a superset of JSON, and Prometheus, Alertmanager,
// the blackbox exporter and Grafana read it as YAML), after a comment line: no YAML library is needed at run time.
//
// What the rules expect of the exporters (docs/monitoring.md):
// - job "node": the node exporter on every host, at its fixed address, port 9100, with the textfile collector
//   (scalelite_server_online{server}, scalelite_server_state{server,state} on the Scalelite host,
//   bbb_recordings_oldest_pending_age_seconds on BBB servers, bbb_backup_last_success_timestamp_seconds on the
//   hosts that back up);
// - job "bbb": greenstatic/bigbluebutton-exporter on every BBB server, port 9688 (bbb_api_up, bbb_meetings, ...);
// - jobs "blackbox_http", "blackbox_tls", "blackbox_scalelite": probes through the local blackbox exporter.
// Every node and bbb target carries instance = the host's FQDN (so the upstream per-server dashboard finds a
// server's node series by the instance of its bbb_api_up), host = its name and role = its role.
import type { Role } from "./config/types";
import { EXPORTER_PORTS } from "./ports";

export interface ScrapeHost {
    name: string;
    role: Role;
    fqdn: string;
    privateIpv4: string;
}

export interface MonitoringInputs {
    /** Every host, the monitoring host itself included. */
    hosts: ScrapeHost[];
    /**
     * Public probes: `https` full URLs (https://<fqdn>/...), `tls` host:port pairs (TURN's TLS listener),
     * `scaleliteHealth` Scalelite's https://<fqdn>/health_check.
     */
    probes: { https: string[]; tls: string[]; scaleliteHealth?: string };
    /** FQDNs of the BBB servers being drained: Scalelite shows them disabled or cordoned, which is expected. */
    drained: string[];
    privacy: "strict" | "standard";
    /** Recordings on: the recordings-waiting alert applies. */
    recordings: boolean;
    /** Names of the hosts that run the nightly backup. */
    backups: string[];
    /** E-mail alerts; the SMTP password is not here: the step puts it in the SMTP_PASSWORD_SLOT. */
    alerts?: { email: string; smtp: { smarthost: string; from: string; username?: string; requireTls: boolean } };
    grafanaFqdn: string;
}

/** Where the step puts the files that the generated ones name. */
export const MONITORING_PATHS = {
    /** The rule file, relative to prometheus.yml's directory (/etc/prometheus), as Prometheus resolves rule_files. */
    rules: "rules/bbb.yml",
    /** Grafana's admin password (root:grafana 0640), read by grafana.ini's $__file{}. */
    grafanaAdminPassword: "/etc/grafana/admin_password",
    /** The provisioned dashboards: ours and the upstream exporter's. */
    dashboards: "/var/lib/grafana/dashboards/bbb",
} as const;

/** The provisioned Prometheus data source: every dashboard of ours refers to it by this uid. */
export const DATASOURCE = { uid: "bbb-prometheus", name: "Prometheus" } as const;

const BLACKBOX = "127.0.0.1:9115";
const ALERTMANAGER = "127.0.0.1:9093";
const PROMETHEUS_URL = "http://127.0.0.1:9090";

/** Filesystems the disk alert leaves out: in memory, images, and NFS mounts (alerted on at the exporting host). */
const NOT_DISKS = "tmpfs|overlay|squashfs|nsfs|ramfs|nfs.*";

/**
 * greenstatic/bigbluebutton-exporter's Grafana dashboards, downloaded by the monitoring step from
 * raw.githubusercontent.com at the exporter's release tag v0.7.1 (commit 8bfc6d86..., 2024-04-04) and checked
 * against these sums, computed here from that commit's blobs (`git show <commit>:<path> | sha256sum` in a mirror of
 * the repository); the files are the same at master bbb24abe (2025-11-27). They are not copied into this repository.
 */
export const UPSTREAM_DASHBOARDS = {
    commit: "8bfc6d865c8d02d20147083c5769198285b17ede",
    files: [
        { path: "extras/dashboards/all_servers.json", sha256: "cd384d6ddfb6bbd84403b4640089b8c069662ae7b66ac559332637e4663ea5b9" },
        { path: "extras/dashboards/server_instance_node_exporter.json", sha256: "c40610a146fd49e5d7755919c78edd0214e3dd2ffd65fbdd857fb444aee3147e" },
    ],
} as const;

/** The step's UPSTREAM_DASHBOARDS input: `sha256 file-name url`, one dashboard a line. */
export function upstreamDashboardList(): string {
    return UPSTREAM_DASHBOARDS.files
        .map((f) => {
            const url = `https://raw.githubusercontent.com/greenstatic/bigbluebutton-exporter/${UPSTREAM_DASHBOARDS.commit}/${f.path}`;
            return `${f.sha256} ${f.path.split("/").pop()} ${url}`;
        })
        .join("\n");
}

function yamlFile(what: string, value: unknown): string {
    return `# ${what}. Managed by bbb (Pulumi, monitoring-setup step); changes here are overwritten.\n${JSON.stringify(value, null, 2)}\n`;
}

/** A regular expression matching exactly these strings (PromQL's =~ and !~ are anchored). */
function oneOf(values: string[]): string {
    return values.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|");
}

/** A PromQL string literal. */
function promString(value: string): string {
    return JSON.stringify(value);
}

/** The targets of a probe job through the local blackbox exporter: the probed name becomes `instance`. */
function probeJob(job: string, module: string, targets: string[]): object {
    return {
        job_name: job,
        metrics_path: "/probe",
        params: { module: [module] },
        static_configs: [{ targets }],
        relabel_configs: [
            { source_labels: ["__address__"], target_label: "__param_target" },
            { source_labels: ["__param_target"], target_label: "instance" },
            { target_label: "__address__", replacement: BLACKBOX },
        ],
    };
}

function hostTargets(hosts: ScrapeHost[], port: number): object[] {
    return hosts.map((h) => ({ targets: [`${h.privateIpv4}:${port}`], labels: { instance: h.fqdn, host: h.name, role: h.role } }));
}

/** prometheus.yml. */
export function prometheusConfig(inputs: MonitoringInputs): string {
    const bbb = inputs.hosts.filter((h) => h.role === "bbb");
    const scrape: object[] = [{ job_name: "node", static_configs: hostTargets(inputs.hosts, EXPORTER_PORTS.node) }];
    if (bbb.length > 0) {
        scrape.push({
            job_name: "bbb",
            // Every scrape calls the BBB API (getMeetings), which takes seconds (the exporter's docs).
            scrape_interval: "60s",
            scrape_timeout: "30s",
            static_configs: hostTargets(bbb, EXPORTER_PORTS.bbb),
            // Under strict privacy the front-ends' names (meeting metadata bbb-origin*) are not kept.
            ...(inputs.privacy === "strict"
                ? { metric_relabel_configs: [{ source_labels: ["__name__"], regex: "bbb_meetings_participants_origin", action: "drop" }] }
                : {}),
        });
    }
    if (inputs.probes.https.length > 0) scrape.push(probeJob("blackbox_http", "http_2xx", inputs.probes.https));
    if (inputs.probes.tls.length > 0) scrape.push(probeJob("blackbox_tls", "tcp_tls", inputs.probes.tls));
    if (inputs.probes.scaleliteHealth) scrape.push(probeJob("blackbox_scalelite", "scalelite_health", [inputs.probes.scaleliteHealth]));
    return yamlFile("Prometheus", {
        global: { scrape_interval: "30s", evaluation_interval: "30s" },
        rule_files: [MONITORING_PATHS.rules],
        alerting: { alertmanagers: [{ static_configs: [{ targets: [ALERTMANAGER] }] }] },
        scrape_configs: scrape,
    });
}

interface Rule {
    alert: string;
    expr: string;
    for: string;
    labels: { severity: "critical" | "warning" };
    annotations: { summary: string; description: string };
}

/** The alerting rules (rules/bbb.yml). */
export function alertRules(inputs: MonitoringInputs): string {
    const rule = (alert: string, expr: string, duration: string, severity: Rule["labels"]["severity"], summary: string, description: string): Rule => ({
        alert,
        expr,
        for: duration,
        labels: { severity },
        annotations: { summary, description },
    });
    const rules: Rule[] = [
        rule(
            "HostDown",
            'up{job="node"} == 0',
            "5m",
            "critical",
            "Host {{ $labels.instance }} is down",
            "The node exporter of {{ $labels.host }} ({{ $labels.instance }}, role {{ $labels.role }}) has not answered Prometheus for 5 minutes.",
        ),
        rule(
            "BbbServerDown",
            'up{job="bbb"} == 0 or bbb_api_up == 0',
            "5m",
            "critical",
            "BigBlueButton server {{ $labels.instance }} is down",
            "The BigBlueButton exporter of {{ $labels.instance }} does not answer, or BigBlueButton's API does not answer it, for 5 minutes.",
        ),
    ];
    if (inputs.hosts.some((h) => h.role === "scalelite")) {
        const drained = inputs.drained.length > 0 ? `, server!~${promString(oneOf(inputs.drained))}` : "";
        rules.push(
            rule(
                "ScaleliteServerOffline",
                "scalelite_server_online == 0",
                "5m",
                "critical",
                "Scalelite sees BigBlueButton server {{ $labels.server }} offline",
                "Scalelite's poller has marked {{ $labels.server }} offline (failed polls) for 5 minutes: no new meeting goes there.",
            ),
            rule(
                "ScaleliteMetricsDown",
                "scalelite_status_up == 0",
                "10m",
                "warning",
                "Scalelite's view of the servers cannot be read on {{ $labels.instance }}",
                "bbb-scalelite-metrics has not read Scalelite's server list (rake status) for 10 minutes: the Scalelite server alerts cannot fire meanwhile (see: journalctl -u bbb-scalelite-metrics on that host).",
            ),
            rule(
                "ScaleliteServerDisabled",
                `scalelite_server_state{state="disabled"${drained}} == 1`,
                "15m",
                "warning",
                "BigBlueButton server {{ $labels.server }} is disabled in Scalelite",
                "{{ $labels.server }} has been disabled in Scalelite for 15 minutes although the stack is not draining it: it gets no meetings.",
            ),
        );
    }
    if (inputs.probes.scaleliteHealth) {
        rules.push(
            rule(
                "ScaleliteUnhealthy",
                'probe_success{job="blackbox_scalelite"} == 0',
                "5m",
                "critical",
                "Scalelite's health check fails at {{ $labels.instance }}",
                "{{ $labels.instance }} has not answered 'success' for 5 minutes (Scalelite cannot reach its database or Redis, or is down).",
            ),
        );
    }
    if (inputs.probes.https.length + inputs.probes.tls.length > 0) {
        rules.push(
            rule(
                "CertificateExpiringSoon",
                "probe_ssl_earliest_cert_expiry - time() < 14 * 86400",
                "1h",
                "warning",
                "The certificate of {{ $labels.instance }} expires within 14 days",
                "The certificate served at {{ $labels.instance }} expires in {{ $value | humanizeDuration }}: certbot's renewal has not happened (see: journalctl -u certbot on that host).",
            ),
            rule(
                "ProbeFailing",
                'probe_success{job=~"blackbox_http|blackbox_tls"} == 0',
                "15m",
                "warning",
                "{{ $labels.instance }} does not answer from the Internet",
                "The probe of {{ $labels.instance }} ({{ $labels.job }}) has failed for 15 minutes: the service, its DNS name or its certificate is broken.",
            ),
        );
    }
    rules.push(
        rule(
            "DiskAlmostFull",
            `(1 - node_filesystem_avail_bytes{fstype!~"${NOT_DISKS}"} / node_filesystem_size_bytes{fstype!~"${NOT_DISKS}"}) * 100 > 85`,
            "15m",
            "warning",
            "Disk {{ $labels.mountpoint }} of {{ $labels.instance }} is over 85 % full",
            "{{ $labels.mountpoint }} ({{ $labels.device }}) on {{ $labels.host }} ({{ $labels.instance }}) is {{ $value | printf \"%.0f\" }} % full.",
        ),
        // The backup's textfile (bbb-backup's bbb_backup.prom) is written once a night: its age is the backup alerts'
        // business. node_exporter's `file` label is the file's name (1.3) or its path (newer).
        rule(
            "TextfileStale",
            'time() - node_textfile_mtime_seconds{file!~"(.*/)?bbb_backup[.]prom"} > 900',
            "10m",
            "warning",
            "Metrics file {{ $labels.file }} on {{ $labels.instance }} is stale",
            "{{ $labels.file }} in the node exporter's textfile directory on {{ $labels.host }} has not been rewritten for over 15 minutes: the timer that writes it is not running.",
        ),
    );
    if (inputs.recordings) {
        rules.push(
            rule(
                "RecordingsWaiting",
                "bbb_recordings_oldest_pending_age_seconds > 3600",
                "5m",
                "warning",
                "Recordings wait for processing on {{ $labels.instance }}",
                "The oldest recording waiting on {{ $labels.instance }} has waited {{ $value | humanizeDuration }}: recording processing is stuck (see: bbb-record --watch).",
            ),
        );
    }
    if (inputs.backups.length > 0) {
        const hosts = `host=~${promString(oneOf(inputs.backups))}`;
        rules.push(
            rule(
                "BackupTooOld",
                `time() - bbb_backup_last_success_timestamp_seconds{job="node", ${hosts}} > 36 * 3600`,
                "10m",
                "critical",
                "The last backup of {{ $labels.host }} is older than 36 hours",
                "{{ $labels.host }} ({{ $labels.instance }}) last backed up successfully {{ $value | humanizeDuration }} ago: the nightly backup fails (see: journalctl -u bbb-backup on that host).",
            ),
            rule(
                "BackupMissing",
                `up{job="node", ${hosts}} == 1 unless on(host) bbb_backup_last_success_timestamp_seconds{job="node"}`,
                "36h",
                "critical",
                "{{ $labels.host }} reports no successful backup",
                "{{ $labels.host }} ({{ $labels.instance }}) has run for 36 hours without reporting a successful backup.",
            ),
        );
    }
    return yamlFile("Prometheus alerting rules", { groups: [{ name: "bbb", rules }] });
}

/**
 * Where alertmanager.yml's SMTP password goes: the monitoring-setup step puts the password there (a JSON string) on
 * the host and makes the file root:prometheus 0640. Not `smtp_auth_password_file`: Ubuntu 22.04's Alertmanager
 * (0.23) does not know it (it came with 0.25, prometheus/alertmanager#3038).
 */
export const SMTP_PASSWORD_SLOT = '"@SMTP_PASSWORD@"';

/** alertmanager.yml: e-mail when alerts are configured, else a receiver that drops everything. */
export function alertmanagerConfig(inputs: MonitoringInputs): string {
    const route = { group_by: ["alertname", "instance"], group_wait: "30s", group_interval: "5m", repeat_interval: "4h" };
    if (!inputs.alerts) {
        return yamlFile("Alertmanager (no alerts configured: nothing is sent)", { route: { receiver: "null", ...route }, receivers: [{ name: "null" }] });
    }
    const { email, smtp } = inputs.alerts;
    return yamlFile("Alertmanager", {
        global: {
            smtp_smarthost: smtp.smarthost,
            smtp_from: smtp.from,
            smtp_require_tls: smtp.requireTls,
            ...(smtp.username ? { smtp_auth_username: smtp.username, smtp_auth_password: JSON.parse(SMTP_PASSWORD_SLOT) } : {}),
        },
        route: { receiver: "email", ...route },
        receivers: [{ name: "email", email_configs: [{ to: email, send_resolved: true }] }],
    });
}

/** The blackbox exporter's modules. */
export function blackboxConfig(): string {
    return yamlFile("Blackbox exporter", {
        modules: {
            http_2xx: { prober: "http", timeout: "10s", http: { preferred_ip_protocol: "ip4", fail_if_not_ssl: true } },
            tcp_tls: { prober: "tcp", timeout: "10s", tcp: { preferred_ip_protocol: "ip4", tls: true } },
            // Scalelite's /health_check answers 200 on failure too ("Health Check Failure: ..."): only the body tells.
            scalelite_health: {
                prober: "http",
                timeout: "10s",
                http: { preferred_ip_protocol: "ip4", fail_if_not_ssl: true, fail_if_body_not_matches_regexp: ["^success"] },
            },
        },
    });
}

export interface GrafanaFiles {
    /** /etc/grafana/grafana.ini */
    ini: string;
    /** /etc/grafana/provisioning/datasources/bbb.yaml */
    datasources: string;
    /** /etc/grafana/provisioning/dashboards/bbb.yaml */
    dashboards: string;
}

/** Grafana's configuration and provisioning. */
export function grafanaFiles(inputs: MonitoringInputs): GrafanaFiles {
    const ini = [
        "; Grafana. Managed by bbb (Pulumi, monitoring-setup step); changes here are overwritten.",
        "[paths]",
        "data = /var/lib/grafana",
        "logs = /var/log/grafana",
        "plugins = /var/lib/grafana/plugins",
        "provisioning = /etc/grafana/provisioning",
        "",
        "[server]",
        "http_addr = 127.0.0.1",
        "http_port = 3000",
        `domain = ${inputs.grafanaFqdn}`,
        `root_url = https://${inputs.grafanaFqdn}/`,
        "",
        "[security]",
        "admin_user = admin",
        // Applied when Grafana creates its database; the step resets it when it changes later.
        `admin_password = $__file{${MONITORING_PATHS.grafanaAdminPassword}}`,
        "cookie_secure = true",
        "disable_gravatar = true",
        "",
        "[users]",
        "allow_sign_up = false",
        "",
        "[auth.anonymous]",
        "enabled = false",
        "",
        "[analytics]",
        "reporting_enabled = false",
        "check_for_updates = false",
        "check_for_plugin_updates = false",
        "",
        "[log]",
        "mode = file",
        `level = ${inputs.privacy === "strict" ? "warn" : "info"}`,
        "",
    ].join("\n");
    const datasources = yamlFile("Grafana data sources", {
        apiVersion: 1,
        datasources: [{ name: DATASOURCE.name, uid: DATASOURCE.uid, type: "prometheus", access: "proxy", url: PROMETHEUS_URL, isDefault: true, editable: false }],
    });
    const dashboards = yamlFile("Grafana dashboard provider", {
        apiVersion: 1,
        providers: [
            {
                name: "bbb",
                type: "file",
                disableDeletion: true,
                allowUiUpdates: false,
                updateIntervalSeconds: 30,
                options: { path: MONITORING_PATHS.dashboards },
            },
        ],
    });
    return { ini, datasources, dashboards };
}
