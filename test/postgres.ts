// A real PostgreSQL (Debian's postgresql package) for the tests of the steps that wait for and set up a
// database: a cluster of its own in a temporary directory, listening on a Unix socket there only (no TCP
// port), run as the postgres user when the tests run as root (initdb and postgres refuse root).
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { account } from "./accounts";

/** Debian installs PostgreSQL's programs in /usr/lib/postgresql/<major>/bin, off PATH: the newest there. */
function binDir(): string {
    const base = "/usr/lib/postgresql";
    const majors = fs.existsSync(base) ? fs.readdirSync(base).filter((d) => fs.existsSync(path.join(base, d, "bin", "initdb"))) : [];
    if (majors.length === 0) throw new Error("PostgreSQL is not installed (apt-get install -y postgresql)");
    return path.join(base, majors.sort((a, b) => Number(b) - Number(a))[0], "bin");
}

/** util-linux's runuser, which Debian installs in /usr/sbin. */
const RUNUSER = ["/usr/sbin/runuser", "/sbin/runuser"].find((f) => fs.existsSync(f)) ?? "runuser";

export class RealPostgres {
    readonly bin = binDir();
    /** Holds the cluster (data/) and the socket: PGHOST for the clients. */
    readonly dir: string;
    readonly port = 5432;
    private readonly data: string;
    private readonly asPostgres = process.getuid?.() === 0;

    constructor() {
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-pg-"));
        this.data = path.join(this.dir, "data");
        if (this.asPostgres) {
            const { uid, gid } = account("postgres", "postgresql");
            fs.chownSync(this.dir, uid, gid);
        }
        this.run("initdb", ["-D", this.data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]);
    }

    /** `pg_ctl start`, waiting until it accepts connections. */
    start(): void {
        this.run("pg_ctl", this.startArgs());
    }

    /** The shell words of `pg_ctl start` (a stub runs them to start the database when it chooses). */
    startCommand(): string {
        return this.command("pg_ctl", this.startArgs()).map((w) => `'${w.replace(/'/g, "'\\''")}'`).join(" ");
    }

    stop(): void {
        if (fs.existsSync(path.join(this.data, "postmaster.pid"))) this.run("pg_ctl", ["-D", this.data, "-m", "fast", "-w", "stop"]);
    }

    /** The shell words that run PostgreSQL's client PROGRAM against this cluster (as the steps' stubs do). */
    client(program: string): string {
        return this.command(program, ["-h", this.dir, "-p", String(this.port), "-U", "postgres"]).map((w) => `'${w}'`).join(" ");
    }

    /** Runs SQL in DATABASE, printing rows unaligned without headers. */
    query(sql: string, database = "postgres"): string {
        return execFileSync("bash", ["-c", `${this.client("psql")} -d '${database}' -tAq -v ON_ERROR_STOP=1`], { input: sql, encoding: "utf8" }).trim();
    }

    cleanup(): void {
        this.stop();
        fs.rmSync(this.dir, { recursive: true, force: true });
    }

    private startArgs(): string[] {
        const options = `-c listen_addresses='' -c unix_socket_directories='${this.dir}' -c port=${this.port} -c fsync=off`;
        return ["-D", this.data, "-l", path.join(this.dir, "log"), "-o", options, "-w", "start"];
    }

    private command(program: string, args: string[]): string[] {
        const words = [path.join(this.bin, program), ...args];
        // By its path: the steps' sandbox has no PATH to find it in.
        return this.asPostgres ? [RUNUSER, "-u", "postgres", "--", ...words] : words;
    }

    private run(program: string, args: string[]): void {
        const command = this.command(program, args);
        const result = spawnSync(command[0], command.slice(1), { encoding: "utf8", cwd: this.dir });
        if (result.status !== 0) throw new Error(`${program} failed: ${result.stderr || result.stdout}`);
    }
}

