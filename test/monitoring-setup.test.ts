// scripts/remote/monitoring-setup.sh, run for real against the stubs of test/stubs.ts and the ones below; the
// checkers are the real promtool, amtool and blackbox exporter (scripts/system-tools.sh).
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { alertmanagerConfig, alertRules, blackboxConfig, grafanaFiles, MonitoringInputs, prometheusConfig } from "../components/monitoring-config";
import { Sandbox } from "./sandbox";
import { installStubs } from "./stubs";
import { secretsOnCommandLines, straceWorks, Trace } from "./trace";

const PLATFORM: MonitoringInputs = {
    hosts: [
        { name: "bbb-1", role: "bbb", fqdn: "bbb-1.example.org", privateIpv4: "10.0.0.11" },
        { name: "monitoring", role: "monitoring", fqdn: "monitoring.example.org", privateIpv4: "10.0.0.7" },
    ],
    probes: { https: ["https://bbb-1.example.org/bigbluebutton/api"], tls: [] },
    drained: [],
    privacy: "standard",
    recordings: false,
    backups: [],
    alerts: { email: "ops@example.org", smtp: { smarthost: "smtp.example.org:587", from: "mon@example.org", username: "mon", requireTls: true } },
    grafanaFqdn: "monitoring.example.org",
};
const FINGERPRINT = "B53AE77BADB630A683046005963FA27710458545";
const ADMIN_PASSWORD = "Adm1n-Pa55word-4e7c1b";
const SMTP_PASSWORD = "Smtp-Pa55word-9a2f0d";
const UPSTREAM = { "all_servers.json": '{"uid": "HIbd_CXZz"}\n', "server_instance_node_exporter.json": '{"uid": "HIbd_CXZz3"}\n' };
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

function inputs(platform: MonitoringInputs = PLATFORM): Record<string, string> {
    const grafana = grafanaFiles(platform);
    return {
        FQDN: "monitoring.example.org",
        EMAIL: "ops@example.org",
        PROMETHEUS_YML: prometheusConfig(platform),
        RULES_YML: alertRules(platform),
        ALERTMANAGER_YML: alertmanagerConfig(platform),
        BLACKBOX_YML: blackboxConfig(),
        GRAFANA_INI: grafana.ini,
        GRAFANA_DATASOURCES: grafana.datasources,
        GRAFANA_DASHBOARDS: grafana.dashboards,
        POOL_DASHBOARD: fs.readFileSync(path.join(__dirname, "..", "monitoring", "dashboards", "pool-overview.json"), "utf8"),
        UPSTREAM_DASHBOARDS: Object.entries(UPSTREAM)
            .map(([name, text]) => `${sha256(text)} ${name} https://raw.githubusercontent.com/greenstatic/bigbluebutton-exporter/8bfc6d865c8d02d20147083c5769198285b17ede/extras/dashboards/${name}`)
            .join("\n"),
        GRAFANA_VERSION: "11.6.5",
        PRIVACY: platform.privacy,
        GRAFANA_ADMIN_PASSWORD: ADMIN_PASSWORD,
        SMTP_PASSWORD,
    };
}

let box: Sandbox;
beforeEach(() => {
    box = new Sandbox();
    installStubs(box);
    // The real checkers.
    for (const tool of ["promtool", "amtool", "prometheus-blackbox-exporter"]) fs.symlinkSync(`/usr/bin/${tool}`, path.join(box.bin, tool));
    // apt-get (apt 2.4, cmdline/apt-get.cc): installs; a `grafana=VERSION` is recorded as dpkg's status would have it.
    box.stub(
        "apt-get",
        `for a in "$@"; do case $a in grafana=*) echo "\${a#grafana=}" > "$SANDBOX/grafana-version" ;; esac; done`,
    );
    // dpkg-query -W -f='\${Version}' PKG (dpkg 1.21, src/query/main.c): the installed version, or "dpkg-query: no
    // packages found matching PKG" and exit 1.
    box.stub(
        "dpkg-query",
        `[ -f "$SANDBOX/grafana-version" ] || { echo "dpkg-query: no packages found matching \${!#}" >&2; exit 1; }
printf '%s' "$(cat "$SANDBOX/grafana-version")"`,
    );
    // gpg --show-keys --with-colons FILE (GnuPG 2.2, doc/DETAILS): a pub record, then its fpr record (fingerprint in
    // field 10), per key. The test's key files hold `primary FINGERPRINT` lines in place of key material.
    box.stub(
        "gpg",
        `file=\${!#}; [ -f "$file" ] || { echo "gpg: can't open '$file': No such file or directory" >&2; exit 2; }
awk '$1 == "primary" { print "pub:-:4096:1:" substr($2, 25) ":1487788586:1787788586::-:::scSC::::::23::0:"; print "fpr:::::::::" $2 ":"; print "uid:-::::1487788586::0::Grafana Labs <engineering@grafana.com>::::::::::0:" }' "$file"`,
    );
    // curl -fsSL -o FILE URL (curl 7.81): Grafana's key from $SANDBOX/grafana.key, the exporter's dashboards from
    // $SANDBOX/upstream/; anything else is GitHub's 404, which -f turns into exit 22.
    box.stub(
        "curl",
        `out=""; url=""; prev=""
for a in "$@"; do [ "$prev" = -o ] && out=$a; case $a in https://*) url=$a ;; esac; prev=$a; done
case $url in
  https://apt.grafana.com/gpg.key) cp "$SANDBOX/grafana.key" "$out" ;;
  https://raw.githubusercontent.com/*) [ -f "$SANDBOX/upstream/\${url##*/}" ] || { echo "curl: (22) The requested URL returned error: 404" >&2; exit 22; }; cp "$SANDBOX/upstream/\${url##*/}" "$out" ;;
  *) echo "curl: (22) The requested URL returned error: 404" >&2; exit 22 ;;
esac`,
    );
    // runuser -u USER -- COMMAND... (util-linux 2.37): runs COMMAND as USER.
    box.stub("runuser", `while [ "$1" != -- ]; do shift; done; shift; exec "$@"`);
    // grafana-cli admin reset-admin-password --password-from-stdin (grafana/grafana pkg/cmd/grafana-cli/commands/
    // reset_password_command.go): reads one line of stdin, refuses one under 4 characters ("new password is too
    // short"), stores it in Grafana's database ($SANDBOX/grafana-db-password here).
    box.stub(
        "grafana-cli",
        `[ "$*" = "admin reset-admin-password --password-from-stdin" ] || { echo "grafana-cli: unexpected $*" >&2; exit 2; }
IFS= read -r password || true
[ "\${#password}" -ge 4 ] || { echo "Error: ✗ new password is too short" >&2; exit 1; }
printf '%s' "$password" > "$SANDBOX/grafana-db-password"; echo "Admin password changed successfully ✔"`,
    );
    box.write("grafana.key", `primary ${FINGERPRINT}\n`);
    for (const [name, text] of Object.entries(UPSTREAM)) box.write(`upstream/${name}`, text);
});
afterEach(() => box.cleanup());

/** The files the step wrote, links (sites-enabled/) left out. */
const files = () => box.files().filter((f) => !fs.lstatSync(box.file(`root/${f}`)).isSymbolicLink());
const read = (relative: string) => fs.readFileSync(box.file(`root/${relative}`), "utf8");
const mode = (relative: string) => (fs.statSync(box.file(`root/${relative}`)).mode & 0o777).toString(8);
const restarts = () => box.calls("systemctl").filter((c) => /^systemctl (restart|reload) /.test(c));
const clearCalls = () => fs.writeFileSync(box.callLog, "");
const chowned = (relative: string) => box.calls("chown").filter((c) => c.includes(`/${relative}.`)).map((c) => c.split(" ")[1]);

test("installs the services, checks and writes their files, starts them, gets the certificate, serves Grafana over HTTPS", () => {
    const r = box.run("monitoring-setup", inputs());
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(box.calls("apt-get")).toEqual([
        "apt-get install -y -q --no-install-recommends prometheus prometheus-alertmanager prometheus-blackbox-exporter nginx certbot gnupg curl",
        "apt-get update -q",
        "apt-get install -y -q --no-install-recommends --allow-downgrades grafana=11.6.5",
    ]);
    expect(read("etc/apt/sources.list.d/grafana.list")).toContain("deb [signed-by=/etc/apt/keyrings/grafana.asc] https://apt.grafana.com stable main");
    expect(read("etc/apt/preferences.d/grafana")).toContain("Pin: version 11.6.5\nPin-Priority: 1001");
    expect(read("etc/default/prometheus")).toContain('ARGS="--storage.tsdb.retention.time=15d --web.listen-address=127.0.0.1:9090"');
    expect(read("etc/default/prometheus-alertmanager")).toContain('ARGS="--cluster.listen-address= --web.listen-address=127.0.0.1:9093"');
    expect(read("etc/default/prometheus-blackbox-exporter")).toContain("--web.listen-address=127.0.0.1:9115");
    expect(read("etc/prometheus/prometheus.yml")).toBe(prometheusConfig(PLATFORM));
    expect(read("etc/prometheus/rules/bbb.yml")).toBe(alertRules(PLATFORM));
    expect(read("etc/grafana/grafana.ini")).toBe(grafanaFiles(PLATFORM).ini);
    expect(box.files().filter((f) => f.startsWith("var/lib/grafana/dashboards/")).sort()).toEqual([
        "var/lib/grafana/dashboards/bbb/all_servers.json",
        "var/lib/grafana/dashboards/bbb/pool-overview.json",
        "var/lib/grafana/dashboards/bbb/server_instance_node_exporter.json",
    ]);
    expect(restarts()).toEqual(
        ["prometheus-blackbox-exporter", "prometheus-alertmanager", "prometheus", "grafana-server"].map((u) => `systemctl restart ${u}`).concat(["systemctl reload nginx"]),
    );
    expect(box.calls("certbot")).toEqual([
        `certbot certonly --webroot -w ${box.root}/var/www/bbb-acme --non-interactive --agree-tos --keep-until-expiring -m ops@example.org -d monitoring.example.org --cert-name monitoring.example.org`,
    ]);
    const site = read("etc/nginx/sites-available/bbb-monitoring");
    expect(site).toContain("proxy_pass http://127.0.0.1:3000;");
    expect(site).toContain(`ssl_certificate ${box.root}/etc/letsencrypt/live/monitoring.example.org/fullchain.pem;`);
    expect(site).toContain("proxy_set_header Upgrade $http_upgrade;");
    expect(site).toContain("return 301 https://monitoring.example.org$request_uri;");
    expect(site).not.toContain("access_log off");
    expect(fs.readlinkSync(box.file("root/etc/nginx/sites-enabled/bbb-monitoring"))).toBe("/etc/nginx/sites-available/bbb-monitoring");
    // No reset on a new Grafana: it takes admin_password from grafana.ini when it creates its database.
    expect(box.calls("grafana-cli")).toEqual([]);
});

test("the secrets are only in their two files, readable by root and the service's group, and in no output", () => {
    const r = box.run("monitoring-setup", inputs());
    expect(r.status).toBe(0);
    const holding = (secret: string) => files().filter((f) => fs.readFileSync(box.file(`root/${f}`), "utf8").includes(secret));
    expect(holding(ADMIN_PASSWORD)).toEqual(["etc/grafana/admin_password"]);
    // Ubuntu 22.04's Alertmanager (0.23) reads no password file: the password is in its configuration.
    expect(holding(SMTP_PASSWORD)).toEqual(["etc/prometheus/alertmanager.yml"]);
    expect(read("etc/grafana/admin_password")).toBe(ADMIN_PASSWORD);
    expect(mode("etc/grafana/admin_password")).toBe("640");
    expect(mode("etc/prometheus/alertmanager.yml")).toBe("640");
    expect(chowned("etc/grafana/admin_password")).toEqual(["root:grafana"]);
    expect(chowned("etc/prometheus/alertmanager.yml")).toEqual(["root:prometheus"]);
    expect(chowned("etc/grafana/grafana.ini")).toEqual(["root:grafana"]);
    expect(mode("etc/grafana/grafana.ini")).toBe("640");
    expect(`${r.stdout}${r.stderr}`).not.toContain(ADMIN_PASSWORD);
    expect(`${r.stdout}${r.stderr}`).not.toContain(SMTP_PASSWORD);
});

test("a second run with the same inputs changes nothing, downloads nothing and restarts nothing", () => {
    expect(box.run("monitoring-setup", inputs()).status).toBe(0);
    const before = files().map((f) => [f, read(f)]);
    clearCalls();
    const r = box.run("monitoring-setup", inputs());
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(files().map((f) => [f, read(f)])).toEqual(before);
    expect(restarts()).toEqual([]);
    expect(box.calls("curl")).toEqual([]);
    expect(box.calls("apt-get").filter((c) => c.includes("grafana") || c.includes("update"))).toEqual([]);
});

test("a broken PROMETHEUS_YML is refused before anything is installed or restarted", () => {
    expect(box.run("monitoring-setup", inputs()).status).toBe(0);
    clearCalls();
    const r = box.run("monitoring-setup", { ...inputs(), PROMETHEUS_YML: prometheusConfig(PLATFORM).replace('"30s"', '"thirty seconds"') });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("monitoring-setup: error: PROMETHEUS_YML (with RULES_YML) is refused by promtool (above); nothing was installed or restarted");
    expect(read("etc/prometheus/prometheus.yml")).toBe(prometheusConfig(PLATFORM));
    expect(box.calls("systemctl")).toEqual([]);
});

test("a broken rule is refused on a new host too: no configuration is written", () => {
    const r = box.run("monitoring-setup", { ...inputs(), RULES_YML: alertRules(PLATFORM).replace('"up{job=\\"node\\"} == 0"', '"up{job=\\"node\\"} =="') });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("is refused by promtool");
    expect(box.files().filter((f) => f.startsWith("etc/prometheus") || f.startsWith("etc/grafana"))).toEqual([]);
});

test("a new admin password is set through grafana cli's stdin, on no command line", () => {
    const works = straceWorks();
    if (works !== true) throw new Error(works);
    expect(box.run("monitoring-setup", inputs()).status).toBe(0);
    box.write("root/var/lib/grafana/grafana.db", "");
    clearCalls();
    const NEW = "N3w-Adm1n-Pa55word-77d0";
    const trace = new Trace();
    try {
        const r = box.run("monitoring-setup", { ...inputs(), GRAFANA_ADMIN_PASSWORD: NEW }, trace.env);
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(`${r.stdout}`).not.toContain(NEW);
        expect(fs.readFileSync(box.file("grafana-db-password"), "utf8")).toBe(NEW);
        expect(read("etc/grafana/admin_password")).toBe(NEW);
        expect(box.calls("runuser")).toEqual(["runuser -u grafana -- grafana-cli admin reset-admin-password --password-from-stdin"]);
        expect(restarts()).toEqual([]);
        const execs = trace.execs();
        expect(execs.some((e) => e.argv.includes("grafana-cli"))).toBe(true);
        expect(secretsOnCommandLines(execs, [NEW, ADMIN_PASSWORD, SMTP_PASSWORD])).toEqual([]);
    } finally {
        trace.remove();
    }
});

test("a failed password reset is retried by the next run", () => {
    expect(box.run("monitoring-setup", inputs()).status).toBe(0);
    box.write("root/var/lib/grafana/grafana.db", "");
    const stub = fs.readFileSync(path.join(box.bin, "grafana-cli"), "utf8");
    box.stub("grafana-cli", 'echo "Error: ✗ could not read user (id: 1) from database. Error: database is locked" >&2; exit 1');
    const r = box.run("monitoring-setup", { ...inputs(), GRAFANA_ADMIN_PASSWORD: "An0ther-Pa55word" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("grafana cli could not set the admin password");
    fs.writeFileSync(path.join(box.bin, "grafana-cli"), stub);
    expect(box.run("monitoring-setup", { ...inputs(), GRAFANA_ADMIN_PASSWORD: "An0ther-Pa55word" }).status).toBe(0);
    expect(fs.readFileSync(box.file("grafana-db-password"), "utf8")).toBe("An0ther-Pa55word");
});

test("strict privacy: nginx logs no request", () => {
    expect(box.run("monitoring-setup", inputs({ ...PLATFORM, privacy: "strict" })).status).toBe(0);
    const site = read("etc/nginx/sites-available/bbb-monitoring");
    expect(site.match(/access_log off;/g)).toHaveLength(2);
    expect(site.match(/error_log \/var\/log\/nginx\/error.log emerg;/g)).toHaveLength(2);
});

test("a dashboard whose sum is not the pinned one is refused and not installed", () => {
    box.write("upstream/all_servers.json", '{"uid": "HIbd_CXZz", "tampered": true}\n');
    const r = box.run("monitoring-setup", inputs());
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/error: the dashboard https:\/\/raw\.githubusercontent\.com\/.*\/all_servers\.json has sha256 [0-9a-f]{64}, not the pinned [0-9a-f]{64}: refusing it/);
    expect(fs.existsSync(box.file("root/var/lib/grafana/dashboards/bbb/all_servers.json"))).toBe(false);
});

test("a Grafana signing key with another fingerprint is refused", () => {
    box.write("grafana.key", "primary 0E22EB88E39E12277A7760AE9E439B102CF3C0C6\n");
    const r = box.run("monitoring-setup", inputs());
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`has the fingerprint(s) '0E22EB88E39E12277A7760AE9E439B102CF3C0C6', not ${FINGERPRINT}: refusing it`);
    expect(fs.existsSync(box.file("root/etc/apt/keyrings/grafana.asc"))).toBe(false);
    expect(box.calls("apt-get").filter((c) => c.includes("grafana"))).toEqual([]);
});

test("SMTP authentication without a password is refused; without alerts the password leaves Alertmanager's configuration", () => {
    expect(box.run("monitoring-setup", { ...inputs(), SMTP_PASSWORD: "" }).stderr).toContain("SMTP_PASSWORD is empty");
    expect(box.run("monitoring-setup", inputs()).status).toBe(0);
    clearCalls();
    const noAlerts = { ...PLATFORM, alerts: undefined };
    expect(box.run("monitoring-setup", { ...inputs(noAlerts), SMTP_PASSWORD: "" }).status).toBe(0);
    expect(read("etc/prometheus/alertmanager.yml")).not.toContain(SMTP_PASSWORD);
    expect(restarts()).toEqual(["systemctl restart prometheus-alertmanager"]);
});

test("an SMTP password with quotes, backslashes, & and $ reaches Alertmanager as it is (the real amtool reads it back)", () => {
    const odd = `p"a\\s&s$w'o\\"rd&&`;
    expect(box.run("monitoring-setup", { ...inputs(), SMTP_PASSWORD: odd }).status).toBe(0);
    const written = read("etc/prometheus/alertmanager.yml");
    expect(JSON.parse(written.slice(written.indexOf("\n") + 1)).global.smtp_auth_password).toBe(odd);
    const check = spawnSync("amtool", ["check-config", box.file("root/etc/prometheus/alertmanager.yml")], { encoding: "utf8" });
    expect([check.status, check.stdout]).toEqual([0, expect.stringContaining("SUCCESS")]);
});
