// scripts/remote/scalelite-setup.sh, run for real against stub docker, certbot, apt-get, chown, exportfs, an
// attached data volume and a curl that answers like Scalelite behind its nginx (/health_check answers 200 either way).
import * as fs from "fs";
import * as path from "path";
import { RealPostgres } from "./postgres";
import { Sandbox } from "./sandbox";
import { attachVolume, installStubs } from "./stubs";

const VOLUME = "7e57da7a-0000-4000-8000-00000000beef";
const SECRET_KEY_BASE = "5eb5ec7e".repeat(16);
const DB_PASSWORD = "DbPassw0rdAlnum0123456789";
const LB_SECRET = "LbPrimarySecret0123456789abcdef";
const LB_OTHER = "LbMattermostSecret0123456789ab";
const SECRETS = [SECRET_KEY_BASE, DB_PASSWORD, LB_SECRET, LB_OTHER];
const INPUTS = {
    FQDN: "scalelite.example.org",
    API_FQDN: "bbb.example.org",
    IPV4: "203.0.113.20",
    IPV6: "",
    RESOLVE_TIMEOUT_SECONDS: "5",
    EMAIL: "ops@example.org",
    SCALELITE_VERSION: "v1.8.5",
    VOLUME_ID: VOLUME,
    VOLUME_SIZE: "20",
    SECRET_KEY_BASE,
    DB_PASSWORD,
    LOADBALANCER_SECRET: LB_SECRET,
    LOADBALANCER_SECRETS: `${LB_SECRET}:${LB_OTHER}`,
    FORCE_REMOVE: "false",
    POSTGRES_IMAGE: "postgres:15-alpine",
    REDIS_IMAGE: "redis:7-alpine",
    HEALTH_WAIT_SECONDS: "0",
    RECORDINGS: "true",
    NFS_CLIENTS: "10.20.0.0/24",
    RETENTION_DAYS: "30",
    VOICE_BRIDGE_LEN: "5",
    PRIVACY: "strict",
};
const SCALELITE = ["scalelite-api", "scalelite-poller", "scalelite-recording-importer", "scalelite-nginx"];
const ALL = ["postgres", "redis", ...SCALELITE];

/**
 * Scalelite as its nginx answers on https://FQDN when reached through --resolve FQDN:443:127.0.0.1.
 * $SANDBOX/health-failures: how many /health_check calls answer "Health Check Failure" first.
 * HEALTH_BODY / API_BODY replace the answers; SCALELITE_DOWN=1: nothing listens.
 */
const CURL = `
url=""; resolve=""; prev=""
for a in "$@"; do [ "$prev" = --resolve ] && resolve=$a; case $a in https://*) url=$a ;; esac; prev=$a; done
host=\${url#https://}; host=\${host%%/*}
[ "$resolve" = "$host:443:127.0.0.1" ] || { echo "curl: (6) Could not resolve host: $host" >&2; exit 6; }
[ -n "\${SCALELITE_DOWN:-}" ] && { echo "curl: (7) Failed to connect to $host port 443" >&2; exit 7; }
case $url in
  */health_check)
    n=$(cat "$SANDBOX/health-failures" 2>/dev/null || echo 0)
    if [ "$n" -gt 0 ]; then echo $((n - 1)) > "$SANDBOX/health-failures"; printf 'Health Check Failure: Database not responding'; exit 0; fi
    printf '%s' "\${HEALTH_BODY:-success}" ;;
  */bigbluebutton/api) printf '%s' "\${API_BODY:-<response><returncode>SUCCESS</returncode><version>2.0</version></response>}" ;;
  *) echo "curl: unexpected URL $url" >&2; exit 3 ;;
esac`;

/** A Scalelite host before the step: stubs, the data volume attached (holding a filesystem), no sleeping. */
function host(): Sandbox {
    const box = new Sandbox();
    installStubs(box);
    attachVolume(box, VOLUME, true);
    box.stub("curl", CURL);
    // dig +short ... TYPE NAME @resolver: the API name points here once $SANDBOX/api-a exists (A only).
    box.stub("dig", '[ "$4" = A ] && [ "$5" = bbb.example.org ] && cat "$SANDBOX/api-a" 2>/dev/null; true');
    box.write("api-a", "203.0.113.20\n");
    box.stub("sleep");
    box.stub("exportfs", '[ -z "${EXPORTFS_FAIL:-}" ] || { echo "exportfs: Failed to stat /var/lib/bbb-data/recordings" >&2; exit 1; }');
    return box;
}

let box: Sandbox;

const run = (inputs: Partial<typeof INPUTS> = {}, env: Record<string, string> = {}) => box.run("scalelite-setup", { ...INPUTS, ...inputs }, env);
const ok = (inputs: Partial<typeof INPUTS> = {}) => {
    const r = run(inputs);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    return r;
};
const forget = () => fs.writeFileSync(box.file("calls.log"), "");
const mode = (relative: string) => (fs.statSync(box.file(relative)).mode & 0o777).toString(8);
const envFile = () => fs.readFileSync(box.file("root/etc/default/scalelite"), "utf8");
const EXPORTS = "root/etc/exports.d/bbb-recordings.exports";
const exportLines = () => fs.readFileSync(box.file(EXPORTS), "utf8").split("\n").filter((l) => l && !l.startsWith("#"));
/** What `docker run` got for a container, as the docker stub recorded it. */
const args = (name: string) => fs.readFileSync(box.file(`docker/${name}/args`), "utf8").split("\n").filter(Boolean);
/** Containers started (not the one-shot `docker run --rm` that prepares the database). */
const runs = () => box.calls("docker").filter((c) => c.startsWith("docker run ") && !c.startsWith("docker run --rm ")).map((c) => c.split(" ")[4]);
const removed = () => box.calls("docker").filter((c) => c.startsWith("docker rm ")).map((c) => c.split(" ").pop());

describe("a first run", () => {
    // One run, read by every test of this block (the step takes ~0.2 s).
    let first: ReturnType<typeof run>;
    beforeAll(() => {
        box = host();
        first = run();
    });
    afterAll(() => box.cleanup());

    test("succeeds quietly on stderr, up to its last word", () => {
        expect(first.stderr).toBe("");
        expect(first.status).toBe(0);
        expect(first.stdout).toContain("scalelite-setup: Scalelite answers on https://bbb.example.org/bigbluebutton/api (and on https://scalelite.example.org)");
    });

    test("mounts the data volume without formatting it and lays out the recordings for uid 1000 / gid 2000", () => {
        expect(box.calls("mkfs.ext4")).toEqual([]);
        expect(box.calls("mount")).toEqual([`mount ${box.root}/var/lib/bbb-data`]);
        expect(fs.readFileSync(box.file("root/etc/fstab"), "utf8")).toBe("UUID=0b5e55ed-0000-4000-8000-000000000001 /var/lib/bbb-data ext4 defaults,nofail 0 2\n");
        const rec = `${box.root}/var/lib/bbb-data/recordings`;
        const dirs = [`${rec}/spool`, `${rec}/recording/scalelite`, `${rec}/published`, `${rec}/unpublished`];
        expect(box.calls("chown")).toContain(`chown 1000:2000 ${dirs.join(" ")}`);
        for (const dir of dirs) expect(mode(path.relative(box.dir, dir))).toBe("775");
        expect(fs.existsSync(box.file("root/var/lib/bbb-data/postgres"))).toBe(true);
        expect(fs.existsSync(box.file("root/var/lib/bbb-data/redis"))).toBe(true);
    });

    test("installs docker.io and certbot and, once the API name points here, gets one certificate for both names by HTTP-01 (scalelite-nginx stopped around renewals)", () => {
        expect(box.calls("apt-get")).toEqual(["apt-get install -y -q docker.io certbot", "apt-get install -y -q nfs-kernel-server"]);
        expect(box.calls("dig")).toContain("dig +short +time=3 +tries=1 A bbb.example.org @resolver1.opendns.com");
        expect(box.calls("certbot").filter((c) => c.startsWith("certbot certonly"))).toEqual([
            "certbot certonly --standalone --non-interactive --agree-tos --keep-until-expiring -m ops@example.org" +
                " --cert-name bbb.example.org -d bbb.example.org -d scalelite.example.org" +
                " --pre-hook docker stop scalelite-nginx || true --post-hook docker start scalelite-nginx || true",
        ]);
        // Where Scalelite's nginx template looks for it: live/$URL_HOST.
        expect(fs.existsSync(box.file("root/etc/letsencrypt/live/bbb.example.org/fullchain.pem"))).toBe(true);
    });

    test("scalelite-nginx also answers the host's own name, passing its requests on as the API name (Scalelite's API accepts URL_HOST alone)", () => {
        const conf = fs.readFileSync(box.file("root/etc/bbb-deploy/scalelite-nginx-own-name.conf"), "utf8");
        expect(conf).toContain("server_name scalelite.example.org;");
        expect(conf).toContain("ssl_certificate /etc/nginx/ssl/live/bbb.example.org/fullchain.pem;");
        expect(conf).toContain("proxy_set_header Host bbb.example.org;");
        expect(conf).toContain("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;");
        // Recordings play on this name too, as in the image's own server.
        expect(conf).toContain("include /etc/bigbluebutton/nginx/*.nginx;");
        expect(conf).toContain("include /etc/nginx/http.d/scalelite.common;");
        expect(args("scalelite-nginx")).toContain(
            `type=bind,source=${box.root}/etc/bbb-deploy/scalelite-nginx-own-name.conf,target=/etc/nginx/http.d/bbb-own-name.conf,readonly`,
        );
    });

    test("writes /etc/default/scalelite, root-only, with Scalelite's settings", () => {
        expect(envFile().split("\n").filter((l) => l && !l.startsWith("#"))).toEqual([
            "URL_HOST=bbb.example.org",
            `SECRET_KEY_BASE=${SECRET_KEY_BASE}`,
            `LOADBALANCER_SECRET=${LB_SECRET}`,
            `LOADBALANCER_SECRETS=${LB_SECRET}:${LB_OTHER}`,
            `DATABASE_URL=postgresql://postgres:${DB_PASSWORD}@postgres:5432/scalelite`,
            "REDIS_URL=redis://redis:6379",
            "SERVER_ID_IS_HOSTNAME=true",
            // Scalelite's conference numbers (9 digits unless set) are the PINs the servers' dialplan takes.
            "VOICE_BRIDGE_LEN=5",
            "NGINX_SSL=true",
            // Strict privacy: Rails' info level logs every request's client address and parameters (names).
            "RAILS_LOG_LEVEL=warn",
        ]);
        expect(fs.readFileSync(box.file("root/etc/default/scalelite-postgres"), "utf8")).toBe(`POSTGRES_PASSWORD=${DB_PASSWORD}\n`);
        expect(mode("root/etc/default/scalelite")).toBe("600");
        expect(mode("root/etc/default/scalelite-postgres")).toBe("600");
        expect(box.calls("chown")).toContainEqual(expect.stringMatching(/^chown root:root .*\/etc\/default\/scalelite\.\w+$/));
    });

    test("every secret is only in the root-only env files and never in the output", () => {
        const r = first;
        for (const secret of SECRETS) {
            const holding = box.files().filter((f) => fs.readFileSync(box.file(`root/${f}`), "utf8").includes(secret));
            const expected = secret === DB_PASSWORD ? ["etc/default/scalelite", "etc/default/scalelite-postgres"] : ["etc/default/scalelite"];
            expect(holding.sort()).toEqual(expected);
            expect(`${r.stdout}${r.stderr}`).not.toContain(secret);
            expect(box.calls().join("\n")).not.toContain(secret);
        }
    });

    test("exports the recordings directory over NFS to the BBB servers' range, root-squashed, and starts nfs-server", () => {
        expect(exportLines()).toEqual(["/var/lib/bbb-data/recordings 10.20.0.0/24(rw,sync,no_subtree_check,root_squash)"]);
        expect(mode(EXPORTS)).toBe("644");
        expect(box.calls("exportfs")).toEqual(["exportfs -ra"]);
        expect(box.calls("systemctl")).toEqual(["systemctl enable --now nfs-server"]);
        expect(envFile()).not.toMatch(/RECORDING_DISABLED|OVERRIDE_CREATE_PARAMS/);
    });

    test("runs the six containers on the scalelite network with their exact arguments", () => {
        expect(box.calls("docker")).toEqual(expect.arrayContaining(["docker network inspect scalelite", "docker network create scalelite"]));
        expect(runs()).toEqual(ALL);
        const sum = require("crypto").createHash("sha256").update(envFile()).digest("hex");
        const env = ["--env-file", `${box.root}/etc/default/scalelite`, "--label", `bbb.env=${sum}`];
        const data = `${box.root}/var/lib/bbb-data`;
        /** Every container's log is rotated (lib.sh ensure_container). */
        const LOG = ["--log-driver", "json-file", "--log-opt", "max-size=10m", "--log-opt", "max-file=5"];
        const head = (name: string) => ["-d", "--name", name, "--label", expect.stringMatching(/^bbb\.spec=[0-9a-f]{16}$/), "--restart", "unless-stopped", ...LOG, "--network", "scalelite"];
        const bind = (source: string, target: string, ro = false) => ["--mount", `type=bind,source=${source},target=${target}${ro ? ",readonly" : ""}`];
        const dbSum = require("crypto").createHash("sha256").update(fs.readFileSync(box.file("root/etc/default/scalelite-postgres"))).digest("hex");
        const dbEnv = ["--env-file", `${box.root}/etc/default/scalelite-postgres`, "--label", `bbb.env=${dbSum}`];
        expect(args("postgres")).toEqual([...head("postgres"), ...dbEnv, ...bind(`${data}/postgres`, "/var/lib/postgresql/data"), "postgres:15-alpine"]);
        expect(args("redis")).toEqual([...head("redis"), ...bind(`${data}/redis`, "/data"), "redis:7-alpine", "redis-server", "--appendonly", "yes"]);
        expect(args("scalelite-api")).toEqual([
            ...head("scalelite-api"), ...env, ...bind(`${data}/recordings`, "/var/bigbluebutton"), "blindsidenetwks/scalelite:v1.8.5-api",
        ]);
        expect(args("scalelite-poller")).toEqual([...head("scalelite-poller"), ...env, "blindsidenetwks/scalelite:v1.8.5-poller"]);
        expect(args("scalelite-recording-importer")).toEqual([
            ...head("scalelite-recording-importer"), ...env, ...bind(`${data}/recordings`, "/var/bigbluebutton"),
            "blindsidenetwks/scalelite:v1.8.5-recording-importer",
        ]);
        expect(args("scalelite-nginx")).toEqual([
            ...head("scalelite-nginx"), ...env, "--label", expect.stringMatching(/^bbb\.own-name=[0-9a-f]{64}$/),
            "--label", expect.stringMatching(/^bbb\.privacy=[0-9a-f]{64}$/), "-p", "80:80", "-p", "443:443",
            ...bind(`${box.root}/etc/letsencrypt`, "/etc/nginx/ssl", true),
            ...bind(`${box.root}/etc/bbb-deploy/scalelite-nginx-own-name.conf`, "/etc/nginx/http.d/bbb-own-name.conf", true),
            ...bind(`${box.root}/etc/bbb-deploy/scalelite-nginx-privacy.conf`, "/etc/nginx/http.d/bbb-privacy.conf", true),
            ...bind(`${data}/recordings/published`, "/var/bigbluebutton/published", true),
            "blindsidenetwks/scalelite:v1.8.5-nginx",
        ]);
    });

});

describe("scalelite-setup", () => {
    beforeEach(() => {
        box = host();
    });
    afterEach(() => box.cleanup());

    describe("privacy", () => {
        const PRIVACY_CONF = "root/etc/bbb-deploy/scalelite-nginx-privacy.conf";
        const directives = () =>
            fs.readFileSync(box.file(PRIVACY_CONF), "utf8").split("\n").filter((l) => l && !l.startsWith("#"));

        test("strict: nginx logs no request and no client address (both access logs of the image off), Rails logs warnings only", () => {
            ok();
            // http-level in an http.d file: off turns off every access_log of the level, and the image's servers
            // set none of their own (Scalelite's templates, Alpine's nginx.conf).
            expect(directives()).toEqual(["access_log off;", "error_log stderr emerg;"]);
            expect(envFile()).toContain("\nRAILS_LOG_LEVEL=warn\n");
        });

        test("standard: the image's access logs stay, Rails logs at info (not its default, debug)", () => {
            ok({ PRIVACY: "standard" });
            expect(directives()).toEqual([]);
            expect(envFile()).toContain("\nRAILS_LOG_LEVEL=info\n");
        });

        test("a new privacy setting replaces the Scalelite containers, not the database", () => {
            ok();
            fs.writeFileSync(box.file("calls.log"), "");
            ok({ PRIVACY: "standard" });
            expect(runs()).toEqual(SCALELITE);
        });

        test("a privacy setting other than strict or standard is refused before anything runs", () => {
            const r = run({ PRIVACY: "none" });
            expect(r.status).toBe(1);
            expect(r.stderr).toContain("PRIVACY must be strict or standard, not 'none'");
            expect(box.calls("docker")).toEqual([]);
        });
    });

    test("writes the force-remove flag, root-only, for the node-removal step", () => {
        ok();
        expect(fs.readFileSync(box.file("root/etc/bbb-deploy/scalelite-force-remove"), "utf8")).toBe("false\n");
        expect(mode("root/etc/bbb-deploy/scalelite-force-remove")).toBe("600");
        forget();
        ok({ FORCE_REMOVE: "true" });
        expect(fs.readFileSync(box.file("root/etc/bbb-deploy/scalelite-force-remove"), "utf8")).toBe("true\n");
        expect(runs()).toEqual([]);
    });

    test("a second run with the same inputs changes nothing and restarts nothing", () => {
        ok();
        const before = new Map(box.files().map((f) => [f, fs.readFileSync(box.file(`root/${f}`), "utf8")]));
        const labels = ALL.map((n) => fs.readFileSync(box.file(`docker/${n}/spec`), "utf8"));
        forget();
        ok();
        expect(new Map(box.files().map((f) => [f, fs.readFileSync(box.file(`root/${f}`), "utf8")]))).toEqual(before);
        // Only the database's preparation runs again (a no-op on an up-to-date database).
        expect(box.calls("docker").filter((c) => /^docker (run|rm|stop|restart|network create)/.test(c))).toEqual([
            `docker run --rm --network scalelite --env-file ${box.root}/etc/default/scalelite blindsidenetwks/scalelite:v1.8.5-api bundle exec rake db:prepare`,
        ]);
        expect(ALL.map((n) => fs.readFileSync(box.file(`docker/${n}/spec`), "utf8"))).toEqual(labels);
        expect(box.calls("mkfs.ext4")).toEqual([]);
        expect(box.calls("mount")).toEqual([]);
        expect(box.calls("exportfs")).toEqual([]);
        expect(box.calls("systemctl")).toEqual(["systemctl enable --now nfs-server"]);
    });

    test("a new SCALELITE_VERSION replaces exactly the four Scalelite containers, not postgres or redis", () => {
        ok();
        forget();
        ok({ SCALELITE_VERSION: "v1.8.6" });
        expect(removed()).toEqual(SCALELITE);
        expect(runs()).toEqual(SCALELITE);
        expect(args("scalelite-nginx").pop()).toBe("blindsidenetwks/scalelite:v1.8.6-nginx");
        expect(args("postgres").pop()).toBe("postgres:15-alpine");
    });

    test("a changed LOADBALANCER_SECRETS rewrites the env file and replaces every container that reads it, not the database", () => {
        ok();
        forget();
        const r = ok({ LOADBALANCER_SECRETS: LB_SECRET });
        expect(envFile()).toContain(`LOADBALANCER_SECRETS=${LB_SECRET}\n`);
        expect(envFile()).not.toContain(LB_OTHER);
        const readers = ALL.filter((n) => n !== "redis" && n !== "postgres");
        expect(removed()).toEqual(readers);
        expect(runs()).toEqual(readers);
        expect(`${r.stdout}${r.stderr}`).not.toContain(LB_SECRET);
    });

    test("waits until /health_check says success and the API answers SUCCESS, 5 s between tries", () => {
        box.write("health-failures", "2\n");
        const r = ok({ HEALTH_WAIT_SECONDS: "300" });
        const resolve = "--resolve scalelite.example.org:443:127.0.0.1";
        expect(box.calls("curl")).toEqual([
            ...Array(3).fill(`curl -sS --max-time 10 ${resolve} https://scalelite.example.org/health_check`),
            "curl -sS --max-time 10 --resolve bbb.example.org:443:127.0.0.1 https://bbb.example.org/bigbluebutton/api",
        ]);
        expect(box.calls("sleep")).toEqual(["sleep 5", "sleep 5"]);
        expect(r.stdout).toContain("scalelite-setup: Scalelite answers on https://bbb.example.org/bigbluebutton/api (and on https://scalelite.example.org)");
    });

    test("a 'Health Check Failure' body (HTTP 200) fails the step with the body, masked, and where to look", () => {
        const r = run({}, { HEALTH_BODY: `Health Check Failure: could not connect to postgresql://postgres:${DB_PASSWORD}@postgres:5432/scalelite` });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(
            "scalelite-setup: error: Scalelite at https://scalelite.example.org is not healthy after 0s; last answer: /health_check answered: " +
                "Health Check Failure: could not connect to postgresql://postgres:[secret]@postgres:5432/scalelite (see: docker logs scalelite-api)",
        );
        expect(`${r.stdout}${r.stderr}`).not.toContain(DB_PASSWORD);
    });

    test("an API that does not answer SUCCESS, or nothing listening, fails the step", () => {
        const api = run({}, { API_BODY: "<html>502 Bad Gateway</html>" });
        expect(api.status).toBe(1);
        expect(api.stderr).toContain("last answer: /bigbluebutton/api answered: <html>502 Bad Gateway</html> (see: docker logs scalelite-api)");
        const down = run({}, { SCALELITE_DOWN: "1" });
        expect(down.status).toBe(1);
        expect(down.stderr).toContain("last answer: /health_check: curl: (7) Failed to connect to scalelite.example.org port 443 (see: docker logs scalelite-api)");
    });

    test("an API name that does not point here yet stops the step before certbot and any container, saying what it resolves to", () => {
        fs.rmSync(box.file("api-a"));
        const r = run({ RESOLVE_TIMEOUT_SECONDS: "0" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("scalelite-setup: error: bbb.example.org does not resolve to this host through resolver1.opendns.com after 0s: A is '' (expected '203.0.113.20')");
        expect(box.calls("certbot").filter((c) => c.startsWith("certbot certonly"))).toEqual([]);
        expect(runs()).toEqual([]);
    });

    test("once the certificate names both, a later run asks DNS nothing (a DNS outage does not block other changes)", () => {
        ok();
        expect(box.calls("dig")).not.toEqual([]);
        fs.rmSync(box.file("api-a"));
        forget();
        expect(ok({ RESOLVE_TIMEOUT_SECONDS: "0" }).stdout).toContain("Scalelite answers on https://bbb.example.org/bigbluebutton/api");
        expect(box.calls("dig")).toEqual([]);
    });

    test("a Scalelite from before the API name: its own certificate goes once the new one names both, its API moves to the API name", () => {
        box.write("certbot/scalelite.example.org", "scalelite.example.org\n");
        box.write("root/etc/letsencrypt/live/scalelite.example.org/fullchain.pem", "old\n");
        ok();
        const certbot = box.calls("certbot").filter((c) => !c.startsWith("certbot certificates"));
        expect(certbot).toEqual([expect.stringContaining("--cert-name bbb.example.org -d bbb.example.org -d scalelite.example.org"), "certbot delete --non-interactive --cert-name scalelite.example.org"]);
        expect(fs.existsSync(box.file("root/etc/letsencrypt/live/scalelite.example.org"))).toBe(false);
        // Only once the containers answer with the new certificate: a failure before leaves the old one in use.
        const calls = box.calls();
        expect(calls.findIndex((c) => c.startsWith("certbot delete"))).toBeGreaterThan(calls.map((c) => c.startsWith("curl")).lastIndexOf(true));
        expect(envFile()).toContain("URL_HOST=bbb.example.org\n");
    });

    test("a first boot waits for PostgreSQL, then prepares Scalelite's database before the api starts (which would race it)", () => {
        box.write("pg-not-ready", "3\n");
        const r = ok({ HEALTH_WAIT_SECONDS: "60" });
        expect(r.stdout).toContain("scalelite-setup: Scalelite's database is ready");
        expect(box.calls("docker").filter((c) => c.includes("pg_isready"))).toHaveLength(4);
        const calls = box.calls("docker");
        const prepared = calls.findIndex((c) => c.includes("rake db:prepare"));
        expect(prepared).toBeGreaterThan(calls.findIndex((c) => c.startsWith("docker run") && c.includes("--name postgres")));
        expect(prepared).toBeLessThan(calls.findIndex((c) => c.startsWith("docker run") && c.includes("--name scalelite-api")));
        expect(fs.existsSync(box.file("scalelite-db-prepared"))).toBe(true);
    });

    test("a PostgreSQL that never answers, or a failing db:prepare, stops the step before the api starts, with the error, secrets masked", () => {
        box.write("pg-down", "");
        const down = run({ HEALTH_WAIT_SECONDS: "0" });
        expect(down.status).toBe(1);
        expect(down.stderr).toContain("scalelite-setup: error: PostgreSQL does not accept connections after 0s (see: docker logs postgres)");
        expect(runs()).not.toContain("scalelite-api");
        fs.rmSync(box.file("pg-down"));
        const failed = run({}, { DB_PREPARE_FAIL: "1" });
        expect(failed.status).toBe(1);
        expect(failed.stderr).toContain("ActiveRecord::ConnectionNotEstablished");
        expect(failed.stderr).toContain("scalelite-setup: error: cannot prepare Scalelite's database (rake db:prepare; see above)");
        expect(runs()).not.toContain("scalelite-api");
    });

    test("a failing certbot stops the step before any container runs, naming certbot and the name", () => {
        const r = run({}, { CERTBOT_FAIL: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("scalelite-setup: error: certbot could not obtain a certificate for bbb.example.org and scalelite.example.org");
        expect(runs()).toEqual([]);
    });

    test("a failing docker run stops the step naming the container", () => {
        const r = run({}, { DOCKER_FAIL: "run" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("scalelite-setup: error: cannot run container postgres (see: docker logs postgres)");
        expect(box.calls("curl")).toEqual([]);
    });

    test("RECORDINGS false: nothing exported, Scalelite records no meeting (RECORDING_DISABLED, record=false forced)", () => {
        ok({ RECORDINGS: "false", NFS_CLIENTS: "" });
        expect(fs.existsSync(box.file(EXPORTS))).toBe(false);
        expect(box.calls("apt-get")).toEqual(["apt-get install -y -q docker.io certbot"]);
        expect(box.calls("exportfs")).toEqual([]);
        expect(box.calls("systemctl")).toEqual([]);
        expect(envFile().split("\n").filter((l) => l && !l.startsWith("#")).slice(-4)).toEqual([
            "NGINX_SSL=true",
            "RECORDING_DISABLED=true",
            "OVERRIDE_CREATE_PARAMS=record=false",
            "RAILS_LOG_LEVEL=warn",
        ]);
    });

    test("one export line per client range, re-exported when they change; recordings off withdraws the export, on restores it", () => {
        ok();
        forget();
        ok({ NFS_CLIENTS: "10.20.0.0/24 10.30.0.0/16" });
        expect(exportLines()).toEqual([
            "/var/lib/bbb-data/recordings 10.20.0.0/24(rw,sync,no_subtree_check,root_squash)",
            "/var/lib/bbb-data/recordings 10.30.0.0/16(rw,sync,no_subtree_check,root_squash)",
        ]);
        expect(box.calls("exportfs")).toEqual(["exportfs -ra"]);
        expect(runs()).toEqual([]);
        forget();
        ok({ RECORDINGS: "false", NFS_CLIENTS: "" });
        expect(fs.existsSync(box.file(EXPORTS))).toBe(false);
        expect(box.calls("exportfs")).toEqual(["exportfs -ra"]);
        expect(envFile()).toContain("\nRECORDING_DISABLED=true\nOVERRIDE_CREATE_PARAMS=record=false\n");
        expect(runs()).toEqual(SCALELITE);
        forget();
        ok();
        expect(exportLines()).toHaveLength(1);
        expect(envFile()).not.toMatch(/RECORDING_DISABLED|OVERRIDE_CREATE_PARAMS/);
        expect(runs()).toEqual(SCALELITE);
    });

    test("a data volume gone read-only (ext4's errors=remount-ro) stops the step at the recordings' owners, before anything else", () => {
        ok();
        forget();
        const r = run({}, { CHOWN_READONLY: box.file("root/var/lib/bbb-data") });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`chown: changing ownership of '${box.root}/var/lib/bbb-data/recordings/spool': Read-only file system`);
        expect(r.stderr).toContain("scalelite-setup: error: cannot chown 1000:2000 the recording directories under /var/lib/bbb-data/recordings");
        expect(box.calls().filter((c) => /^(apt-get|docker|certbot|systemctl|exportfs|curl) /.test(c))).toEqual([]);
    });

    test("an nfs-server that does not start (e.g. a kernel without nfsd) stops the step before anything is exported or run", () => {
        const r = run({}, { SYSTEMCTL_FAIL: "enable nfs-server" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("scalelite-setup: error: cannot start nfs-server (see: journalctl -u nfs-server)");
        expect(box.calls("exportfs")).toEqual([]);
        expect(runs()).toEqual([]);
    });

    test("recordings turned off: an exportfs that fails after the export is withdrawn stops the step, naming it; no container is replaced", () => {
        ok();
        forget();
        const r = run({ RECORDINGS: "false", NFS_CLIENTS: "" }, { EXPORTFS_FAIL: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("exportfs: Failed to stat /var/lib/bbb-data/recordings\nscalelite-setup: error: exportfs -ra failed after removing the recordings export");
        expect(fs.existsSync(box.file(EXPORTS))).toBe(false);
        expect(runs()).toEqual([]);
        expect(removed()).toEqual([]);
    });

    test("docker's address pools used up: the network scalelite cannot be made, no container runs", () => {
        const r = run({}, { DOCKER_FAIL: "network create" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network\nscalelite-setup: error: cannot create the docker network scalelite");
        expect(runs()).toEqual([]);
    });

    test("the host's own certificate, no longer needed, that certbot cannot delete (its renewal holds the lock) fails the step after Scalelite answers; the next run deletes it", () => {
        box.write("certbot/scalelite.example.org", "scalelite.example.org\n");
        box.write("root/etc/letsencrypt/live/scalelite.example.org/fullchain.pem", "old\n");
        const r = run({}, { CERTBOT_LOCKED: "delete" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("scalelite-setup: error: certbot could not delete the certificate scalelite.example.org it no longer needs");
        expect(r.stdout).toContain("Scalelite answers on https://bbb.example.org/bigbluebutton/api");
        expect(fs.existsSync(box.file("root/etc/letsencrypt/live/scalelite.example.org/fullchain.pem"))).toBe(true);
        forget();
        expect(ok().stdout).toContain("deleted the certificate scalelite.example.org");
        expect(fs.existsSync(box.file("root/etc/letsencrypt/live/scalelite.example.org"))).toBe(false);
        expect(runs()).toEqual([]);
    });

    test("a failing exportfs stops the step before any container runs, naming the exports file", () => {
        const r = run({}, { EXPORTFS_FAIL: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("scalelite-setup: error: exportfs -ra failed (see /etc/exports.d/bbb-recordings.exports)");
        expect(runs()).toEqual([]);
    });

    test("inputs that would break the env file or DATABASE_URL are refused before anything runs, without showing them", () => {
        const cases: [Partial<typeof INPUTS>, string][] = [
            [{ LOADBALANCER_SECRETS: LB_OTHER }, "LOADBALANCER_SECRETS must include LOADBALANCER_SECRET"],
            [{ LOADBALANCER_SECRET: `${LB_SECRET}:x`, LOADBALANCER_SECRETS: `${LB_SECRET}:x` }, "LOADBALANCER_SECRET must not"],
            [{ LOADBALANCER_SECRETS: `${LB_SECRET}::${LB_OTHER}` }, "LOADBALANCER_SECRETS must be ':'-separated"],
            [{ DB_PASSWORD: `${DB_PASSWORD}@/` }, "DB_PASSWORD must be alphanumeric"],
            [{ SECRET_KEY_BASE: `${SECRET_KEY_BASE}\nX=1` }, "SECRET_KEY_BASE must be lower-case hex"],
            [{ FORCE_REMOVE: "yes" }, "FORCE_REMOVE must be true or false"],
            [{ RECORDINGS: "yes" }, "RECORDINGS must be true or false"],
            [{ NFS_CLIENTS: "" }, "NFS_CLIENTS must name the BBB servers' address ranges when RECORDINGS is true"],
            [{ NFS_CLIENTS: "10.20.0.0/24 *(rw,no_root_squash)" }, "NFS_CLIENTS holds '*(rw,no_root_squash)', which is not an address range"],
            [{ VOICE_BRIDGE_LEN: "4" }, "VOICE_BRIDGE_LEN must be 5 to 11 digits (the dial-in PIN length), not '4'"],
            [{ FQDN: "Scalelite.Example.org" }, "FQDN 'Scalelite.Example.org' is not a lower-case host name"],
            [{ API_FQDN: "scalelite.example.org" }, "API_FQDN 'scalelite.example.org' is not a lower-case host name other than FQDN"],
            [{ SCALELITE_VERSION: "v1.8.5; rm -rf /" }, "SCALELITE_VERSION 'v1.8.5; rm -rf /' is not an image tag"],
            [{ VOLUME_ID: "vol-1" }, "VOLUME_ID 'vol-1' is not an OpenStack volume id"],
            [{ POSTGRES_IMAGE: "postgres 15" }, "POSTGRES_IMAGE 'postgres 15' is not an image name"],
            [{ REDIS_IMAGE: "redis 7" }, "REDIS_IMAGE 'redis 7' is not an image name"],
            [{ HEALTH_WAIT_SECONDS: "ten" }, "HEALTH_WAIT_SECONDS must be a number of seconds, not 'ten'"],
            [{ RETENTION_DAYS: "-1" }, "RETENTION_DAYS must be a number of days, not '-1'"],
            [{ EMAIL: "ops at example.org" }, "EMAIL 'ops at example.org' is not an e-mail address"],
        ];
        for (const [inputs, message] of cases) {
            const r = run(inputs);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`scalelite-setup: error: ${message}`);
            for (const secret of SECRETS) expect(r.stderr).not.toContain(secret);
        }
        expect(box.calls()).toEqual([]);
    });
});

describe("recording retention", () => {
    beforeEach(() => {
        box = host();
    });
    afterEach(() => box.cleanup());

    test("a daily job deletes published recordings older than retentionDays through Scalelite's API, signed", () => {
        ok();
        const job = box.file("root/etc/cron.daily/bbb-recording-retention");
        expect((fs.statSync(job).mode & 0o777).toString(8)).toBe("755");
        const text = fs.readFileSync(job, "utf8");
        expect(text).toContain("-mtime +30");
        for (const secret of SECRETS) expect(text).not.toContain(secret);
        // Run it: one recording old enough, one not.
        const published = box.file("root/var/lib/bbb-data/recordings/published/presentation");
        fs.mkdirSync(`${published}/old-record-1`, { recursive: true });
        fs.mkdirSync(`${published}/new-record-2`, { recursive: true });
        const old = new Date(Date.now() - 40 * 86400 * 1000);
        fs.utimesSync(`${published}/old-record-1`, old, old);
        fs.writeFileSync(box.callLog, "");
        box.stub("curl"); // Scalelite's API answering deleteRecordings
        const r = require("child_process").spawnSync("/bin/sh", [job], { env: { PATH: box.bin, SANDBOX: box.dir }, encoding: "utf8" });
        expect(r.status).toBe(0);
        const checksum = require("crypto").createHash("sha1").update(`deleteRecordingsrecordID=old-record-1${LB_SECRET}`).digest("hex");
        expect(box.calls("curl")).toEqual([
            `curl -sS --max-time 20 --resolve bbb.example.org:443:127.0.0.1 https://bbb.example.org/bigbluebutton/api/deleteRecordings?recordID=old-record-1&checksum=${checksum}`,
        ]);
    });

    test("without recordings (retention 0) there is no such job, and an earlier one goes", () => {
        ok();
        expect(fs.existsSync(box.file("root/etc/cron.daily/bbb-recording-retention"))).toBe(true);
        ok({ RECORDINGS: "false", NFS_CLIENTS: "", RETENTION_DAYS: "0" });
        expect(fs.existsSync(box.file("root/etc/cron.daily/bbb-recording-retention"))).toBe(false);
    });
});

/**
 * The database wait and set-up against a real PostgreSQL (Debian's, test/postgres.ts): `docker exec postgres
 * pg_isready` is the real pg_isready (0 accepting, 2 no response), and Scalelite's `rake db:prepare` is played
 * with the real psql as Rails 7.2 runs it (activerecord's DatabaseTasks.prepare_all): the database created when
 * missing and db/schema.rb loaded (v1.8.5: version 2023_06_27_141045, its recordings table here), else migrated
 * (nothing to migrate at that version); like ActiveRecord, it fails when PostgreSQL does not answer. Every other
 * docker call goes to the docker stub.
 */
describe("with a real PostgreSQL: the database wait and set-up", () => {
    let pg: RealPostgres;
    beforeAll(() => {
        pg = new RealPostgres();
    });
    afterAll(() => pg.cleanup());
    beforeEach(() => {
        box = host();
        box.stub("sleep", 'exec /bin/sleep "$@"');
        fs.renameSync(path.join(box.bin, "docker"), path.join(box.bin, "docker-stub"));
        const prepare = [
            `${pg.client("psql")} -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'scalelite'" | grep -q 1 || ${pg.client("createdb")} scalelite || exit 1`,
            `${pg.client("psql")} -d scalelite -q -v ON_ERROR_STOP=1 -c "CREATE TABLE IF NOT EXISTS schema_migrations (version varchar PRIMARY KEY); INSERT INTO schema_migrations VALUES ('20230627141045') ON CONFLICT DO NOTHING; CREATE TABLE IF NOT EXISTS recordings (id bigserial PRIMARY KEY, record_id varchar)"`,
        ].join("\n");
        fs.writeFileSync(
            path.join(box.bin, "docker"),
            `#!/bin/bash
case "$*" in
  "exec postgres pg_isready "*)
    printf 'docker %s\\n' "$*" >> "$SANDBOX/calls.log"
    # A database that comes up after its container: the first question starts it and gets pg_isready's
    # "no response" (exit 2), whatever the machine's load.
    if [ -e "$SANDBOX/pg-starts-when-asked" ]; then rm "$SANDBOX/pg-starts-when-asked"; (${pg.startCommand()} >/dev/null 2>&1 &); exit 2; fi
    exec ${pg.client("pg_isready")} -q ;;
  "run --rm "*"rake db:prepare")
    printf 'docker %s\\n' "$*" >> "$SANDBOX/calls.log"
${prepare} ;;
  *) exec "$SANDBOX/bin/docker-stub" "$@" ;;
esac
`,
            { mode: 0o755 },
        );
    });
    afterEach(() => {
        pg.stop();
        box.cleanup();
    });
    const schema = () => pg.query("SELECT version FROM schema_migrations", "scalelite");

    test("a first boot, PostgreSQL accepting connections only after its container started: the step waits, then makes Scalelite's database, then starts the api", () => {
        fs.writeFileSync(path.join(box.dir, "pg-starts-when-asked"), "");
        const r = ok({ HEALTH_WAIT_SECONDS: "60" });
        expect(r.stdout).toContain("scalelite-setup: waiting for PostgreSQL to accept connections");
        // Over TCP, as Scalelite connects (the image's first-boot server listens on its socket only): here the
        // test cluster's socket stands for the container's port.
        expect(box.calls("docker")).toContain("docker exec postgres pg_isready -q -h 127.0.0.1 -U postgres");
        expect(box.calls("docker").filter((c) => c.includes("pg_isready")).length).toBeGreaterThan(1);
        expect(schema()).toBe("20230627141045");
        const calls = box.calls("docker");
        expect(calls.findIndex((c) => c.includes("rake db:prepare"))).toBeLessThan(calls.findIndex((c) => c.startsWith("docker run") && c.includes("--name scalelite-api")));
    });

    test("a later run prepares the database again without losing what is in it", () => {
        pg.start();
        ok();
        pg.query("INSERT INTO recordings (record_id) VALUES ('r-1')", "scalelite");
        ok();
        expect(pg.query("SELECT record_id FROM recordings", "scalelite")).toBe("r-1");
        expect(schema()).toBe("20230627141045");
    });

    test("a PostgreSQL that never comes up stops the step after HEALTH_WAIT_SECONDS, naming it; the api is not started", () => {
        const r = run({ HEALTH_WAIT_SECONDS: "3" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("scalelite-setup: error: PostgreSQL does not accept connections after 3s (see: docker logs postgres)");
        expect(box.calls("docker").filter((c) => c.includes("rake db:prepare"))).toEqual([]);
        expect(runs()).not.toContain("scalelite-api");
    });
});
