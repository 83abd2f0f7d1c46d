// scripts/remote/node-exporter.sh, run for real against the stubs of test/stubs.ts and test/exporter-stubs.ts (apt-get
// and dpkg's conffile handling, systemctl keeping the arguments the exporter started with, curl and ss answering as the
// exporter listens); and the Scalelite host's program, scripts/remote/scalelite-metrics.sh, run for real against a
// docker that prints `rake status` as Scalelite v1.8.5 prints it, its output checked by the real promtool.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { SCRIPTS_DIR } from "../components/remote";
import { Sandbox } from "./sandbox";
import { exporterHost, modeOf, promtoolCheck } from "./exporter-stubs";

const IP = "10.20.0.7";
const PROGRAM = fs.readFileSync(path.join(SCRIPTS_DIR, "scalelite-metrics.sh"), "utf8");
const DEFAULTS = "root/etc/default/prometheus-node-exporter";
const ARGS = `ARGS="--web.listen-address=${IP}:9100 --collector.textfile.directory=/var/lib/prometheus/node-exporter"`;

let box: Sandbox;
const run = (inputs: Record<string, string> = {}, env: Record<string, string> = {}) =>
    box.run("node-exporter", { LISTEN_IPV4: IP, PORT: "9100", ROLE: "bbb", EXPORTER_WAIT_SECONDS: "1", ...inputs }, env);
const ok = (inputs: Record<string, string> = {}) => {
    const r = run(inputs);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    return r;
};
const read = (relative: string) => fs.readFileSync(box.file(relative), "utf8");
const forget = () => fs.writeFileSync(box.callLog, "");
/** What the step did to running services: systemctl's verbs that act (not is-active, enable). */
const actions = () => box.calls().filter((c) => /^systemctl (start|restart|stop|daemon-reload|disable)/.test(c));
const snapshot = () => new Map(box.files().map((f) => [f, read(`root/${f}`)]));

describe("node-exporter on a BBB server", () => {
    beforeEach(() => (box = exporterHost()));
    afterEach(() => box.cleanup());

    test("a first run binds the exporter to the fixed address only, with the textfile directory, and says so", () => {
        const r = ok();
        expect(read(DEFAULTS).split("\n").filter((l) => !l.startsWith("#"))).toEqual([ARGS, ""]);
        expect(modeOf(box.file(DEFAULTS))).toBe("644");
        // The package, without its Recommends (the -collectors timers), our conffile kept.
        expect(box.calls("apt-get")).toEqual(["apt-get install -y -q -o Dpkg::Options::=--force-confold --no-install-recommends prometheus-node-exporter"]);
        // What runs is what was written: the exporter started by the package already had these ARGS; restarted once.
        expect(read("running/prometheus-node-exporter")).toBe(read(DEFAULTS));
        expect(box.calls("systemctl").filter((c) => /start/.test(c))).toEqual(["systemctl start prometheus-node-exporter", "systemctl restart prometheus-node-exporter"]);
        expect(box.calls("ss")).toEqual(["ss -Hltn sport = :9100"]);
        expect(r.stdout).toContain(`node-exporter: the node exporter answers on ${IP}:9100 only`);
        expect(fs.statSync(box.file("root/var/lib/prometheus/node-exporter")).isDirectory()).toBe(true);
        // No timer but on the Scalelite host.
        expect(box.files().filter((f) => f.includes("scalelite"))).toEqual([]);
        expect(box.files().filter((f) => f.startsWith("var/lib/bbb-deploy/pending/"))).toEqual([]);
    });

    test("a second run changes nothing and restarts nothing", () => {
        ok();
        const before = snapshot();
        forget();
        ok();
        expect(actions()).toEqual([]);
        expect(snapshot()).toEqual(before);
    });

    test("a new address rewrites the arguments and restarts the exporter onto it", () => {
        ok();
        forget();
        const r = ok({ LISTEN_IPV4: "10.20.0.8" });
        expect(read(DEFAULTS)).toContain('ARGS="--web.listen-address=10.20.0.8:9100 ');
        expect(box.calls("systemctl").filter((c) => /start/.test(c))).toEqual(["systemctl restart prometheus-node-exporter"]);
        expect(r.stdout).toContain("answers on 10.20.0.8:9100 only");
    });

    test("a restart that failed is owed to the next run, which does it though the file is as wanted", () => {
        ok();
        const r = run({ LISTEN_IPV4: "10.20.0.8" }, { SYSTEMCTL_FAIL: "restart prometheus-node-exporter" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("node-exporter: error: cannot restart prometheus-node-exporter (see: journalctl -u prometheus-node-exporter)");
        forget();
        ok({ LISTEN_IPV4: "10.20.0.8" });
        expect(box.calls("systemctl").filter((c) => /start/.test(c))).toEqual(["systemctl restart prometheus-node-exporter"]);
        expect(read("running/prometheus-node-exporter")).toContain("10.20.0.8:9100");
    });

    test("a stopped exporter is started again, not restarted", () => {
        ok();
        fs.rmSync(box.file("units/prometheus-node-exporter"));
        forget();
        ok();
        expect(box.calls("systemctl").filter((c) => /start/.test(c))).toEqual(["systemctl start prometheus-node-exporter"]);
    });

    test("an exporter that does not answer fails the step, saying where to look", () => {
        const r = run({}, { NODE_EXPORTER_DOWN: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toBe(`node-exporter: error: the node exporter does not answer on http://${IP}:9100/metrics (see: journalctl -u prometheus-node-exporter)\n`);
    });

    test("an exporter listening on every address fails the step", () => {
        const r = run({}, { NODE_EXPORTER_WILDCARD: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toBe(`node-exporter: error: port 9100 is bound on '*:9100', not on ${IP}:9100 only (see: ss -ltnp 'sport = :9100')\n`);
    });

    test("refuses an address that is not IPv4 and an unknown role, changing nothing", () => {
        expect(run({ LISTEN_IPV4: "0.0.0.0:9100" }).stderr).toBe("node-exporter: error: LISTEN_IPV4 '0.0.0.0:9100' is not an IPv4 address\n");
        expect(run({ ROLE: "db" }).stderr).toBe("node-exporter: error: ROLE 'db' is not turn, bbb, scalelite, greenlight or monitoring\n");
        expect(run({ ROLE: "scalelite" }).stderr).toContain("SCALELITE_METRICS_PROGRAM");
        expect(box.calls()).toEqual([]);
    });
});

/**
 * `rake status` as Scalelite v1.8.5 prints it (lib/tasks/status.rake L27-40: `puts "\n#{table.pack(max_table_width: nil)}"`
 * of a Tabulo 2.8.2 table with border :blank), rendered as Tabulo renders it: each column as wide as its widest cell or
 * header (Table#pack), one space of padding each side (table.rb L165-168, DEFAULT_COLUMN_PADDING), no border or divider
 * characters (border.rb L55-61), empty rules dropped (util.rb condense_lines); headers centred, the extra space on the
 * left (cell.rb L187-192, align_header :center), numbers right-aligned, anything else (strings, nil as "") left-aligned
 * (cell.rb L202-213). The header comes with the first row: no server, no table (table.rb L387-420). Scalelite's values:
 * meetings, users, largest meeting and videos are Redis hash strings (app/models/server.rb, application_redis_attr), the
 * load a Float from a sorted set or nil for a disabled server (server.rb L276-283), version and tag strings or nil.
 */
type Cell = string | number | null;
function rakeStatus(rows: Cell[][]): string {
    const headers = ["HOSTNAME", "STATE", "STATUS", "MEETINGS", "USERS", "LARGEST MEETING", "VIDEOS", "LOAD", "BBB VERSION", "TAG"];
    if (rows.length === 0) return "\n";
    const text = (c: Cell) => (c === null ? "" : typeof c === "number" ? (Number.isInteger(c) ? c.toFixed(1) : String(c)) : c);
    const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => text(r[i]).length)));
    const header = headers.map((h, i) => {
        const pad = widths[i] - h.length;
        return ` ${" ".repeat(pad - Math.floor(pad / 2))}${h}${" ".repeat(Math.floor(pad / 2))} `;
    });
    const body = rows.map((r) => r.map((c, i) => ` ${typeof c === "number" ? text(c).padStart(widths[i]) : text(c).padEnd(widths[i])} `).join(""));
    return `\n${[header.join(""), ...body].join("\n")}\n`;
}

/** Several servers: one offline, one cordoned, one disabled, one never polled (its cells blank), TAG mostly empty. */
const POOL: Cell[][] = [
    ["bbb-1.example.org", "enabled", "online", "4", "37", "20", "12", 41.0, "3.0.4", null],
    ["bbb-2.example.org", "cordoned", "online", "1", "3", "3", "0", 1.0, "3.0.4", "blue"],
    ["bbb-3.example.org", "disabled", "offline", "0", "0", "0", "0", null, "3.0.4", null],
    ["bbb-10.example.org", "enabled", "offline", null, null, null, null, 0.0, null, null],
];
const POOL_METRICS = `# HELP scalelite_status_up 1 when Scalelite answered rake status, else 0.
# TYPE scalelite_status_up gauge
scalelite_status_up 1
# HELP scalelite_server_online 1 when Scalelite sees the server online (its poller), else 0.
# TYPE scalelite_server_online gauge
scalelite_server_online{server="bbb-1.example.org"} 1
scalelite_server_online{server="bbb-2.example.org"} 1
scalelite_server_online{server="bbb-3.example.org"} 0
scalelite_server_online{server="bbb-10.example.org"} 0
# HELP scalelite_server_state The server's state in Scalelite (enabled, cordoned or disabled): 1.
# TYPE scalelite_server_state gauge
scalelite_server_state{server="bbb-1.example.org",state="enabled"} 1
scalelite_server_state{server="bbb-2.example.org",state="cordoned"} 1
scalelite_server_state{server="bbb-3.example.org",state="disabled"} 1
scalelite_server_state{server="bbb-10.example.org",state="enabled"} 1
# HELP scalelite_server_meetings Meetings on the server as Scalelite last polled it.
# TYPE scalelite_server_meetings gauge
scalelite_server_meetings{server="bbb-1.example.org"} 4
scalelite_server_meetings{server="bbb-2.example.org"} 1
scalelite_server_meetings{server="bbb-3.example.org"} 0
# HELP scalelite_server_users Users on the server as Scalelite last polled it.
# TYPE scalelite_server_users gauge
scalelite_server_users{server="bbb-1.example.org"} 37
scalelite_server_users{server="bbb-2.example.org"} 3
scalelite_server_users{server="bbb-3.example.org"} 0
`;

describe("node-exporter on the Scalelite host", () => {
    beforeEach(() => (box = exporterHost()));
    afterEach(() => box.cleanup());

    test("installs the Scalelite metrics program, its oneshot service and a timer every minute, and runs it once", () => {
        const r = ok({ ROLE: "scalelite", SCALELITE_METRICS_PROGRAM: PROGRAM });
        expect(read("root/usr/local/sbin/bbb-scalelite-metrics")).toBe(PROGRAM);
        expect(modeOf(box.file("root/usr/local/sbin/bbb-scalelite-metrics"))).toBe("755");
        const service = read("root/etc/systemd/system/bbb-scalelite-metrics.service");
        expect(service).toContain("\nType=oneshot\nExecStart=/usr/local/sbin/bbb-scalelite-metrics /var/lib/prometheus/node-exporter/scalelite.prom\n");
        expect(read("root/etc/systemd/system/bbb-scalelite-metrics.timer")).toContain("\n[Timer]\nOnCalendar=minutely\n");
        expect(box.calls("systemctl")).toEqual(
            expect.arrayContaining([
                "systemctl daemon-reload",
                "systemctl enable --quiet bbb-scalelite-metrics.timer",
                "systemctl restart bbb-scalelite-metrics.timer",
                "systemctl start bbb-scalelite-metrics.service",
            ]),
        );
        expect(r.stdout).toContain("node-exporter: bbb-scalelite-metrics runs at minutely");
        const before = snapshot();
        forget();
        ok({ ROLE: "scalelite", SCALELITE_METRICS_PROGRAM: PROGRAM });
        expect(actions()).toEqual([]);
        expect(snapshot()).toEqual(before);
    });

    test("a program whose first run fails fails the step", () => {
        const r = run({ ROLE: "scalelite", SCALELITE_METRICS_PROGRAM: PROGRAM }, { SYSTEMCTL_FAIL: "start bbb-scalelite-metrics.service" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("node-exporter: error: bbb-scalelite-metrics failed its first run (see: journalctl -u bbb-scalelite-metrics.service)");
    });
});

describe("the Scalelite metrics program (scripts/remote/scalelite-metrics.sh)", () => {
    let sandbox: Sandbox;
    const out = () => sandbox.file("root/var/lib/prometheus/node-exporter/scalelite.prom");
    /** Runs the program as root's timer would, against a docker that prints `status` (or fails, RAKE_FAIL=1). */
    const metrics = (status: string, env: Record<string, string> = {}) => {
        sandbox.write("rake-status.txt", status);
        fs.mkdirSync(path.dirname(out()), { recursive: true });
        const r = spawnSync("bash", [path.join(SCRIPTS_DIR, "scalelite-metrics.sh"), out()], {
            env: { PATH: sandbox.bin, SANDBOX: sandbox.dir, ...env },
            encoding: "utf8",
        });
        return { ...r, text: fs.readFileSync(out(), "utf8") };
    };
    beforeEach(() => {
        sandbox = new Sandbox();
        // docker exec scalelite-api bin/rake status: the table; RAKE_FAIL=1: the container is not running (docker's
        // "Error response from daemon: container scalelite-api is not running", exit 1).
        sandbox.stub(
            "docker",
            `[ "$*" = "exec scalelite-api bin/rake status" ] || { echo "unexpected docker $*" >&2; exit 2; }
[ -z "\${RAKE_FAIL:-}" ] || { echo "Error response from daemon: container scalelite-api is not running" >&2; exit 1; }
cat "$SANDBOX/rake-status.txt"`,
        );
    });
    afterEach(() => sandbox.cleanup());

    test("several servers (offline, cordoned, disabled, never polled, TAG empty): their state, online, meetings and users", () => {
        const r = metrics(rakeStatus(POOL));
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(r.text).toBe(POOL_METRICS);
        expect(promtoolCheck(r.text)).toEqual({ status: 0, output: "" });
        expect(modeOf(out())).toBe("644");
        // Only rake status was asked (never rake servers, which prints the secrets), and no temporary file is left.
        expect(sandbox.calls("docker")).toEqual(["docker exec scalelite-api bin/rake status"]);
        expect(fs.readdirSync(path.dirname(out()))).toEqual(["scalelite.prom"]);
    });

    test("columns as wide as long host names and versions need, and a line that is no row (a log line) are read right", () => {
        const rows: Cell[][] = [["a-very-long-host-name.bbb.example.org", "cordoned", "online", "12", "345", "200", "80", 123.5, "3.0.10-beta", "a-long-tag"]];
        const r = metrics(`${rakeStatus(rows)}I, [2026-11-29T05:00:00.000000 #1]  INFO -- : done\n`);
        expect(r.text).toContain('scalelite_server_state{server="a-very-long-host-name.bbb.example.org",state="cordoned"} 1\n');
        expect(r.text).toContain('scalelite_server_meetings{server="a-very-long-host-name.bbb.example.org"} 12\n');
        expect(r.text).toContain('scalelite_server_users{server="a-very-long-host-name.bbb.example.org"} 345\n');
        expect(r.text.match(/^scalelite_server_online/gm)).toHaveLength(1);
    });

    test("a server never polled, disabled, with a number for a tag: no meetings or users read from other cells", () => {
        const r = metrics(rakeStatus([["bbb-11.example.org", "disabled", "offline", null, null, null, null, null, null, "42"]]));
        expect(r.text).toContain('scalelite_server_state{server="bbb-11.example.org",state="disabled"} 1\n');
        expect(r.text).not.toMatch(/^scalelite_server_(meetings|users)\{/m);
    });

    test("no server: the status is up, no server metric", () => {
        const r = metrics(rakeStatus([]));
        expect(r.text).toContain("\nscalelite_status_up 1\n");
        expect(r.text).not.toMatch(/^scalelite_server_/m);
        expect(promtoolCheck(r.text).status).toBe(0);
    });

    test("rake status failing: scalelite_status_up 0 and no server metric, the file still written, the program going on", () => {
        metrics(rakeStatus(POOL));
        const r = metrics(rakeStatus(POOL), { RAKE_FAIL: "1" });
        expect(r.status).toBe(0);
        expect(r.stderr).toBe("bbb-scalelite-metrics: docker exec scalelite-api bin/rake status failed (exit 1): scalelite_status_up 0\n");
        expect(r.text).toContain("\nscalelite_status_up 0\n");
        expect(r.text).not.toMatch(/^scalelite_server_/m);
        expect(promtoolCheck(r.text).status).toBe(0);
    });
});
