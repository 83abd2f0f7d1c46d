// scripts/remote/bbb-exporter.sh, run for real against the stubs of test/stubs.ts and test/exporter-stubs.ts (git over a
// stand-in of greenstatic/bigbluebutton-exporter, python3's venv and its pip, systemctl keeping the settings the exporter
// started with, curl answering as the exporter does with them), every program it starts traced (strace) for the secret;
// and the recordings program, scripts/remote/recordings-metrics.sh, run for real on a status tree of chosen mtimes, its
// output checked by the real promtool.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { SCRIPTS_DIR } from "../components/remote";
import { Sandbox } from "./sandbox";
import { exporterHost, modeOf, promtoolCheck, upstreamCommit } from "./exporter-stubs";
import { secretsOnCommandLines, straceWorks, Trace } from "./trace";

const REF = "8bfc6d865c8d02d20147083c5769198285b17ede";
const SECRET = "Gx7q2LmN9pR4tV8wZ1bC5dF3hJ6kS0aE";
const NEW_SECRET = "Qw3eR5tY7uI9oP1aS2dF4gH6jK8lZ0xC";
const IP = "10.20.0.11";
const PROGRAM = fs.readFileSync(path.join(SCRIPTS_DIR, "recordings-metrics.sh"), "utf8");
const INPUTS = {
    FQDN: "bbb-1.example.org",
    SECRET,
    LISTEN_IPV4: IP,
    PORT: "9688",
    PRIVACY: "standard",
    RECORDINGS: "false",
    EXPORTER_REF: REF,
    RECORDINGS_METRICS_PROGRAM: PROGRAM,
    EXPORTER_WAIT_SECONDS: "1",
};
const ENV = "root/etc/bigbluebutton-exporter/settings.env";
const UNIT = "root/etc/systemd/system/bigbluebutton-exporter.service";

let box: Sandbox;
const run = (inputs: Partial<typeof INPUTS> = {}, env: Record<string, string> = {}) => box.run("bbb-exporter", { ...INPUTS, ...inputs }, env);
const ok = (inputs: Partial<typeof INPUTS> = {}, env: Record<string, string> = {}) => {
    const r = run(inputs, env);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    return r;
};
const read = (relative: string) => fs.readFileSync(box.file(relative), "utf8");
const forget = () => fs.writeFileSync(box.callLog, "");
const actions = () => box.calls().filter((c) => /^(systemctl (start|restart|stop|daemon-reload|disable)|git clone|pip |python3 )/.test(c));
const snapshot = () => new Map(box.files().map((f) => [f, read(`root/${f}`)]));
const settings = () => read(ENV).split("\n").filter((l) => l && !l.startsWith("#")).sort();

/** A BBB server that answers its API with SECRET. */
function bbbServer(): Sandbox {
    const b = exporterHost();
    upstreamCommit(b, REF);
    b.write("running-salt", `${SECRET}\n`);
    return b;
}

describe("bbb-exporter", () => {
    beforeEach(() => (box = bbbServer()));
    afterEach(() => box.cleanup());

    test("a first run installs the pinned exporter in a venv, its settings root-only, and checks that it answers with bbb_api_up 1", () => {
        const r = ok();
        expect(box.calls("git")).toEqual([
            `git -C ${box.root}/opt/bigbluebutton-exporter/src rev-parse HEAD`,
            `git clone --quiet --no-checkout https://github.com/greenstatic/bigbluebutton-exporter.git ${box.root}/opt/bigbluebutton-exporter/src.new`,
            `git -C ${box.root}/opt/bigbluebutton-exporter/src.new -c advice.detachedHead=false checkout --quiet ${REF}`,
            `git -C ${box.root}/opt/bigbluebutton-exporter/src.new rev-parse HEAD`,
        ]);
        expect(box.calls("python3")).toEqual([`python3 -m venv ${box.root}/opt/bigbluebutton-exporter/venv`]);
        expect(box.calls("pip")).toEqual([
            `pip install --quiet --disable-pip-version-check --no-cache-dir -r ${box.root}/opt/bigbluebutton-exporter/src/requirements.txt`,
        ]);
        expect(read("root/opt/bigbluebutton-exporter/venv/installed")).toContain("prometheus-client==0.20.0\n");
        expect(settings()).toEqual([
            "API_BASE_URL=https://bbb-1.example.org/bigbluebutton/api/",
            `API_SECRET=${SECRET}`,
            "BBB_VERSION_READ_FROM_DISK=true",
            `BIND_IP=${IP}`,
            "PORT=9688",
            "RECORDINGS_METRICS=false",
            "RECORDINGS_METRICS_READ_FROM_DISK=true",
        ]);
        expect(modeOf(box.file(ENV))).toBe("600");
        expect(box.calls("chown")).toContainEqual(expect.stringMatching(/^chown root:root .*\/settings\.env\.\w+$/));
        const unit = read(UNIT);
        expect(unit).toContain("\nExecStart=/opt/bigbluebutton-exporter/venv/bin/python /opt/bigbluebutton-exporter/src/bbb-exporter/server.py\n");
        expect(unit).toContain("\nEnvironmentFile=/etc/bigbluebutton-exporter/settings.env\nDynamicUser=yes\n");
        expect(unit).toContain("\nBindReadOnlyPaths=/etc/bigbluebutton-exporter/hosts:/etc/hosts\n");
        expect(unit).toContain("\nStandardOutput=journal\nStandardError=journal\n");
        expect(unit).not.toContain(SECRET);
        expect(read("root/etc/bigbluebutton-exporter/hosts")).toContain("\n127.0.0.1 localhost bbb-1.example.org\n");
        expect(box.calls("systemctl").filter((c) => /start|reload/.test(c))).toEqual(["systemctl daemon-reload", "systemctl restart bigbluebutton-exporter"]);
        expect(box.calls("systemctl")).toContain("systemctl enable --quiet bigbluebutton-exporter");
        expect(box.calls("curl")).toEqual([`curl -fsS --max-time 30 http://${IP}:9688/metrics`]);
        expect(r.stdout).toContain(`bbb-exporter: the BigBlueButton exporter answers on ${IP}:9688\n`);
        // Neither the clone's leftovers nor owed work stay behind; recordings off: no timer.
        expect(box.files().filter((f) => /src\.new|pending\/|recordings/.test(f))).toEqual([]);
    });

    test("DEBUG is never set, whatever the inputs", () => {
        ok({ PRIVACY: "strict", RECORDINGS: "true" });
        expect(read(ENV)).not.toMatch(/^\s*DEBUG/m);
        expect(read(UNIT)).not.toMatch(/DEBUG/);
    });

    test("a second run changes nothing and restarts nothing", () => {
        ok({ RECORDINGS: "true" });
        const before = snapshot();
        forget();
        ok({ RECORDINGS: "true" });
        expect(actions()).toEqual([]);
        expect(snapshot()).toEqual(before);
    });

    test("a new secret rewrites the root-only settings and restarts the exporter, which then answers with it", () => {
        ok();
        box.write("running-salt", `${NEW_SECRET}\n`);
        forget();
        const r = ok({ SECRET: NEW_SECRET });
        expect(read(ENV)).toContain(`\nAPI_SECRET=${NEW_SECRET}\n`);
        expect(read(ENV)).not.toContain(SECRET);
        expect(modeOf(box.file(ENV))).toBe("600");
        expect(actions()).toEqual(["systemctl restart bigbluebutton-exporter"]);
        expect(read("running/bigbluebutton-exporter")).toContain(`API_SECRET=${NEW_SECRET}`);
        expect(r.stdout).toContain("wrote the exporter's settings");
    });

    test("an exporter that BigBlueButton does not answer (another secret) fails the step, saying what to check", () => {
        box.write("running-salt", `${NEW_SECRET}\n`);
        const r = run();
        expect(r.status).toBe(1);
        expect(r.stderr).toBe(
            `bbb-exporter: error: the BigBlueButton exporter answers on ${IP}:9688, but BigBlueButton's API does not answer it (bbb_api_up is not 1): ` +
                "is https://bbb-1.example.org/bigbluebutton/api/ up, with this secret? (bbb-conf --check; journalctl -u bigbluebutton-exporter)\n",
        );
    });

    test("an exporter that does not answer at all fails the step", () => {
        const r = run({}, { BBB_EXPORTER_DOWN: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toBe(`bbb-exporter: error: the BigBlueButton exporter does not answer on http://${IP}:9688/metrics (see: journalctl -u bigbluebutton-exporter)\n`);
    });

    test("a restart that failed fails the step and is owed to the next run", () => {
        const r = run({}, { SYSTEMCTL_FAIL: "restart bigbluebutton-exporter" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("\nbbb-exporter: error: cannot restart bigbluebutton-exporter (see: journalctl -u bigbluebutton-exporter)\n");
        // The restart is owed: the next run does it, though the files are as wanted.
        forget();
        ok();
        expect(actions()).toEqual(["systemctl restart bigbluebutton-exporter"]);
    });

    test("a commit the repository does not have fails before anything runs", () => {
        const r = run({ EXPORTER_REF: "0123456789abcdef0123456789abcdef01234567" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(
            "bbb-exporter: error: commit 0123456789abcdef0123456789abcdef01234567 is not in https://github.com/greenstatic/bigbluebutton-exporter.git",
        );
        expect(box.calls("systemctl")).toEqual([]);
        expect(run({ EXPORTER_REF: "v0.7.1" }).stderr).toBe("bbb-exporter: error: EXPORTER_REF 'v0.7.1' is not a full commit id\n");
    });

    test("GitHub out of reach fails the step, saying so, with nothing started", () => {
        const r = run({}, { GIT_DOWN: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toBe(
            "fatal: unable to access 'https://github.com/greenstatic/bigbluebutton-exporter.git': Could not resolve host: github.com\n" +
                "bbb-exporter: error: cannot clone https://github.com/greenstatic/bigbluebutton-exporter.git\n",
        );
        expect(box.calls("systemctl")).toEqual([]);
    });

    test("a pip that fails fails the step, and the next run makes the venv anew", () => {
        const r = run({}, { PIP_FAIL: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("ERROR: No matching distribution found for certifi\nbbb-exporter: error: pip cannot install the exporter's requirements (see above)\n");
        forget();
        ok();
        expect(box.calls("python3")).toHaveLength(1);
        expect(box.calls("git").filter((c) => c.includes("clone"))).toEqual([]);
    });

    test("privacy strict: the exporter's output goes nowhere", () => {
        ok({ PRIVACY: "strict" });
        expect(read(UNIT)).toContain("\nStandardOutput=null\nStandardError=null\n");
    });

    test("recordings on: the recordings program and its timer every 5 minutes; off again: both gone, and their metrics", () => {
        const on = ok({ RECORDINGS: "true" });
        expect(read("root/usr/local/sbin/bbb-recordings-metrics")).toBe(PROGRAM);
        expect(read("root/etc/systemd/system/bbb-recordings-metrics.service")).toContain(
            "\nExecStart=/usr/local/sbin/bbb-recordings-metrics /var/bigbluebutton/recording/status /var/lib/prometheus/node-exporter/bbb_recordings.prom\n",
        );
        expect(read("root/etc/systemd/system/bbb-recordings-metrics.timer")).toContain("\nOnCalendar=*:0/5\n");
        expect(box.calls("systemctl")).toContain("systemctl start bbb-recordings-metrics.service");
        expect(read(ENV)).toContain("\nRECORDINGS_METRICS=true\n");
        expect(on.stdout).toContain("bbb-recordings-metrics runs at *:0/5");
        box.write("root/var/lib/prometheus/node-exporter/bbb_recordings.prom", "bbb_recordings_pending 0\n");
        forget();
        const off = ok({ RECORDINGS: "false" });
        expect(box.calls("systemctl")).toEqual(
            expect.arrayContaining(["systemctl disable --quiet bbb-recordings-metrics.timer", "systemctl stop --quiet bbb-recordings-metrics.timer", "systemctl restart bigbluebutton-exporter"]),
        );
        expect(box.files().filter((f) => f.includes("recordings"))).toEqual([]);
        expect(read(ENV)).toContain("\nRECORDINGS_METRICS=false\n");
        expect(off.stdout).toContain("removed bbb-recordings-metrics");
    });

    test("refuses a secret it could not write safely and recordings without their program", () => {
        expect(run({ SECRET: "short" }).stderr).toBe("bbb-exporter: error: the API secret must be at least 32 letters and digits\n");
        expect(run({ RECORDINGS: "true", RECORDINGS_METRICS_PROGRAM: "" }).stderr).toContain("RECORDINGS_METRICS_PROGRAM");
        expect(box.calls()).toEqual([]);
    });
});

describe("the secret", () => {
    const works = straceWorks();
    (works === true ? test : test.skip)("is on no command line and in no output: a first run, a re-run and a rotation, traced", () => {
        box = bbbServer();
        const trace = new Trace();
        try {
            const outputs = [ok({ RECORDINGS: "true" }, trace.env), ok({ RECORDINGS: "true" }, trace.env)];
            box.write("running-salt", `${NEW_SECRET}\n`);
            outputs.push(ok({ RECORDINGS: "true", SECRET: NEW_SECRET }, trace.env));
            const execs = trace.execs();
            expect(execs.length).toBeGreaterThan(50);
            expect(execs.some((e) => e.argv.includes("restart"))).toBe(true);
            expect(secretsOnCommandLines(execs, [SECRET, NEW_SECRET])).toEqual([]);
            for (const o of outputs) for (const s of [SECRET, NEW_SECRET]) expect(`${o.stdout}${o.stderr}`).not.toContain(s);
        } finally {
            trace.remove();
            box.cleanup();
        }
    });
});

describe("the recordings program (scripts/remote/recordings-metrics.sh)", () => {
    let sandbox: Sandbox;
    const status = () => sandbox.file("root/var/bigbluebutton/recording/status");
    const out = () => sandbox.file("root/var/lib/prometheus/node-exporter/bbb_recordings.prom");
    const NOW = Math.floor(Date.now() / 1000);
    /** A status file written `ago` seconds ago (touch -d @EPOCH sets its mtime, as the workers' FileUtils.touch would have then). */
    const file = (relative: string, ago: number) => {
        sandbox.write(`root/var/bigbluebutton/recording/status/${relative}`, "");
        const r = spawnSync("touch", ["-d", `@${NOW - ago}`, path.join(status(), relative)]);
        expect(r.status).toBe(0);
    };
    const metrics = () => {
        fs.mkdirSync(path.dirname(out()), { recursive: true });
        const r = spawnSync("bash", [path.join(SCRIPTS_DIR, "recordings-metrics.sh"), status(), out()], { env: { PATH: sandbox.bin }, encoding: "utf8" });
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        const text = fs.readFileSync(out(), "utf8");
        expect(promtoolCheck(text)).toEqual({ status: 0, output: "" });
        const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)![1]);
        return { text, pending: value("bbb_recordings_pending"), age: value("bbb_recordings_oldest_pending_age_seconds"), failed: value("bbb_recordings_failed") };
    };
    beforeEach(() => (sandbox = new Sandbox()));
    afterEach(() => sandbox.cleanup());

    const A = "6e35e3b2778883f5db637d7a5dba0a427f692e91-1732860000000";
    const B = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567-1732863600000";
    const C = "ffeeddccbbaa99887766554433221100ffeeddcc-1732867200000";
    const D = "1234567890abcdef1234567890abcdef12345678-1732870800000";
    const E = "abcdefabcdefabcdefabcdefabcdefabcdefabcd-1732874400000";

    test("pending: archived, published in no format, failed nowhere; .norecord meetings ignored; .fail files counted", () => {
        // A: archived 2 h ago, sane, being processed: pending, the oldest.
        file(`archived/${A}.done`, 7200);
        file(`sanity/${A}.done`, 7100);
        // B: archived 30 min ago, processed, not yet published: pending.
        file(`archived/${B}.done`, 1800);
        file(`processed/${B}-presentation.done`, 600);
        // C: published (one format is enough): not pending.
        file(`archived/${C}.done`, 90000);
        file(`published/${C}-presentation.done`, 86000);
        // D: no recording marks: nothing more happens to it.
        file(`archived/${D}.norecord`, 50000);
        // E: processing failed (and it is older than A): not pending, counted as failed.
        file(`archived/${E}.done`, 9000);
        file(`processed/${E}-video.fail`, 8000);
        file(`published/${E}-presentation.fail`, 7000);
        const m = metrics();
        expect(m.pending).toBe(2);
        expect(m.age).toBeGreaterThanOrEqual(7200);
        expect(m.age).toBeLessThan(7200 + 30);
        expect(m.failed).toBe(2);
        // Aggregates only: no meeting id in the file, and nothing but it is left in its directory.
        for (const id of [A, B, C, D, E]) expect(m.text).not.toContain(id.slice(0, 12));
        expect(fs.readdirSync(path.dirname(out()))).toEqual(["bbb_recordings.prom"]);
    });

    test("an archive that failed counts as failed, not pending", () => {
        file(`archived/${A}.fail`, 300);
        file(`sanity/${B}.fail`, 300);
        file(`archived/${B}.done`, 400);
        expect(metrics()).toMatchObject({ pending: 0, age: 0, failed: 2 });
    });

    test("nothing recorded yet (no status directory): zeros", () => {
        const m = metrics();
        expect(m).toMatchObject({ pending: 0, age: 0, failed: 0 });
        expect(m.text).toBe(`# HELP bbb_recordings_pending Meetings archived for their recording but not yet published, none of its steps failed.
# TYPE bbb_recordings_pending gauge
bbb_recordings_pending 0
# HELP bbb_recordings_oldest_pending_age_seconds Seconds since the oldest pending recording was archived (0 when none is pending).
# TYPE bbb_recordings_oldest_pending_age_seconds gauge
bbb_recordings_oldest_pending_age_seconds 0
# HELP bbb_recordings_failed Recording status files that mark a failed step (.fail).
# TYPE bbb_recordings_failed gauge
bbb_recordings_failed 0
`);
    });
});
