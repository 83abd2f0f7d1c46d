// scripts/remote/backup-setup.sh and the two programs it installs (backup-run.sh as bbb-backup, backup-restore.sh as
// bbb-restore), run for real on a Scalelite host: the real restic (a local repository: only RESTIC_REPOSITORY differs
// from Swift), the real PostgreSQL of test/postgres.ts behind a docker stub, Redis modelled by that stub (below), and
// the stubs of ./stubs (systemctl, apt-get, chown). The programs run as bbb-backup.service runs them: the settings
// file read as systemd's EnvironmentFile, the ExecStart of the unit the step wrote. Everything is traced (strace):
// no secret may reach a command line.
import { spawn, spawnSync } from "child_process";
import { randomUUID } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { RealPostgres } from "./postgres";
import { Sandbox, STRACE, STRACE_ARGS, StepResult } from "./sandbox";
import { installStubs, swiftRestic } from "./stubs";
import { secretsOnCommandLines, straceWorks, Trace } from "./trace";

const RESTIC_PASSWORD = "Restic-Pa55word-0f3c9a7e21";
const APP_CRED_SECRET = "AppCredSecret_x7Rk2Lw9Qp4Zt8Vn";
const REDIS_DIR = "/var/lib/bbb-data/redis";
/** Greenlight's uploads: a files part, on this one host with the other two kinds to keep the test short. */
const UPLOADS = "/var/lib/bbb-data/greenlight";
const APPS = ["scalelite-api", "scalelite-poller", "scalelite-recording-importer"];

/**
 * docker, as far as the backup programs use it (docker/cli 24 to 29, cli/command/container/): containers in
 * $SANDBOX/docker/<name>/ (running, image, args, data: the host directory mounted at /data). `inspect -f` prints
 * .State.Running or .Config.Image, or fails as the CLI does for what is not there ("Error: No such object: NAME",
 * exit 1); stop, start, rm and exec of a container that is not there fail as the daemon answers ("Error response from
 * daemon: No such container: NAME", exit 1), exec in a stopped one likewise (moby daemon/exec.go's errNotRunning:
 * "container NAME is not running"). `exec [-i] C pg_dump|pg_restore ARGS` runs the real program on RealPostgres's
 * socket (PG_CLIENT: its shell words without the program); PG_DUMP_FAIL=1: pg_dump writes part of the dump, then
 * fails as it does when the server goes away mid-table (src/bin/pg_dump/pg_dump.c, dumpTableData_copy: "Dumping the
 * contents of table \"%s\" failed: PQgetResult() failed.", exit 1).
 * `exec C redis-cli ...` models Redis 7 (redis/redis-doc docs/management/persistence.md): the data set in memory is
 * $SANDBOX/docker/<C>/memory; BGSAVE writes it to DATA/dump.rdb under a temporary name and renames it, at once
 * ("Background saving started"); INFO persistence prints the fields the programs read (CRLF line ends, as
 * redis-cli prints a bulk reply); CONFIG SET appendonly yes writes the AOF from memory (DATA/appendonlydir, as Redis
 * 7's multi-part AOF) and answers OK. A Redis container that starts loads its data as Redis does: with
 * --appendonly yes from the AOF only, ignoring dump.rdb (empty without an AOF), else from dump.rdb.
 */
const DOCKER = `
verb=$1; shift
d="$SANDBOX/docker"
gone() { echo "Error response from daemon: No such container: $1" >&2; exit 1; }
load() {
  local c=$1 data; data=$(cat "$d/$c/data" 2>/dev/null) || return 0
  if grep -qx -- --appendonly "$d/$c/args" && grep -A1 -x -- --appendonly "$d/$c/args" | grep -qx yes; then
    cat "$data/appendonlydir/appendonly.aof.1.base.rdb" > "$d/$c/memory" 2>/dev/null || : > "$d/$c/memory"
  else
    cat "$data/dump.rdb" > "$d/$c/memory" 2>/dev/null || : > "$d/$c/memory"
  fi
}
case $verb in
  inspect)
    [ "$1" = -f ] || { echo "docker stub: inspect without -f" >&2; exit 2; }
    [ -d "$d/$3" ] || { echo "Error: No such object: $3" >&2; exit 1; }
    case $2 in *State.Running*) cat "$d/$3/running" ;; *Config.Image*) cat "$d/$3/image" ;; *) echo "docker stub: format $2" >&2; exit 2 ;; esac ;;
  stop) [ -d "$d/$1" ] || gone "$1"; echo false > "$d/$1/running"; echo "$1" ;;
  start) [ -d "$d/$1" ] || gone "$1"; load "$1"; echo true > "$d/$1/running"; echo "$1" ;;
  rm) [ "$1" = -f ] && shift; [ -d "$d/$1" ] || gone "$1"; rm -rf "\${d:?}/$1"; echo "$1" ;;
  run)
    name=""; source=""; args=()
    while [ "$#" -gt 0 ]; do
      case $1 in
        -d) shift ;;
        --name) name=$2; shift 2 ;;
        --mount) source=\${2#*source=}; source=\${source%%,*}; shift 2 ;;
        *) args=("$@"); break ;;
      esac
    done
    if [ -d "$d/$name" ]; then
      echo "docker: Error response from daemon: Conflict. The container name \\"/$name\\" is already in use by container \\"c0ffee$name\\". You have to remove (or rename) that container to be able to reuse that name." >&2
      exit 125
    fi
    mkdir -p "$d/$name"; echo "\${args[0]}" > "$d/$name/image"; printf '%s\\n' "\${args[@]:1}" > "$d/$name/args"
    echo "$source" > "$d/$name/data"; load "$name"; echo true > "$d/$name/running"; echo "c0ffee$name" ;;
  exec)
    [ "$1" = -i ] && shift
    c=$1; shift
    [ -d "$d/$c" ] || gone "$c"
    [ "$(cat "$d/$c/running")" = true ] || { echo "Error response from daemon: container $c is not running" >&2; exit 1; }
    case $1 in
      pg_dump)
        shift
        if [ -n "\${PG_DUMP_FAIL:-}" ]; then
          eval "$PG_CLIENT_PG_DUMP" '"$@"' | head -c 300
          echo 'pg_dump: error: Dumping the contents of table "servers" failed: PQgetResult() failed.' >&2; exit 1
        fi
        eval "exec $PG_CLIENT_PG_DUMP" '"$@"' ;;
      pg_restore) shift; eval "exec $PG_CLIENT_PG_RESTORE" '"$@"' ;;
      redis-cli)
        shift; data=$(cat "$d/$c/data")
        case "$*" in
          "BGSAVE SCHEDULE")
            cp "$d/$c/memory" "$data/temp-4242.rdb"; mv "$data/temp-4242.rdb" "$data/dump.rdb"; date +%s > "$d/$c/lastsave"
            echo "Background saving started" ;;
          "INFO persistence")
            aof=0; [ -d "$data/appendonlydir" ] && grep -qx yes "$d/$c/args" && aof=1
            [ -f "$d/$c/aof-on" ] && aof=1
            printf '# Persistence\\r\\nloading:0\\r\\nrdb_bgsave_in_progress:0\\r\\nrdb_last_save_time:%s\\r\\nrdb_last_bgsave_status:ok\\r\\naof_enabled:%s\\r\\naof_rewrite_in_progress:0\\r\\naof_rewrite_scheduled:0\\r\\naof_last_bgrewrite_status:ok\\r\\n' "$(cat "$d/$c/lastsave" 2>/dev/null || echo 0)" "$aof" ;;
          "CONFIG SET appendonly yes")
            mkdir -p "$data/appendonlydir"; cp "$d/$c/memory" "$data/appendonlydir/appendonly.aof.1.base.rdb"; touch "$d/$c/aof-on"; echo OK ;;
          *) echo "docker stub: unexpected redis-cli $*" >&2; exit 2 ;;
        esac ;;
      *) echo "docker stub: unexpected exec $c $*" >&2; exit 2 ;;
    esac ;;
  *) echo "docker stub: unexpected $verb $*" >&2; exit 2 ;;
esac`;

let pg: RealPostgres;
let box: Sandbox;
let trace: Trace;
/** Every output of the step and the programs, for the test that no secret is in one. */
const outputs: string[] = [];

const INPUTS = () => ({
    ROLE: "scalelite",
    PARTS: `postgres postgres scalelite\nredis redis ${REDIS_DIR}\nfiles ${UPLOADS}\n`,
    REPOSITORY: box.file("repo"),
    OS_AUTH_URL: "https://keystone.example.org:5000/v3",
    OS_REGION_NAME: "RegionOne",
    APP_CRED_ID: "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    APP_CRED_SECRET,
    RESTIC_PASSWORD,
    BACKUP_TIME: "02:30",
    KEEP_DAILY: "7",
    KEEP_WEEKLY: "4",
    KEEP_MONTHLY: "6",
    BACKUP_PROGRAM: fs.readFileSync(path.join(__dirname, "..", "scripts", "remote", "backup-run.sh"), "utf8"),
    RESTORE_PROGRAM: fs.readFileSync(path.join(__dirname, "..", "scripts", "remote", "backup-restore.sh"), "utf8"),
});

function setup(inputs: Record<string, string> = {}): StepResult {
    const r = box.run("backup-setup", { ...INPUTS(), ...inputs }, trace.env, [], 30000);
    outputs.push(r.stdout, r.stderr);
    return r;
}

/** /etc/default/bbb-backup as systemd reads an EnvironmentFile: KEY=VALUE lines, # comments. */
function settings(): Record<string, string> {
    const lines = fs.readFileSync(box.file("root/etc/default/bbb-backup"), "utf8").split("\n");
    return Object.fromEntries(lines.filter((l) => l && !l.startsWith("#")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
}

/** A program the step installed, run as bbb-backup.service runs it (its environment), under strace. */
function host(program: string, args: string[] = [], env: Record<string, string> = {}): StepResult {
    const file = path.join(box.root, "usr/local/sbin", program);
    const r = spawnSync(STRACE, [...STRACE_ARGS, "-o", path.join(trace.dir, `execve-${randomUUID()}`), file, ...args], {
        env: { PATH: box.bin, SANDBOX: box.dir, LANG: "C.UTF-8", ...settings(), ...pgClients(), ...env },
        encoding: "utf8",
        timeout: 30000,
    });
    outputs.push(r.stdout, r.stderr);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const pgClients = () => ({ PG_CLIENT_PG_DUMP: pg.client("pg_dump"), PG_CLIENT_PG_RESTORE: pg.client("pg_restore") });

/** The real restic on the test's repository (the test's own look, not traced). */
function restic(...args: string[]): string {
    const r = spawnSync("restic", args, {
        env: { PATH: process.env.PATH, RESTIC_REPOSITORY: box.file("repo"), RESTIC_PASSWORD, RESTIC_CACHE_DIR: box.file("test-cache") },
        encoding: "utf8",
    });
    if (r.status !== 0) throw new Error(`restic ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
}
interface Snapshot {
    id: string;
    time: string;
    paths: string[];
    hostname: string;
    tags: string[];
}
const snapshots = (): Snapshot[] => JSON.parse(restic("snapshots", "--json"));
const snapshotsOf = (p: string) => snapshots().filter((s) => s.paths.join() === p);

/** A digest of Scalelite's rows, what an operator would compare. */
const digest = () => pg.query("SELECT md5(string_agg(s::text, ',' ORDER BY id)) FROM servers s", "scalelite");
const container = (name: string) => box.file(`docker/${name}`);
const running = (name: string) => fs.readFileSync(path.join(container(name), "running"), "utf8").trim();
/** Redis's data set as the stub holds it; a write goes to memory and, with the AOF on, to the AOF. */
const redisData = () => fs.readFileSync(path.join(container("redis"), "memory"), "utf8");
function redisWrite(text: string): void {
    fs.writeFileSync(path.join(container("redis"), "memory"), text);
    fs.writeFileSync(box.file(`root${REDIS_DIR}/appendonlydir/appendonly.aof.1.base.rdb`), text);
}
function addContainer(name: string, image: string, args: string[] = [], data = ""): void {
    box.write(`docker/${name}/running`, "true\n");
    box.write(`docker/${name}/image`, `${image}\n`);
    box.write(`docker/${name}/args`, args.map((a) => `${a}\n`).join(""));
    if (data) box.write(`docker/${name}/data`, `${data}\n`);
}
const metrics = () => fs.readFileSync(box.file("root/var/lib/prometheus/node-exporter/bbb_backup.prom"), "utf8");
const metric = (name: string) => {
    const line = metrics().split("\n").find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.split(" ")[1]);
};
/** Every file under the uploads, with its mode and content. */
function uploads(dir = box.file(`root${UPLOADS}`)): string[] {
    return fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => {
        const file = path.join(e.parentPath, e.name);
        return `${path.relative(dir, file)} ${(fs.statSync(file).mode & 0o777).toString(8)} ${fs.readFileSync(file, "utf8")}`;
    }).sort();
}
const mode = (relative: string) => (fs.statSync(box.file(relative)).mode & 0o777).toString(8);

beforeAll(() => {
    const works = straceWorks();
    if (works !== true) throw new Error(works);
    pg = new RealPostgres();
    pg.start();
    pg.query("CREATE DATABASE scalelite");
    pg.query("CREATE TABLE servers (id serial PRIMARY KEY, url text NOT NULL, secret text); INSERT INTO servers (url, secret) SELECT 'https://bbb-' || i || '.example.org/bigbluebutton/api', md5(i::text) FROM generate_series(1, 500) i", "scalelite");
    box = new Sandbox();
    installStubs(box);
    box.stub("docker", DOCKER);
    fs.symlinkSync("/usr/bin/restic", path.join(box.bin, "restic"));
    trace = new Trace();
    addContainer("postgres", "postgres:15-alpine");
    addContainer("redis", "redis:7-alpine", ["redis-server", "--appendonly", "yes"], box.file(`root${REDIS_DIR}`));
    for (const app of APPS) addContainer(app, `blindsidenetwks/scalelite:v1.8.5-${app.replace("scalelite-", "")}`);
    fs.mkdirSync(box.file(`root${REDIS_DIR}/appendonlydir`), { recursive: true });
    redisWrite("server bbb-1 https://bbb-1.example.org secret-1 enabled\n");
    box.write(`root${UPLOADS}/ab/cd/abcd1234`, "a presentation");
    box.write(`root${UPLOADS}/ef/01/ef015678`, "an avatar");
    fs.chmodSync(box.file(`root${UPLOADS}/ef/01/ef015678`), 0o600);
}, 30000);

afterAll(() => {
    pg?.cleanup();
    box?.cleanup();
    trace?.remove();
});

describe("backup-setup", () => {
    test("makes the repository (format 1, which restic 0.12 reads), writes the root-only settings and password, the programs and the timer", () => {
        const r = setup();
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(r.stdout).toContain(`backup-setup: created the restic repository ${box.file("repo")}`);
        expect(JSON.parse(restic("cat", "config")).version).toBe(1);
        expect(box.calls("apt-get")).toEqual(["apt-get install -y -q restic"]);
        const s = settings();
        expect(s).toEqual({
            OS_AUTH_URL: "https://keystone.example.org:5000/v3",
            OS_APPLICATION_CREDENTIAL_ID: "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
            OS_APPLICATION_CREDENTIAL_SECRET: APP_CRED_SECRET,
            OS_REGION_NAME: "RegionOne",
            RESTIC_REPOSITORY: box.file("repo"),
            RESTIC_PASSWORD_FILE: `${box.root}/etc/bbb-deploy/restic-password`,
            RESTIC_CACHE_DIR: `${box.root}/var/cache/restic`,
            BBB_BACKUP_ROLE: "scalelite",
            BBB_BACKUP_PARTS: `postgres:postgres:scalelite redis:redis:${box.root}${REDIS_DIR} files:${box.root}${UPLOADS}`,
            BBB_BACKUP_APPS: APPS.join(" "),
            BBB_BACKUP_KEEP_DAILY: "7",
            BBB_BACKUP_KEEP_WEEKLY: "4",
            BBB_BACKUP_KEEP_MONTHLY: "6",
            BBB_BACKUP_METRICS: `${box.root}/var/lib/prometheus/node-exporter/bbb_backup.prom`,
        });
        expect(fs.readFileSync(box.file("root/etc/bbb-deploy/restic-password"), "utf8")).toBe(`${RESTIC_PASSWORD}\n`);
        expect(mode("root/etc/default/bbb-backup")).toBe("600");
        expect(mode("root/etc/bbb-deploy/restic-password")).toBe("600");
        expect(mode("root/usr/local/sbin/bbb-backup")).toBe("755");
        expect(fs.readFileSync(box.file("root/usr/local/sbin/bbb-restore"), "utf8")).toBe(`${INPUTS().RESTORE_PROGRAM}\n`);
        // Only the two root-only files hold a secret.
        for (const secret of [RESTIC_PASSWORD, APP_CRED_SECRET]) {
            const holding = box.files().filter((f) => !f.startsWith("var/cache/") && fs.readFileSync(box.file(`root/${f}`), "utf8").includes(secret));
            expect(holding).toEqual(secret === RESTIC_PASSWORD ? ["etc/bbb-deploy/restic-password"] : ["etc/default/bbb-backup"]);
        }
        const service = fs.readFileSync(box.file("root/etc/systemd/system/bbb-backup.service"), "utf8");
        expect(service).toMatch(/\nType=oneshot\n/);
        expect(service).toContain(`\nEnvironmentFile=${box.root}/etc/default/bbb-backup\n`);
        expect(service).toContain(`\nExecStart=${box.root}/usr/local/sbin/bbb-backup\n`);
        expect(service).toContain("\nIOSchedulingClass=idle\n");
        const timer = fs.readFileSync(box.file("root/etc/systemd/system/bbb-backup.timer"), "utf8");
        expect(timer).toContain("\nOnCalendar=*-*-* 02:30:00 UTC\n");
        expect(timer).toContain("\nPersistent=true\n");
        expect(box.calls("systemctl")).toEqual(["systemctl daemon-reload", "systemctl enable --quiet --now bbb-backup.timer"]);
    });

    test("run again with the same inputs, it changes nothing", () => {
        const before = box.files().filter((f) => !f.startsWith("var/cache/")).map((f) => [f, fs.statSync(box.file(`root/${f}`)).mtimeMs]);
        const config = restic("cat", "config");
        fs.writeFileSync(box.callLog, "");
        const r = setup();
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(r.stdout).not.toMatch(/wrote|created/);
        expect(box.files().filter((f) => !f.startsWith("var/cache/")).map((f) => [f, fs.statSync(box.file(`root/${f}`)).mtimeMs])).toEqual(before);
        expect(restic("cat", "config")).toBe(config);
        expect(box.calls("systemctl")).toEqual(["systemctl enable --quiet --now bbb-backup.timer"]);
    });

    test("a password the repository does not know fails, changing nothing and never making a new repository", () => {
        const config = restic("cat", "config");
        const settingsBefore = fs.readFileSync(box.file("root/etc/default/bbb-backup"), "utf8");
        const r = setup({ RESTIC_PASSWORD: "An0ther-Passw0rd-e81b2f", KEEP_DAILY: "3" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`backup-setup: error: the restic repository ${box.file("repo")} exists but RESTIC_PASSWORD does not open it; nothing was changed`);
        expect(restic("cat", "config")).toBe(config);
        expect(fs.readFileSync(box.file("root/etc/bbb-deploy/restic-password"), "utf8")).toBe(`${RESTIC_PASSWORD}\n`);
        expect(fs.readFileSync(box.file("root/etc/default/bbb-backup"), "utf8")).toBe(settingsBefore);
    });

    test("a store that cannot be read (not a missing repository) fails without making one", () => {
        // Its config cannot be looked at (a link to itself): restic's "Is there a repository" with an error other than
        // "not found", as from a store that does not answer.
        const unreadable = box.file("looping-repo");
        fs.mkdirSync(unreadable);
        fs.symlinkSync("config", path.join(unreadable, "config"));
        const r = setup({ REPOSITORY: unreadable });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("too many levels of symbolic links\nIs there a repository at the following location?");
        expect(r.stderr).toContain(`backup-setup: error: cannot open the restic repository ${unreadable} (output above); nothing was changed`);
        expect(settings().RESTIC_REPOSITORY).toBe(box.file("repo"));
    });

    test("a new application credential rewrites the settings, nothing else", () => {
        fs.writeFileSync(box.callLog, "");
        const r = setup({ APP_CRED_ID: "ffff2c3d4e5f60718293a4b5c6d7e8f9" });
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("backup-setup: wrote /etc/default/bbb-backup\n");
        expect(settings().OS_APPLICATION_CREDENTIAL_ID).toBe("ffff2c3d4e5f60718293a4b5c6d7e8f9");
        expect(box.calls("systemctl")).toEqual(["systemctl enable --quiet --now bbb-backup.timer"]);
    });

    test("a Swift repository: made the first time (restic answers Object Not Found for its config), found the second", () => {
        // Another host, its restic on Swift as test/stubs.ts's swiftRestic models it; a files part needs no container.
        const other = new Sandbox();
        try {
            installStubs(other);
            other.stub("restic", swiftRestic(other.file("swift")));
            other.write(`root${UPLOADS}/ab/cd/abcd1234`, "a presentation");
            const inputs = { ...INPUTS(), PARTS: `files ${UPLOADS}\n`, REPOSITORY: "swift:bbb-backups-test-scalelite:/" };
            const first = other.run("backup-setup", inputs, trace.env, [], 30000);
            outputs.push(first.stdout, first.stderr);
            expect(first.stderr).toBe("");
            expect(first.status).toBe(0);
            expect(first.stdout).toContain("backup-setup: created the restic repository swift:bbb-backups-test-scalelite:/\n");
            expect(fs.existsSync(other.file("swift/bbb-backups-test-scalelite/config"))).toBe(true);
            const second = other.run("backup-setup", inputs, trace.env, [], 30000);
            outputs.push(second.stdout, second.stderr);
            expect(second.stderr).toBe("");
            expect(second.status).toBe(0);
            expect(second.stdout).not.toContain("created");
            // Made once, by the first run.
            expect(other.calls("restic").filter((c) => c.startsWith("restic init "))).toEqual(["restic init --help", "restic init --repository-version 1"]);
        } finally {
            other.cleanup();
        }
    });

    test("a container of PARTS that is not on the host fails before anything is installed", () => {
        const r = setup({ PARTS: "postgres greenlight-postgres greenlight-v3-production" });
        expect(r.status).toBe(1);
        expect(r.stderr).toBe("backup-setup: error: container greenlight-postgres (PARTS) does not exist on this host (see: docker ps -a)\n");
    });
});

describe("bbb-backup and bbb-restore", () => {
    let original: string;
    let originalRedis: string;
    let firstSuccess: number;
    let originalUploads: string[];

    test("a backup stores each part as a snapshot of its own and records its success for the node exporter", () => {
        original = digest();
        originalRedis = redisData();
        originalUploads = uploads();
        const started = Math.floor(Date.now() / 1000);
        const r = host("bbb-backup");
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        const all = snapshots();
        expect(all.map((s) => s.paths.join()).sort()).toEqual(["/redis.rdb", "/scalelite.pgdump", `${box.root}${UPLOADS}`].sort());
        for (const s of all) expect([s.hostname, s.tags]).toEqual(["scalelite", ["bbb-backup"]]);
        expect(restic("dump", "--path", "/redis.rdb", "latest", "/redis.rdb")).toBe(originalRedis);
        firstSuccess = metric("bbb_backup_last_success_timestamp_seconds")!;
        expect(firstSuccess).toBeGreaterThanOrEqual(started);
        expect(firstSuccess).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
        expect(metric("bbb_backup_last_run_success")).toBe(1);
        expect(metrics()).toContain("# TYPE bbb_backup_last_success_timestamp_seconds gauge\n");
        expect(mode("root/var/lib/prometheus/node-exporter/bbb_backup.prom")).toBe("644");
        expect(mode("root/var/lib/prometheus/node-exporter")).toMatch(/5$/);
        expect(box.calls("docker")).toEqual(expect.arrayContaining(["docker exec postgres pg_dump -U postgres -Fc scalelite", "docker exec redis redis-cli BGSAVE SCHEDULE"]));
    }, 30000);

    test("bbb-restore without --yes says what it would restore and changes nothing", () => {
        pg.query("UPDATE servers SET url = 'https://changed.example.org' WHERE id < 100; DELETE FROM servers WHERE id > 400", "scalelite");
        redisWrite("server bbb-9 https://bbb-9.example.org secret-9 enabled\n");
        box.write(`root${UPLOADS}/ab/cd/abcd1234`, "another presentation");
        box.write(`root${UPLOADS}/99/99/new`, "uploaded after the backup");
        fs.rmSync(box.file(`root${UPLOADS}/ef`), { recursive: true });
        const changed = digest();
        expect(changed).not.toBe(original);
        fs.writeFileSync(box.callLog, "");
        const r = host("bbb-restore");
        expect(r.status).toBe(0);
        expect(r.stderr).toBe("");
        expect(r.stdout).toMatch(/^bbb-restore: not restoring redis:redis:\S+: Redis holds Scalelite's servers and its running meetings, which a restore would roll back \(add --with-redis when its data was lost\)\nbbb-restore: would restore postgres:postgres:scalelite from snapshot [0-9a-f]{8} \(/);
        expect(r.stdout.split("\n").filter((l) => l.includes("would restore")).map((l) => l.split(" ")[3])).toEqual(["postgres:postgres:scalelite", `files:${box.root}${UPLOADS}`]);
        expect(r.stdout).toContain("nothing was changed (add --yes to restore)");
        expect(digest()).toBe(changed);
        expect(box.calls("docker").filter((c) => /^docker (stop|start|run|exec -i)/.test(c))).toEqual([]);
        expect(redisData()).toContain("bbb-9");
        // With --with-redis, Redis too, with a warning that names what it rolls back.
        const all = host("bbb-restore", ["--with-redis"]);
        expect(all.status).toBe(0);
        expect(all.stdout.split("\n").filter((l) => l.includes("would restore")).length).toBe(3);
        expect(all.stderr).toBe(`bbb-restore: warning: restoring redis:redis:${box.root}${REDIS_DIR} rolls Scalelite's servers and running meetings back to the snapshot's time: joins to meetings created since then fail, servers added since vanish (until pulumi up registers them again), servers whose secret was rotated since go offline\n`);
        // A snapshot named by its id: the one part it holds; Redis's only with --with-redis.
        const [redis] = snapshotsOf("/redis.rdb");
        const refused = host("bbb-restore", ["--snapshot", redis.id.slice(0, 8), "--yes"]);
        expect(refused.status).toBe(1);
        expect(refused.stderr).toContain(`bbb-restore: snapshot ${redis.id.slice(0, 8)} holds Redis (redis:redis:${box.root}${REDIS_DIR}), restored only with --with-redis`);
        const one = host("bbb-restore", ["--snapshot", redis.id.slice(0, 8), "--with-redis"]);
        expect(one.status).toBe(0);
        expect(one.stdout.split("\n").filter((l) => l.includes("would restore"))).toEqual([
            `bbb-restore: would restore redis:redis:${box.root}${REDIS_DIR} from snapshot ${redis.id.slice(0, 8)} (${redis.time})`,
        ]);
    }, 30000);

    test("bbb-restore --yes brings back the database and the files, leaving Redis's data as it is", () => {
        const redisBefore = redisData();
        const aof = fs.readFileSync(box.file(`root${REDIS_DIR}/appendonlydir/appendonly.aof.1.base.rdb`), "utf8");
        expect(redisBefore).not.toBe(originalRedis);
        fs.writeFileSync(box.callLog, "");
        const r = host("bbb-restore", ["--yes"]);
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(r.stdout).toContain(`bbb-restore: not restoring redis:redis:${box.root}${REDIS_DIR}: `);
        expect(digest()).toBe(original);
        expect(uploads()).toEqual(originalUploads);
        // Redis untouched: neither stopped nor asked anything, its data and AOF as they were, nothing set aside.
        expect(redisData()).toBe(redisBefore);
        expect(fs.readFileSync(box.file(`root${REDIS_DIR}/appendonlydir/appendonly.aof.1.base.rdb`), "utf8")).toBe(aof);
        expect(fs.existsSync(box.file(`root${REDIS_DIR}/before-restore`))).toBe(false);
        expect(box.calls("docker").filter((c) => /\bredis\b/.test(c))).toEqual([]);
        expect(running("redis")).toBe("true");
        // Changed again, for the next restore to bring back.
        box.write(`root${UPLOADS}/99/99/new`, "uploaded after the backup");
        fs.rmSync(box.file(`root${UPLOADS}.before-restore`), { recursive: true });
    }, 30000);

    test("bbb-restore --yes --with-redis brings back exactly what was backed up, Redis too, with the applications stopped meanwhile and started again", () => {
        fs.writeFileSync(box.callLog, "");
        const r = host("bbb-restore", ["--with-redis", "--yes"]);
        expect(r.stderr).toContain("bbb-restore: warning: restoring redis:redis:");
        expect(r.stderr.split("\n").filter((l) => l).length).toBe(1);
        expect(r.status).toBe(0);
        expect(digest()).toBe(original);
        // Redis, started again as its setup runs it (--appendonly yes), holds the backed-up data: its AOF was rebuilt.
        expect(redisData()).toBe(originalRedis);
        expect(fs.readFileSync(box.file(`root${REDIS_DIR}/before-restore/appendonlydir/appendonly.aof.1.base.rdb`), "utf8")).toContain("bbb-9");
        // The uploads as they were (a file changed, one added, one deleted since), the replaced ones kept aside.
        expect(uploads()).toEqual(originalUploads);
        expect(uploads(box.file(`root${UPLOADS}.before-restore`))).toContain("99/99/new 644 uploaded after the backup");
        const dockers = box.calls("docker").filter((c) => /^docker (stop|start)/.test(c));
        expect(dockers).toEqual([...APPS.map((a) => `docker stop ${a}`), "docker stop redis", "docker stop redis-restore", "docker start redis", ...[...APPS].reverse().map((a) => `docker start ${a}`)]);
        for (const name of ["postgres", "redis", ...APPS]) expect(running(name)).toBe("true");
        expect(fs.existsSync(container("redis-restore"))).toBe(false);
        expect(r.stdout).toMatch(/bbb-restore: restored postgres:postgres:scalelite from snapshot [0-9a-f]{8} \(\d{4}-/);
    }, 30000);

    test("a pg_dump that fails after writing part of the dump leaves no snapshot, fails naming the part, and keeps the last success time", () => {
        const before = snapshotsOf("/scalelite.pgdump").map((s) => s.id);
        const r = host("bbb-backup", [], { PG_DUMP_FAIL: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-backup: failed: postgres:postgres:scalelite: the dump failed (exit 1; its incomplete snapshot was forgotten)");
        expect(snapshotsOf("/scalelite.pgdump").map((s) => s.id)).toEqual(before);
        // The other part was backed up.
        expect(snapshotsOf("/redis.rdb").length).toBeGreaterThanOrEqual(1);
        expect(metric("bbb_backup_last_success_timestamp_seconds")).toBe(firstSuccess);
        expect(metric("bbb_backup_last_run_success")).toBe(0);
    }, 30000);

    test("a restore that fails starts the applications again", () => {
        fs.writeFileSync(path.join(container("postgres"), "running"), "false\n");
        try {
            fs.writeFileSync(box.callLog, "");
            const r = host("bbb-restore", ["--yes"]);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain("Error response from daemon: container postgres is not running");
            expect(r.stderr).toContain("bbb-restore: postgres:postgres:scalelite: pg_restore failed (above); the database is as it was (one transaction)");
            for (const app of APPS) expect(running(app)).toBe("true");
            expect(box.calls("docker").filter((c) => c.startsWith("docker start "))).toEqual([...APPS].reverse().map((a) => `docker start ${a}`));
        } finally {
            fs.writeFileSync(path.join(container("postgres"), "running"), "true\n");
        }
    }, 30000);

    test("a damaged dump that pg_restore fails on partway leaves the database exactly as it was (one transaction), fails, and starts the applications again", () => {
        // The database changed since the backup (a secret rotated, a server added), so a restore would change it.
        pg.query("UPDATE servers SET secret = 'rotated' WHERE id = 7; INSERT INTO servers (url, secret) VALUES ('https://bbb-new.example.org/bigbluebutton/api', 'new')", "scalelite");
        const before = digest();
        const rows = pg.query("SELECT count(*) FROM servers", "scalelite");
        expect(before).not.toBe(original);
        // restic hands over the database's dump cut short: its table of contents whole (the tables are dropped and made
        // again) but the rows' data broken off, as a damaged archive would be.
        const bin = path.join(box.bin, "restic");
        box.stub("restic", `if [ "$1" = dump ] && [ "\${3:-}" = /scalelite.pgdump ]; then
  /usr/bin/restic "$@" > "$SANDBOX/whole.pgdump" || exit
  head -c $(( $(stat -c %s "$SANDBOX/whole.pgdump") * 3 / 4 )) "$SANDBOX/whole.pgdump"; exit 0
fi
exec /usr/bin/restic "$@"`);
        try {
            fs.writeFileSync(box.callLog, "");
            const r = host("bbb-restore", ["--yes"]);
            expect(r.status).toBe(1);
            expect(r.stderr).toMatch(/pg_restore: error: /);
            expect(r.stderr).toContain("bbb-restore: postgres:postgres:scalelite: pg_restore failed (above); the database is as it was (one transaction)");
            expect(digest()).toBe(before);
            expect(pg.query("SELECT count(*) FROM servers", "scalelite")).toBe(rows);
            expect(box.calls("docker")).toContainEqual("docker exec -i postgres pg_restore -U postgres --clean --if-exists --single-transaction -d scalelite");
            for (const app of APPS) expect(running(app)).toBe("true");
            expect(box.calls("docker").filter((c) => c.startsWith("docker start "))).toEqual([...APPS].reverse().map((a) => `docker start ${a}`));
        } finally {
            fs.rmSync(bin);
            fs.symlinkSync("/usr/bin/restic", bin);
        }
    }, 30000);

    test("retention keeps what KEEP_* says, per part", () => {
        // Three earlier nights of the database, as bbb-backup stores them.
        const day = (n: number) => new Date(Date.now() - n * 86400_000).toISOString().slice(0, 19).replace("T", " ");
        for (const n of [1, 2, 3]) {
            const r = spawnSync("restic", ["backup", "--stdin", "--stdin-filename", "scalelite.pgdump", "--host", "scalelite", "--tag", "bbb-backup", "--time", day(n)], {
                input: `night ${n}`,
                env: { PATH: process.env.PATH, RESTIC_REPOSITORY: box.file("repo"), RESTIC_PASSWORD, RESTIC_CACHE_DIR: box.file("test-cache") },
            });
            expect(r.status).toBe(0);
        }
        const r = host("bbb-backup", [], { BBB_BACKUP_KEEP_DAILY: "2", BBB_BACKUP_KEEP_WEEKLY: "0", BBB_BACKUP_KEEP_MONTHLY: "0" });
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        // Today's and yesterday's night; Redis's two snapshots of today are one day: the later.
        const kept = snapshotsOf("/scalelite.pgdump").map((s) => s.time.slice(0, 10)).sort();
        expect(kept).toEqual([day(1).slice(0, 10), new Date().toISOString().slice(0, 10)]);
        expect(snapshotsOf("/redis.rdb").length).toBe(1);
        expect(snapshotsOf(`${box.root}${UPLOADS}`).length).toBe(1);
    }, 30000);

    test("a lock left by a restic killed midway does not stop the next run; the lock of a restic still running is kept", async () => {
        // The lock files (restic's local backend writes NAME-tmp-* first, then renames it: internal/backend/local/local.go).
        const locks = () => (fs.existsSync(box.file("repo/locks")) ? fs.readdirSync(box.file("repo/locks")).filter((f) => /^[0-9a-f]{64}$/.test(f)).sort() : []);
        expect(locks()).toEqual([]);
        // A backup that waits on its standard input holds its lock, as a nightly run does while pg_dump writes.
        const running = spawn("restic", ["backup", "--stdin", "--stdin-filename", "lock-test", "--host", "lock-test"], {
            env: { PATH: process.env.PATH, RESTIC_REPOSITORY: box.file("repo"), RESTIC_PASSWORD, RESTIC_CACHE_DIR: box.file("test-cache") },
            stdio: ["pipe", "ignore", "ignore"],
        });
        const exited = new Promise((resolve) => running.on("exit", resolve));
        try {
            for (let i = 0; i < 100 && locks().length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 100));
            const live = locks();
            expect(live.length).toBe(1);
            // Alive, on this host: not stale. bbb-backup leaves it, so its retention and check (exclusive) fail.
            const blocked = host("bbb-backup");
            expect(blocked.status).toBe(1);
            expect(blocked.stderr).toContain(`repository is already locked by PID ${running.pid}`);
            expect(blocked.stderr).toContain("bbb-backup: failed: retention: restic forget --prune failed");
            expect(locks()).toEqual(live);
        } finally {
            // Killed as a reboot or the OOM killer ends it: its lock stays behind, of a process that is gone.
            running.kill("SIGKILL");
            await exited;
        }
        expect(locks().length).toBe(1);
        const r = host("bbb-backup");
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(locks()).toEqual([]);
        expect(metric("bbb_backup_last_run_success")).toBe(1);
        expect(snapshots().filter((s) => s.hostname === "lock-test")).toEqual([]);
    }, 60000);

    test("no secret is on any command line the step and the programs started, nor in their output", () => {
        const execs = trace.execs();
        const commands = execs.map((e) => e.argv.join(" "));
        expect(commands).toContainEqual(expect.stringMatching(/^restic backup --json --stdin --stdin-filename scalelite.pgdump --host scalelite --tag bbb-backup$/));
        expect(commands).toContainEqual(expect.stringMatching(/^restic init /));
        expect(commands).toContainEqual(expect.stringMatching(/pg_restore -h .* -U postgres --clean --if-exists --single-transaction -d scalelite$/));
        expect(secretsOnCommandLines(execs, [RESTIC_PASSWORD, APP_CRED_SECRET])).toEqual([]);
        for (const out of outputs) {
            expect(out).not.toContain(RESTIC_PASSWORD);
            expect(out).not.toContain(APP_CRED_SECRET);
        }
    });
});

/**
 * Backups turned off (ENABLED false: the program updates the step, with the inputs it then gives, the repository
 * named) on a host that stays; and on a host that never had backups (a stack whose backups were off from the start).
 */
describe("backup-setup with ENABLED false", () => {
    const OFF = () => ({ ENABLED: "false", ROLE: INPUTS().ROLE, REPOSITORY: INPUTS().REPOSITORY });
    const remove = (sandbox = box) => {
        const r = sandbox.run("backup-setup", OFF(), trace.env, [], 30000);
        outputs.push(r.stdout, r.stderr);
        return r;
    };
    const said = () => `backup-setup: backups stopped; the backups made so far remain in ${box.file("repo")} (restore: bbb-restore, see bbb-restore --help)\n`;
    const holding = (secret: string) => box.files().filter((f) => fs.readFileSync(box.file(`root/${f}`), "utf8").includes(secret));
    /** bbb-restore as an operator runs it once the settings are gone: what it is given in its environment, traced. */
    const restore = (args: string[], env: Record<string, string>) => {
        const r = spawnSync(STRACE, [...STRACE_ARGS, "-o", path.join(trace.dir, `execve-${randomUUID()}`), path.join(box.root, "usr/local/sbin/bbb-restore"), ...args], {
            env: { PATH: box.bin, SANDBOX: box.dir, LANG: "C.UTF-8", ...env },
            encoding: "utf8",
            timeout: 30000,
        });
        outputs.push(r.stdout, r.stderr);
        return r;
    };
    let snapshotIds: string[];

    test("backups turned off: the timer disabled and stopped, a running backup stopped, no secret left on the host, no stale metrics; the data and the backups stay", () => {
        expect(fs.existsSync(box.file("enabled/bbb-backup.timer"))).toBe(true);
        expect(fs.existsSync(box.file("root/var/lib/prometheus/node-exporter/bbb_backup.prom"))).toBe(true);
        // A backup runs right now.
        box.write("units/bbb-backup", "");
        snapshotIds = snapshots().map((s) => s.id).sort();
        const data = [digest(), redisData(), uploads()];
        fs.writeFileSync(box.callLog, "");
        const r = remove();
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(r.stdout).toBe(said());
        expect(box.calls("systemctl")).toEqual([
            "systemctl disable --quiet bbb-backup.timer",
            "systemctl stop --quiet bbb-backup.timer",
            "systemctl stop --quiet bbb-backup.service",
            "systemctl daemon-reload",
        ]);
        for (const state of ["enabled/bbb-backup.timer", "units/bbb-backup.timer", "units/bbb-backup"]) expect(fs.existsSync(box.file(state))).toBe(false);
        // No file holds a secret any more (restic's cache went too); the metrics file is gone, its directory stays.
        expect(holding(RESTIC_PASSWORD)).toEqual([]);
        expect(holding(APP_CRED_SECRET)).toEqual([]);
        for (const gone of ["etc/default/bbb-backup", "etc/bbb-deploy/restic-password", "etc/systemd/system/bbb-backup.timer", "etc/systemd/system/bbb-backup.service", "usr/local/sbin/bbb-backup", "var/lib/prometheus/node-exporter/bbb_backup.prom", "var/cache/restic"]) {
            expect([gone, fs.existsSync(box.file(`root/${gone}`))]).toEqual([gone, false]);
        }
        expect(fs.statSync(box.file("root/var/lib/prometheus/node-exporter")).isDirectory()).toBe(true);
        expect(fs.existsSync(box.file("root/usr/local/sbin/bbb-restore"))).toBe(true);
        // Nothing was asked of the databases, restic or apt; the data is as it was, every snapshot still there.
        expect(box.calls().filter((c) => !c.startsWith("systemctl ") && !c.startsWith("chown "))).toEqual([]);
        expect([digest(), redisData(), uploads()]).toEqual(data);
        for (const name of ["postgres", "redis", ...APPS]) expect(running(name)).toBe("true");
        expect(snapshots().map((s) => s.id).sort()).toEqual(snapshotIds);
    });

    test("a second remove changes nothing", () => {
        const before = box.files().map((f) => [f, fs.statSync(box.file(`root/${f}`)).mtimeMs]);
        fs.writeFileSync(box.callLog, "");
        const r = remove();
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(r.stdout).toBe(said());
        expect(box.files().map((f) => [f, fs.statSync(box.file(`root/${f}`)).mtimeMs])).toEqual(before);
        expect(box.calls().filter((c) => c.startsWith("systemctl daemon-reload"))).toEqual([]);
        expect(snapshots().map((s) => s.id).sort()).toEqual(snapshotIds);
    });

    test("bbb-restore stays: without the settings it says what it needs; given them, it reaches the backups", () => {
        const without = restore(["--list"], {});
        expect(without.status).toBe(1);
        expect(without.stderr).toBe("bbb-restore: cannot read /etc/default/bbb-backup (run as root; without it, give the settings in the environment: bbb-restore --help)\n");
        const help = restore(["--help"], {});
        expect(help.status).toBe(2);
        expect(help.stderr).toContain("RESTIC_REPOSITORY RESTIC_PASSWORD_FILE BBB_BACKUP_ROLE BBB_BACKUP_PARTS BBB_BACKUP_APPS");
        // The operator's copy of the password (the stack's output backupPasswords).
        box.write("operator/restic-password", `${RESTIC_PASSWORD}\n`);
        const listed = restore(["--list"], {
            RESTIC_REPOSITORY: box.file("repo"),
            RESTIC_PASSWORD_FILE: box.file("operator/restic-password"),
            RESTIC_CACHE_DIR: box.file("test-cache"),
            BBB_BACKUP_ROLE: "scalelite",
            BBB_BACKUP_PARTS: `postgres:postgres:scalelite redis:redis:${box.root}${REDIS_DIR} files:${box.root}${UPLOADS}`,
            BBB_BACKUP_APPS: APPS.join(" "),
        });
        expect(listed.stderr).toBe("");
        expect(listed.status).toBe(0);
        for (const id of snapshotIds) expect(listed.stdout).toContain(id.slice(0, 8));
    }, 30000);

    test("on a host that never had backups (a new VM), it succeeds and changes nothing, asking nothing of the network", () => {
        const fresh = new Sandbox();
        try {
            // The stubs but no restic, docker or curl: anything but systemctl would fail.
            installStubs(fresh);
            const r = remove(fresh);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(r.stdout).toBe(said());
            expect(fresh.files()).toEqual([]);
            expect(fresh.calls()).toEqual(["systemctl disable --quiet bbb-backup.timer", "systemctl stop --quiet bbb-backup.timer", "systemctl stop --quiet bbb-backup.service"]);
            const wrong = fresh.run("backup-setup", OFF(), {}, ["remove"]);
            expect([wrong.status, wrong.stderr]).toEqual([1, "backup-setup: error: unknown action remove (the step takes none)\n"]);
        } finally {
            fresh.cleanup();
        }
    });

    test("a systemd that fails otherwise than on a unit it does not have fails the removal, saying so", () => {
        const fresh = new Sandbox();
        try {
            installStubs(fresh);
            fresh.write("root/etc/systemd/system/bbb-backup.timer", "[Timer]\n");
            const r = fresh.run("backup-setup", OFF(), { SYSTEMCTL_FAIL: "stop bbb-backup.timer" }, []);
            expect(r.status).toBe(1);
            expect(r.stderr).toBe("Failed to stop bbb-backup.timer (SYSTEMCTL_FAIL)\nbackup-setup: error: cannot stop bbb-backup.timer (see: systemctl status bbb-backup.timer)\n");
            expect(fresh.files()).toEqual(["etc/systemd/system/bbb-backup.timer"]);
        } finally {
            fresh.cleanup();
        }
    });

    test("no secret is on any command line the removal started, nor in its output", () => {
        expect(secretsOnCommandLines(trace.execs(), [RESTIC_PASSWORD, APP_CRED_SECRET])).toEqual([]);
        for (const out of outputs) {
            expect(out).not.toContain(RESTIC_PASSWORD);
            expect(out).not.toContain(APP_CRED_SECRET);
        }
    });
});
