// scripts/remote/greenlight-setup.sh, run for real against the stubs of ./stubs (docker emulating containers,
// certbot, systemctl, a fake data volume) and, defined here, an nginx whose `-t` can fail, a curl that answers
// Greenlight's health check (only once nginx and greenlight-v3 run).
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Sandbox, StepResult } from "./sandbox";
import { attachVolume, installStubs } from "./stubs";

const VOLUME = "7e1d2c3b-0000-4000-8000-00000000beef";
const SECRET_KEY_BASE = "5eb1".repeat(32);
const DB_PASSWORD = "DbPassw0rdOnlyAlnum1234567890xyz";
const BBB_SECRET = "ScaleliteConsumerSecret0123456789abcdef";
const SECRETS = [SECRET_KEY_BASE, DB_PASSWORD, BBB_SECRET];
const INPUTS = {
    FQDN: "gl.example.org",
    EMAIL: "ops@example.org",
    GREENLIGHT_VERSION: "v3.8.2.4",
    VOLUME_ID: VOLUME,
    VOLUME_SIZE: "20",
    SECRET_KEY_BASE,
    DB_PASSWORD,
    BBB_ENDPOINT: "https://scalelite.example.org/bigbluebutton/api/",
    BBB_SECRET,
    POSTGRES_IMAGE: "postgres:14-alpine3.20",
    REDIS_IMAGE: "redis:6.2-alpine3.20",
    HEALTH_WAIT_SECONDS: "60",
    PRIVACY: "strict",
};

/** nginx: `-t` passes unless NGINX_BROKEN is set; anything else is unexpected. */
const NGINX = `
[ "$1" = -t ] || { echo "nginx: unexpected arguments $*" >&2; exit 1; }
if [ -n "\${NGINX_BROKEN:-}" ]; then
  echo 'nginx: [emerg] unknown directive "http2" in /etc/nginx/sites-enabled/greenlight:17' >&2
  echo "nginx: configuration file /etc/nginx/nginx.conf test failed" >&2; exit 1
fi
echo "nginx: the configuration file /etc/nginx/nginx.conf syntax is ok" >&2
echo "nginx: configuration file /etc/nginx/nginx.conf test is successful" >&2`;

/**
 * curl: Greenlight's /health_check through nginx. No answer (000) while nginx is stopped or HEALTH_DOWN is
 * set; 502 while greenlight-v3 is not running and for the first HEALTH_FAILS tries; then 200.
 */
const CURL = `
url=""; for a in "$@"; do case $a in https://*) url=$a ;; esac; done
case $url in
  https://*/health_check)
    n=$(( $(cat "$SANDBOX/health-tries" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$SANDBOX/health-tries"
    if [ -n "\${HEALTH_DOWN:-}" ] || [ ! -f "$SANDBOX/units/nginx" ]; then
      printf 000; echo "curl: (7) Failed to connect to \${url#https://} port 443" >&2; exit 7
    fi
    if [ ! -f "$SANDBOX/docker/greenlight-v3/running" ] || [ "$n" -le "\${HEALTH_FAILS:-0}" ]; then printf 502; else printf 200; fi ;;
  *) echo "curl: unexpected URL $url" >&2; exit 3 ;;
esac`;


let box: Sandbox;

/** A host with its data volume attached (`formatted`: it already holds a filesystem). */
function host(formatted = false): Sandbox {
    box = new Sandbox();
    installStubs(box);
    box.stub("nginx", NGINX);
    box.stub("curl", CURL);
    attachVolume(box, VOLUME, formatted);
    return box;
}
const run = (inputs: Record<string, string> = {}, env: Record<string, string> = {}) => box.run("greenlight-setup", { ...INPUTS, ...inputs }, env);
const read = (relative: string) => fs.readFileSync(box.file(relative), "utf8");
const mode = (relative: string) => (fs.statSync(box.file(relative)).mode & 0o777).toString(8);
const clearCalls = () => fs.writeFileSync(box.callLog, "");
const dockerArgs = (name: string) => read(`docker/${name}/args`).split("\n").filter(Boolean);
const envFile = () => read("root/etc/default/greenlight");
const site = () => read("root/etc/nginx/sites-available/greenlight");
const ENV_PATH = () => `${box.root}/etc/default/greenlight`;
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const created = () => box.calls("docker").filter((c) => c.startsWith("docker run")).map((c) => c.split(" ")[4]);

function expectOk(r: { status: number | null; stderr: string }): void {
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
}

describe("a first run: data volume with a filesystem, nginx's default site enabled, Greenlight slow to start", () => {
    let first: StepResult;
    beforeAll(() => {
        host(true);
        box.write("root/etc/nginx/sites-available/default", "server { listen 80 default_server; }\n");
        fs.mkdirSync(box.file("root/etc/nginx/sites-enabled"));
        fs.symlinkSync(box.file("root/etc/nginx/sites-available/default"), box.file("root/etc/nginx/sites-enabled/default"));
        box.stub("sleep");
        first = run({}, { HEALTH_FAILS: "2" });
    });
    afterAll(() => box.cleanup());

    test("succeeds quietly, up to its last word", () => {
        expectOk(first);
        expect(first.stdout).toContain(`greenlight-setup: Greenlight ${INPUTS.GREENLIGHT_VERSION} is up at https://${INPUTS.FQDN}/`);
    });

    test("the data volume, holding a filesystem (kept from a replaced VM), is mounted, never formatted", () => {
        expect(box.calls("mkfs.ext4")).toEqual([]);
        expect(read("root/etc/fstab")).toBe("UUID=0b5e55ed-0000-4000-8000-000000000001 /var/lib/bbb-data ext4 defaults,nofail 0 2\n");
        expect(box.calls("mount")).toEqual([`mount ${box.root}/var/lib/bbb-data`]);
    });

    test("runs Postgres, Redis and Greenlight on the greenlight network with the exact docker arguments", () => {
        /** Every container's log is rotated (lib.sh ensure_container). */
        const LOG = ["--log-driver", "json-file", "--log-opt", "max-size=10m", "--log-opt", "max-file=5"];
        const head = (name: string) => ["-d", "--name", name, "--label", expect.stringMatching(/^bbb\.spec=[0-9a-f]{16}$/), "--restart", "unless-stopped", ...LOG, "--network", "greenlight"];
        const env = ["--env-file", ENV_PATH(), "--label", `bbb.env=${sha256(envFile())}`];
        const dbEnvPath = `${box.root}/etc/default/greenlight-postgres`;
        const dbEnv = ["--env-file", dbEnvPath, "--label", `bbb.env=${sha256(fs.readFileSync(dbEnvPath, "utf8"))}`];
        const bind = (source: string, target: string) => ["--mount", `type=bind,source=${source},target=${target}`];
        expect(dockerArgs("greenlight-postgres")).toEqual([
            ...head("greenlight-postgres"), ...dbEnv,
            ...bind("/var/lib/bbb-data/postgres", "/var/lib/postgresql/data"), "postgres:14-alpine3.20",
        ]);
        expect(dockerArgs("greenlight-redis")).toEqual([
            ...head("greenlight-redis"),
            ...bind("/var/lib/bbb-data/redis", "/data"), "redis:6.2-alpine3.20", "redis-server", "--appendonly", "yes",
        ]);
        expect(dockerArgs("greenlight-v3")).toEqual([
            ...head("greenlight-v3"), ...env,
            "-p", "127.0.0.1:5050:3000", ...bind("/var/lib/bbb-data/greenlight", "/usr/src/app/storage"), "bigbluebutton/greenlight:v3.8.2.4",
        ]);
        expect(created()).toEqual(["greenlight-postgres", "greenlight-redis", "greenlight-v3"]);
        expect(box.calls("docker").filter((c) => c.startsWith("docker pull"))).toEqual([
            "docker pull -q postgres:14-alpine3.20",
            "docker pull -q redis:6.2-alpine3.20",
            "docker pull -q bigbluebutton/greenlight:v3.8.2.4",
        ]);
        expect(box.calls("docker")).toEqual(expect.arrayContaining(["docker network inspect greenlight", "docker network create greenlight"]));
        for (const dir of ["postgres", "redis", "greenlight"]) expect(fs.statSync(box.file(`root/var/lib/bbb-data/${dir}`)).isDirectory()).toBe(true);
    });

    test("the env file points Greenlight at Scalelite, its Postgres and Redis, and is root-only", () => {
        expect(envFile()).toBe(
            [
                "# Managed by bbb (Pulumi, greenlight-setup step); changes here are overwritten.",
                "BIGBLUEBUTTON_ENDPOINT=https://scalelite.example.org/bigbluebutton/api/",
                `BIGBLUEBUTTON_SECRET=${BBB_SECRET}`,
                `SECRET_KEY_BASE=${SECRET_KEY_BASE}`,
                `DATABASE_URL=postgres://postgres:${DB_PASSWORD}@greenlight-postgres:5432/greenlight-v3-production`,
                "REDIS_URL=redis://greenlight-redis:6379/",
                "URL_HOST=gl.example.org",
                "SMTP_HEALTH_CHECK_DISABLED=true",
                // Strict privacy: at info Greenlight logs room and user ids with every request (lograge).
                "LOG_LEVEL=warn",
                "",
            ].join("\n"),
        );
        expect(fs.readFileSync(box.file("root/etc/default/greenlight-postgres"), "utf8")).toBe(
            `POSTGRES_PASSWORD=${DB_PASSWORD}\nPOSTGRES_DB=greenlight-v3-production\n`,
        );
        expect(mode("root/etc/default/greenlight")).toBe("600");
        expect(mode("root/etc/default/greenlight-postgres")).toBe("600");
        expect(box.calls("chown")).toContainEqual(expect.stringMatching(/^chown root:root .*\/etc\/default\/greenlight\.\w+$/));
    });

    test("the secrets are in the root-only env files only: in no other file, no command line, no output", () => {
        for (const secret of SECRETS) {
            const holding = box.files().filter((f) => fs.readFileSync(box.file(`root/${f}`), "utf8").includes(secret));
            const expected = secret === DB_PASSWORD ? ["etc/default/greenlight", "etc/default/greenlight-postgres"] : ["etc/default/greenlight"];
            expect([secret, holding.sort()]).toEqual([secret, expected]);
            expect(read("calls.log")).not.toContain(secret);
            expect(`${first.stdout}${first.stderr}`).not.toContain(secret);
        }
    });

    test("installs docker, nginx and certbot and gets the certificate by HTTP-01 with nginx stopped around it", () => {
        expect(box.calls("apt-get")).toEqual(["apt-get install -y -q docker.io nginx certbot"]);
        expect(box.calls("certbot")).toEqual([
            "certbot certonly --standalone --non-interactive --agree-tos --keep-until-expiring -m ops@example.org -d gl.example.org" +
                " --pre-hook systemctl stop nginx --post-hook systemctl start nginx",
        ]);
        expect(box.calls().indexOf(box.calls("certbot")[0])).toBeLessThan(box.calls().indexOf(box.calls("nginx")[0]));
    });

    test("the nginx site redirects to https, serves TLS 1.2/1.3 with the certificate and proxies to Greenlight with WebSocket headers", () => {
        const lines = site().split("\n").map((l) => l.trim().replace(/\s+/g, " "));
        const servers = site().split(/^server \{$/m).slice(1);
        expect(servers).toHaveLength(2);
        const [plain, tls] = servers.map((s) => s.split("\n").map((l) => l.trim()));
        expect(plain).toEqual(expect.arrayContaining(["listen 80;", "listen [::]:80;", "server_name gl.example.org;", "return 301 https://gl.example.org$request_uri;"]));
        expect(tls).toEqual(
            expect.arrayContaining([
                "listen 443 ssl http2;",
                "listen [::]:443 ssl http2;",
                "server_name gl.example.org;",
                "ssl_certificate /etc/letsencrypt/live/gl.example.org/fullchain.pem;",
                "ssl_certificate_key /etc/letsencrypt/live/gl.example.org/privkey.pem;",
                "ssl_protocols TLSv1.2 TLSv1.3;",
                "client_max_body_size 31m;",
                "proxy_pass http://127.0.0.1:5050;",
                "proxy_http_version 1.1;",
                "proxy_set_header Host $host;",
                "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                "proxy_set_header X-Forwarded-Proto $scheme;",
                "proxy_set_header Upgrade $http_upgrade;",
                "proxy_set_header Connection $greenlight_connection;",
            ]),
        );
        expect(lines).toEqual(expect.arrayContaining(["map $http_upgrade $greenlight_connection {", "default upgrade;", "'' close;"]));
        expect(fs.readlinkSync(box.file("root/etc/nginx/sites-enabled/greenlight"))).toBe(`${box.root}/etc/nginx/sites-available/greenlight`);
        expect(box.calls("nginx")).toEqual(["nginx -t"]);
        expect(box.calls("systemctl")).toEqual(expect.arrayContaining(["systemctl enable --quiet nginx", "systemctl start nginx"]));
        expect(fs.existsSync(box.file("root/etc/nginx/sites-enabled/default"))).toBe(false);
    });

    test("waits for Greenlight's health check through nginx, trying again every 5 seconds", () => {
        const tries = box.calls("curl");
        expect(tries).toHaveLength(3);
        expect(tries[0]).toBe("curl -sS --max-time 10 -o /dev/null -w %{http_code} --resolve gl.example.org:443:127.0.0.1 https://gl.example.org/health_check");
        expect(box.calls("sleep")).toEqual(["sleep 5", "sleep 5"]);
        expect(first.stdout).toContain("greenlight-setup: Greenlight v3.8.2.4 is up at https://gl.example.org/");
    });
});

describe("privacy", () => {
    afterEach(() => box.cleanup());
    const logging = () => site().split("\n").map((l) => l.trim()).filter((l) => /^(access|error)_log /.test(l));

    test("strict: nginx logs no request and no error naming a client (only emergencies), in both servers; Greenlight logs warnings", () => {
        host();
        expectOk(run());
        // Server-level: they replace Ubuntu's http-level access_log and error_log (nginx.conf).
        expect(logging()).toEqual(["access_log off;", "error_log /var/log/nginx/error.log emerg;", "access_log off;", "error_log /var/log/nginx/error.log emerg;"]);
        expect(envFile()).toContain("\nLOG_LEVEL=warn\n");
    });

    test("standard: nginx's own logs, Greenlight at info", () => {
        host();
        expectOk(run({ PRIVACY: "standard" }));
        expect(logging()).toEqual([]);
        expect(envFile()).toContain("\nLOG_LEVEL=info\n");
    });

    test("a privacy setting other than strict or standard is refused before anything runs", () => {
        host();
        const r = run({ PRIVACY: "off" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("PRIVACY must be strict or standard, not 'off'");
        expect(box.calls("docker")).toEqual([]);
    });
});

describe("later runs and failures", () => {
    afterEach(() => box.cleanup());

    test("a hand-edited site is put back, tested, and nginx reloaded", () => {
        host();
        expectOk(run());
        const written = site();
        fs.writeFileSync(box.file("root/etc/nginx/sites-available/greenlight"), written.replace("client_max_body_size 31m;", "client_max_body_size 1m;"));
        clearCalls();
        expectOk(run());
        expect(site()).toBe(written);
        expect(box.calls("nginx")).toEqual(["nginx -t"]);
        expect(box.calls("systemctl")).toContain("systemctl reload nginx");
        expect(created()).toEqual([]);
    });

    test("a second run with the same inputs rewrites nothing, reloads nothing and replaces no container", () => {
        host();
        expectOk(run());
        const snapshot = () =>
            Object.fromEntries(
                box.files().map((f) => {
                    const stat = fs.statSync(box.file(`root/${f}`));
                    // The stub certbot copies the certificate again each time; the real one keeps it until it expires.
                    const identity = f.startsWith("etc/letsencrypt/") ? "" : `${stat.ino}@${stat.mtimeMs}`;
                    return [f, `${identity} ${fs.readFileSync(box.file(`root/${f}`), "utf8")}`];
                }),
            );
        const before = snapshot();
        clearCalls();
        expectOk(run());
        expect(snapshot()).toEqual(before);
        expect(box.calls("docker").filter((c) => /^docker (run|rm|pull|network create)/.test(c))).toEqual([]);
        expect(box.calls("docker")).toEqual(expect.arrayContaining(["docker start greenlight-postgres", "docker start greenlight-redis", "docker start greenlight-v3"]));
        expect(box.calls("systemctl").filter((c) => /reload|restart|stop/.test(c))).toEqual([]);
        expect(box.calls("nginx")).toEqual([]);
        expect(box.calls("mkfs.ext4")).toEqual([]);
        expect(box.calls("mount")).toEqual([]);
    });

    test("a new Scalelite secret replaces greenlight-v3 (the env file's hash changed) but not Redis or the database", () => {
        host();
        expectOk(run());
        const oldHash = sha256(envFile());
        clearCalls();
        const NEW_SECRET = "AnotherScaleliteSecret9876543210fedcba";
        const r = run({ BBB_SECRET: NEW_SECRET });
        expectOk(r);
        expect(envFile()).toContain(`BIGBLUEBUTTON_SECRET=${NEW_SECRET}\n`);
        expect(dockerArgs("greenlight-v3")).toContain(`bbb.env=${sha256(envFile())}`);
        expect(dockerArgs("greenlight-v3")).not.toContain(`bbb.env=${oldHash}`);
        expect(box.calls("docker")).toContain("docker rm -f greenlight-v3");
        expect(created()).toEqual(["greenlight-v3"]);
        expect(box.calls("docker")).toContain("docker start greenlight-redis");
        expect(`${r.stdout}${r.stderr}${read("calls.log")}`).not.toContain(NEW_SECRET);
    });

    test("an unhealthy Greenlight fails the step with the last status and where to look", () => {
        host();
        const r = run({ HEALTH_WAIT_SECONDS: "0" }, { HEALTH_FAILS: "99" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(
            "greenlight-setup: error: Greenlight is not healthy after 0s: https://gl.example.org/health_check answered HTTP 502; see: docker logs greenlight-v3",
        );
    });

    test("no answer at all is told apart from an error status", () => {
        host();
        const r = run({ HEALTH_WAIT_SECONDS: "0" }, { HEALTH_DOWN: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("https://gl.example.org/health_check gave no answer (is nginx running?); see: docker logs greenlight-v3");
    });

    test("a failing nginx -t fails the step without reloading nginx, and the next run tests the site again", () => {
        host();
        const r = run({}, { NGINX_BROKEN: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain('nginx: [emerg] unknown directive "http2"');
        expect(r.stderr).toContain("greenlight-setup: error: nginx -t rejected the configuration with the Greenlight site");
        expect(box.calls("systemctl").filter((c) => / nginx$/.test(c) && !c.includes("enable"))).toEqual([]);
        expect(box.calls("curl")).toEqual([]);
        clearCalls();
        expectOk(run());
        expect(box.calls("nginx")).toEqual(["nginx -t"]);
        expect(fs.existsSync(box.file("root/etc/nginx/sites-enabled/greenlight"))).toBe(true);
    });

    test("systemd failing for docker or nginx stops the step with what failed and where to look", () => {
        host();
        for (const [verb, message] of [
            ["enable", "cannot enable docker"],
            ["start", "docker did not start (see: journalctl -u docker)"],
        ]) {
            const r = run({}, { SYSTEMCTL_FAIL: verb });
            expect([r.status, r.stderr]).toEqual([1, expect.stringContaining(`greenlight-setup: error: ${message}`)]);
            expect(created()).toEqual([]);
        }
        expectOk(run());
        // nginx runs now: a changed site reloads it, and a reload that fails says so.
        box.write("units/nginx", "");
        fs.rmSync(box.file("root/etc/nginx/sites-enabled/greenlight"));
        const reload = run({}, { SYSTEMCTL_FAIL: "reload" });
        expect([reload.status, reload.stderr]).toEqual([1, expect.stringContaining("greenlight-setup: error: nginx did not reload (see: journalctl -u nginx)")]);
    });

    test("nginx masked by hand cannot be enabled: the step says so before nginx is started", () => {
        host();
        box.write("masked/nginx", "");
        const r = run();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("Failed to enable unit: Unit file /etc/systemd/system/nginx.service is masked.\ngreenlight-setup: error: cannot enable nginx");
        expect(box.calls("systemctl").filter((c) => /^systemctl (start|reload) nginx$/.test(c))).toEqual([]);
        expect(box.calls("curl")).toEqual([]);
    });

    test("nginx that does not start (port 443 held by another server) fails the step, saying where to look, before the health check", () => {
        host();
        const r = run({}, { SYSTEMCTL_FAIL: "start nginx" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("Job for nginx.service failed because the control process exited with error code.");
        expect(r.stderr).toContain("greenlight-setup: error: nginx did not start (see: journalctl -u nginx)");
        expect(box.calls("curl")).toEqual([]);
        // docker started as ever: only nginx's job failed.
        expect(created()).toEqual(["greenlight-postgres", "greenlight-redis", "greenlight-v3"]);
    });

    test("a directory where the site's link must go (holding one named greenlight, which ln cannot replace) stops the step before nginx is tested", () => {
        host();
        fs.mkdirSync(box.file("root/etc/nginx/sites-enabled/greenlight/greenlight"), { recursive: true });
        const r = run();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("ln: ");
        expect(r.stderr).toContain(`greenlight-setup: error: cannot enable the nginx site ${box.root}/etc/nginx/sites-available/greenlight`);
        expect(box.calls("nginx")).toEqual([]);
        expect(box.calls("systemctl").filter((c) => / nginx$/.test(c))).toEqual([]);
    });

    test("docker's address pools used up: the network greenlight cannot be made, no container runs", () => {
        host();
        const r = run({}, { DOCKER_FAIL: "network create" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(
            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network\ngreenlight-setup: error: cannot create the docker network greenlight",
        );
        expect(created()).toEqual([]);
    });

    test("a greenlightVersion the registry does not have stops the step before any container is replaced", () => {
        host();
        expectOk(run());
        clearCalls();
        const r = run({ GREENLIGHT_VERSION: "v3.8.99" }, { DOCKER_FAIL: "pull" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(
            "Error response from daemon: manifest for bigbluebutton/greenlight:v3.8.99 not found: manifest unknown: manifest unknown\n" +
                "greenlight-setup: error: cannot pull bigbluebutton/greenlight:v3.8.99",
        );
        expect(box.calls("docker").filter((c) => /^docker (run|rm)/.test(c))).toEqual([]);
        expect(dockerArgs("greenlight-v3").pop()).toBe("bigbluebutton/greenlight:v3.8.2.4");
    });

    test("a failing certbot stops the step naming certbot and the name, before any container runs", () => {
        host();
        const r = run({}, { CERTBOT_FAIL: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("greenlight-setup: error: certbot could not obtain a certificate for gl.example.org");
        expect(created()).toEqual([]);
    });

    test("bad or missing inputs are refused before anything runs, without echoing a secret", () => {
        host();
        let r = run({ DB_PASSWORD: "p@ss:word/x" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("greenlight-setup: error: DB_PASSWORD must be alphanumeric");
        expect(r.stderr).not.toContain("p@ss:word/x");
        r = run({ BBB_SECRET: "" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("greenlight-setup: error: input BBB_SECRET is missing");
        r = run({ BBB_ENDPOINT: "https://scalelite.example.org/bigbluebutton/api" });
        expect(r.stderr).toContain("is not https://<host>/bigbluebutton/api/");
        for (const [inputs, message] of [
            [{ FQDN: "gl.example.org/x" }, "FQDN 'gl.example.org/x' is not a host name"],
            [{ GREENLIGHT_VERSION: "v3 latest" }, "GREENLIGHT_VERSION 'v3 latest' is not an image tag"],
            [{ SECRET_KEY_BASE: "short" }, "SECRET_KEY_BASE must be hex (at least 32 digits)"],
            [{ BBB_SECRET: "two words" }, "BBB_SECRET must not contain spaces or control characters"],
            [{ HEALTH_WAIT_SECONDS: "1m" }, "HEALTH_WAIT_SECONDS '1m' is not a number of seconds"],
        ] as [Record<string, string>, string][]) {
            r = run(inputs);
            expect([r.status, r.stderr]).toEqual([1, expect.stringContaining(`greenlight-setup: error: ${message}`)]);
        }
        expect(box.calls()).toEqual([]);
        expect(fs.existsSync(path.join(box.root, "etc/default/greenlight"))).toBe(false);
    });
});
