// scripts/remote/streaming-setup.sh, run for real against the stubs of test/stubs.ts and the ones below; nginx -t is the
// real nginx's (Debian's nginx and libnginx-mod-rtmp) on the sandbox's files (stubs.ts, NGINX_REAL_TEST), openssl, tar
// and base64 are the real ones.
import { execFileSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { HOST_PATHS, rtmpConf, viewerSite } from "../components/streaming-config";
import { REFUSED_FORWARD_URLS } from "./forward-urls";
import { Sandbox } from "./sandbox";
import { installStubs, NGINX_REAL_TEST } from "./stubs";
import { secretsOnCommandLines, straceWorks, Trace } from "./trace";

const FQDN = "stream.example.org";
const API_PASSWORD = "Api-Pa55word-8c1e2f7a";
const STREAM_KEY = "s3cret-stream-key-9f4e21";
// nginx resolves a push URL's host when it reads its configuration (nginx -t too): one that resolves here.
const FORWARD_URL = `rtmp://127.0.0.1:1936/app/${STREAM_KEY}`;

// The files the program generates for the host (components/streaming-config.ts, as components/streaming.ts calls it):
// the step is tested with them, nginx checks them for real.
const RTMP_CONF = rtmpConf({ paths: HOST_PATHS, record: true, forward: true });
const SITE = viewerSite({ fqdn: FQDN, privacy: "strict", paths: HOST_PATHS });
/** The site as installed once the certificate is there: its two parts. */
const SITE_FILE = `${SITE.http}${SITE.https}`;
const NO_FORWARD = rtmpConf({ paths: HOST_PATHS, record: true, forward: false });
const HLS_LIGHT = "/*! hls.js light, a test build */var Hls=function(){};\n";
const HLS_LICENSE = "Apache License\nVersion 2.0, January 2004\n";

/**
 * Ubuntu 22.04's /etc/nginx/nginx.conf (nginx-common 1.18.0-6ubuntu14; written down from that package as remembered, not
 * read here: its includes, user and logs are what the step relies on, and those Debian's 1.22 keeps).
 */
const UBUNTU_NGINX_CONF = `user www-data;
worker_processes auto;
pid /run/nginx.pid;
include /etc/nginx/modules-enabled/*.conf;

events {
	worker_connections 768;
}

http {
	sendfile on;
	tcp_nopush on;
	tcp_nodelay on;
	keepalive_timeout 65;
	types_hash_max_size 2048;

	include /etc/nginx/mime.types;
	default_type application/octet-stream;

	ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3; # Dropping SSLv3, ref: POODLE
	ssl_prefer_server_ciphers on;

	access_log /var/log/nginx/access.log;
	error_log /var/log/nginx/error.log;

	gzip on;

	include /etc/nginx/conf.d/*.conf;
	include /etc/nginx/sites-enabled/*;
}
`;
const UBUNTU_DEFAULT_SITE = `server {
	listen 80 default_server;
	listen [::]:80 default_server;
	root /var/www/html;
	index index.html index.htm index.nginx-debian.html;
	server_name _;
	location / {
		try_files $uri $uri/ =404;
	}
}
`;

/**
 * apt-get install (apt 2.4, Ubuntu 22.04): each package given becomes installed in dpkg's status file (what `dpkg -s`
 * answers, stubs.ts), with what the step relies on of it: nginx (Ubuntu's nginx and nginx-common) lays out /etc/nginx
 * with its stock nginx.conf and default site and starts nginx (its postinst); libnginx-mod-rtmp enables its module
 * through modules-enabled/50-mod-rtmp.conf (its postinst, docs/streaming-ingest.md §1: a link to the real
 * /usr/share/nginx/modules-available/mod-rtmp.conf here); docker.io starts docker. APT_FAIL=1 fails as a package apt
 * cannot find does ("E: Unable to locate package", exit 100).
 */
const APT_GET = `
[ -z "\${APT_FAIL:-}" ] || { echo "E: Unable to locate package \${@: -1}" >&2; exit 100; }
case $1 in update) exit 0 ;; install) ;; *) echo "apt-get stub: $1 is not modelled" >&2; exit 1 ;; esac
mkdir -p "$ROOT/var/lib/dpkg" "$SANDBOX/units"
for p in "$@"; do
  case $p in -*|install) continue ;; esac
  printf 'Package: %s\\nStatus: install ok installed\\nVersion: 1\\n\\n' "$p" >> "$ROOT/var/lib/dpkg/status"
  case $p in
    nginx)
      n="$ROOT/etc/nginx"; mkdir -p "$n/conf.d" "$n/modules-enabled" "$n/sites-available" "$n/sites-enabled" "$ROOT/var/log/nginx" "$ROOT/var/www/html"
      cp "$SANDBOX/ubuntu/nginx.conf" "$n/nginx.conf"; cp "$SANDBOX/ubuntu/default" "$n/sites-available/default"; cp /etc/nginx/mime.types "$n/mime.types"
      ln -s /etc/nginx/sites-available/default "$n/sites-enabled/default"; touch "$SANDBOX/units/nginx" ;;
    libnginx-mod-rtmp) mkdir -p "$ROOT/etc/nginx/modules-enabled"; ln -sf /usr/share/nginx/modules-available/mod-rtmp.conf "$ROOT/etc/nginx/modules-enabled/50-mod-rtmp.conf" ;;
    docker.io) touch "$SANDBOX/units/docker" ;;
  esac
done`;

/**
 * curl (7.81, Ubuntu 22.04) for what the step fetches. The npm registry's tarball of hls.js
 * (https://registry.npmjs.org/hls.js/-/hls.js-VERSION.tgz) is $SANDBOX/npm/hls.js-VERSION.tgz, else the registry's 404,
 * which -f makes exit 22. BSS's controller (THM-Health/BBB-Streaming-Server v1.1.1, src/controller/app.ts L37-67) at
 * http://127.0.0.1:3000/health: nothing listens while its container does not run (curl's exit 7, "Failed to connect");
 * else its JSON, workerCount (the worker containers that run, or $SANDBOX/bss/workers: workers that never registered),
 * waitingCount 0, runningCount ($SANDBOX/bss/running, else 0: the streams live), with 200, or 503 without workers;
 * $SANDBOX/bss/error: Redis failed it (500, {"error": ...}). -o FILE takes the body, -w '%{http_code}' prints the status
 * (000 without an answer).
 */
const CURL = `
out=""; url=""; format=""; prev=""
for a in "$@"; do [ "$prev" = -o ] && out=$a; [ "$prev" = -w ] && format=$a; case $a in http*) url=$a ;; esac; prev=$a; done
answer() { if [ -n "$out" ]; then printf '%s' "$2" > "$out"; else printf '%s' "$2"; fi; [ "$format" = '%{http_code}' ] && printf '%s' "$1"; exit 0; }
case $url in
  https://registry.npmjs.org/hls.js/-/hls.js-*.tgz)
    f="$SANDBOX/npm/\${url##*/}"
    [ -f "$f" ] || { echo "curl: (22) The requested URL returned error: 404" >&2; exit 22; }
    cp "$f" "$out" ;;
  http://127.0.0.1:3000/health)
    if [ "$(cat "$SANDBOX/docker/bbb-streaming-controller/running" 2>/dev/null)" != true ]; then
      [ "$format" = '%{http_code}' ] && printf 000
      echo "curl: (7) Failed to connect to 127.0.0.1 port 3000 after 0 ms: Connection refused" >&2; exit 7
    fi
    [ -f "$SANDBOX/bss/error" ] && answer 500 '{"error":"Error: Connection is closed."}'
    workers=0; for r in "$SANDBOX"/docker/bbb-streaming-worker-*/running; do [ "$(cat "$r" 2>/dev/null)" = true ] && workers=$((workers + 1)); done
    workers=$(cat "$SANDBOX/bss/workers" 2>/dev/null || echo "$workers")
    body="{\\"workerCount\\":$workers,\\"waitingCount\\":0,\\"runningCount\\":$(cat "$SANDBOX/bss/running" 2>/dev/null || echo 0)}"
    if [ "$workers" -ge 1 ]; then answer 200 "$body"; else answer 503 "$body"; fi ;;
  *) echo "curl: (6) Could not resolve host: \${url#*://}" >&2; exit 6 ;;
esac`;

/**
 * ss -Htn state established '( sport = :1935 )' (iproute2 5.15, Ubuntu 22.04; misc/ss.c): the TCP connections nginx
 * accepted on RTMP's port, one a line without a header (-H), the state column left out (one state asked for):
 * Recv-Q, Send-Q, local and peer address. The publishers are $SANDBOX/rtmp-publishers' lines (peer addresses); with
 * $SANDBOX/rtmp-publishers-from (a number N), only from the Nth call on: a stream that starts while the step runs.
 */
const SS = `
[ "$*" = "-Htn state established ( sport = :1935 )" ] || { echo "ss stub: $* is not modelled" >&2; exit 1; }
calls=$(( $(cat "$SANDBOX/ss-calls" 2>/dev/null || echo 0) + 1 )); echo "$calls" > "$SANDBOX/ss-calls"
[ "$calls" -ge "$(cat "$SANDBOX/rtmp-publishers-from" 2>/dev/null || echo 1)" ] || exit 0
[ -f "$SANDBOX/rtmp-publishers" ] || exit 0
while read -r peer; do printf '0      0      127.0.0.1:1935      %s\\n' "$peer"; done < "$SANDBOX/rtmp-publishers"`;

let scratch: string;
let tarball: Buffer;
let integrity: string;
beforeAll(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-streaming-test-"));
    // A stand-in of npm's hls.js tarball: its files under package/, as npm packs them.
    fs.mkdirSync(path.join(scratch, "package", "dist"), { recursive: true });
    fs.writeFileSync(path.join(scratch, "package", "dist", "hls.light.min.js"), HLS_LIGHT);
    fs.writeFileSync(path.join(scratch, "package", "dist", "hls.min.js"), "/* the full build */\n");
    fs.writeFileSync(path.join(scratch, "package", "LICENSE"), HLS_LICENSE);
    fs.writeFileSync(path.join(scratch, "package", "package.json"), '{"name":"hls.js","version":"1.7.4"}\n');
    execFileSync("tar", ["-czf", path.join(scratch, "hls.js.tgz"), "-C", scratch, "package"]);
    tarball = fs.readFileSync(path.join(scratch, "hls.js.tgz"));
    integrity = `sha512-${createHash("sha512").update(tarball).digest("base64")}`;
    // A real certificate: nginx -t loads it.
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", `/CN=${FQDN}`,
        "-keyout", path.join(scratch, "privkey.pem"), "-out", path.join(scratch, "fullchain.pem")], { stdio: "ignore" });
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** A sandbox as a new Ubuntu 22.04 host: the stubs, the real tools the step uses, the npm registry's hls.js. */
function newHost(): Sandbox {
    const host = new Sandbox();
    installStubs(host);
    host.stub("nginx", NGINX_REAL_TEST);
    host.stub("apt-get", APT_GET);
    host.stub("curl", CURL);
    host.stub("ss", SS);
    for (const tool of ["openssl", "base64", "tar", "gzip"]) fs.symlinkSync(execFileSync("which", [tool], { encoding: "utf8" }).trim(), path.join(host.bin, tool));
    host.write("ubuntu/nginx.conf", UBUNTU_NGINX_CONF);
    host.write("ubuntu/default", UBUNTU_DEFAULT_SITE);
    fs.mkdirSync(host.file("npm"));
    fs.writeFileSync(host.file("npm/hls.js-1.7.4.tgz"), tarball);
    for (const f of ["fullchain.pem", "privkey.pem"]) fs.copyFileSync(path.join(scratch, f), host.file(`cert/${f}`));
    return host;
}

// A host the step has set up with inputs(), made once: each test that starts from there gets a copy (nothing in it
// names its own directory), which saves the first run's second.
let installedHost: Sandbox;
beforeAll(() => {
    installedHost = newHost();
    const r = installedHost.run("streaming-setup", inputs());
    if (r.status !== 0) throw new Error(`the step failed on a new host: ${r.stderr}`);
});
afterAll(() => installedHost.cleanup());

let box: Sandbox;
beforeEach(() => {
    box = newHost();
});
afterEach(() => box.cleanup());

/** This test's sandbox becomes a copy of the installed host, its call log empty. */
function installed(): void {
    box.cleanup();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-step-"));
    execFileSync("cp", ["-a", `${installedHost.dir}/.`, dir]);
    box = Sandbox.at(dir);
    fs.writeFileSync(box.callLog, "");
}

function inputs(over: Record<string, string> = {}): Record<string, string> {
    return {
        FQDN,
        EMAIL: "ops@example.org",
        PRIVACY: "standard",
        FORCE: "false",
        WORKERS: "3",
        BITRATE: "4",
        KEEP_DAYS: "14",
        WORKER_IMAGE: "pilos/bbb-streaming-server:worker-1.1.1",
        CONTROLLER_IMAGE: "pilos/bbb-streaming-server:controller-1.1.1",
        REDIS_IMAGE: "redis:7.4-alpine",
        RTMP_CONF,
        SITE_HTTP_CONF: SITE.http,
        SITE_HTTPS_CONF: SITE.https,
        VIEWER_INDEX_HTML: '<!doctype html>\n<title>Live</title>\n<link rel="stylesheet" href="/style.css">\n<video id="v" muted autoplay playsinline></video>\n<script src="/hls.light.min.js"></script>\n<script src="/player.js"></script>\n',
        VIEWER_PLAYER_JS: "const v = document.getElementById('v');\n",
        VIEWER_STYLE_CSS: "video { width: 100%; }\n",
        REMUX_PROGRAM: "#!/bin/sh\nexec ffmpeg -nostdin -i \"$1\" -c copy \"${1%.flv}.mp4\"\n",
        HLSJS_VERSION: "1.7.4",
        HLSJS_INTEGRITY: integrity,
        API_USER: "streaming",
        API_PASSWORD,
        FORWARD_URL,
        HEALTH_WAIT_SECONDS: "4",
        ...over,
    };
}

const run = (over: Record<string, string> = {}, env: Record<string, string> = {}) => box.run("streaming-setup", inputs(over), env);
const read = (relative: string) => fs.readFileSync(box.file(`root/${relative}`), "utf8");
const mode = (relative: string) => (fs.statSync(box.file(`root/${relative}`)).mode & 0o777).toString(8);
const owner = (relative: string) => [...new Set(box.calls("chown").filter((c) => c.endsWith(`/${relative}`) || c.includes(`/${relative}.`)).map((c) => c.split(" ")[1]))];
const nginxJobs = () => box.calls("systemctl").filter((c) => /^systemctl (restart|reload|start) nginx$/.test(c));
const dockerChanges = () => box.calls("docker").filter((c) => /^docker (run|rm)/.test(c)).map((c) => c.replace(/ --label bbb\.spec=\S+/, ""));
const containerArgs = (name: string) => fs.readFileSync(box.file(`docker/${name}/args`), "utf8").split("\n").slice(0, -1);
const containers = () => fs.readdirSync(box.file("docker")).filter((n) => n.startsWith("bbb-streaming-")).sort();
const clearCalls = () => fs.writeFileSync(box.callLog, "");
const RTMP_FILE = "etc/nginx/modules-enabled/60-bbb-streaming.conf";
const PENDING_RESTART = "root/var/lib/bbb-deploy/pending/streaming-setup.restart-nginx";
/** Everything under ROOT with its content (links as their targets). */
const snapshot = () =>
    box.files().map((f) => {
        const full = box.file(`root/${f}`);
        return fs.lstatSync(full).isSymbolicLink() ? [f, `-> ${fs.readlinkSync(full)}`] : [f, fs.readFileSync(full, "utf8"), mode(f)];
    });

test("a new host: nginx with the RTMP ingest and the site, the viewer page, BSS's containers, the certificate; then it waits for the workers", () => {
    const r = run();
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    // ffmpeg: the remux program nginx runs when a recording closes (streaming-remux.sh) needs it; Ubuntu has no ffmpeg by default.
    expect(box.calls("apt-get")).toEqual(["apt-get install -y -q nginx libnginx-mod-rtmp docker.io certbot ffmpeg"]);
    // The RTMP configuration, with the forward URL in its slot: root's alone.
    expect(read(RTMP_FILE)).toBe(RTMP_CONF.replace("@FORWARD_URL@", FORWARD_URL));
    expect(mode(RTMP_FILE)).toBe("600");
    // Recordings: nginx's workers' alone, removed after KEEP_DAYS by systemd-tmpfiles' daily clean.
    expect(mode("var/lib/bbb-streaming/recordings")).toBe("750");
    expect(read("etc/tmpfiles.d/bbb-streaming.conf")).toContain("\ne /var/lib/bbb-streaming/recordings - - - 14d\n");
    expect(owner(RTMP_FILE)).toEqual(["root:root"]);
    // The API's password file: root's and nginx's workers' (its tests below).
    expect(owner("etc/nginx/bbb-streaming.htpasswd")).toEqual(["root:www-data"]);
    expect(read("etc/nginx/sites-available/bbb-streaming")).toBe(SITE_FILE);
    expect(fs.readlinkSync(box.file("root/etc/nginx/sites-enabled/bbb-streaming"))).toBe("/etc/nginx/sites-available/bbb-streaming");
    expect(fs.existsSync(box.file("root/etc/nginx/sites-enabled/default"))).toBe(false);
    // The RTMP listener is new: a restart; the site that waited for the certificate: a reload.
    expect(nginxJobs()).toEqual(["systemctl restart nginx", "systemctl reload nginx"]);
    expect(box.calls("certbot")).toEqual([
        `certbot certonly --webroot -w ${box.root}/var/www/bbb-acme --non-interactive --agree-tos --keep-until-expiring -m ops@example.org -d ${FQDN} --cert-name ${FQDN}`,
    ]);
    expect(read("etc/letsencrypt/renewal-hooks/deploy/bbb-streaming-nginx")).toContain("systemctl reload nginx");
    // The viewer page and hls.js (the light build and its licence) from the tarball.
    expect(read("var/www/bbb-streaming/index.html")).toBe(inputs().VIEWER_INDEX_HTML);
    expect(read("var/www/bbb-streaming/player.js")).toBe(inputs().VIEWER_PLAYER_JS);
    expect(read("var/www/bbb-streaming/style.css")).toBe(inputs().VIEWER_STYLE_CSS);
    expect(read("var/www/bbb-streaming/hls.light.min.js")).toBe(HLS_LIGHT);
    expect(read("var/www/bbb-streaming/hls.js-LICENSE.txt")).toBe(HLS_LICENSE);
    expect(box.files().filter((f) => f.startsWith("var/www/bbb-streaming/")).sort()).toEqual(
        ["hls.js-LICENSE.txt", "hls.light.min.js", "index.html", "player.js", "style.css"].map((f) => `var/www/bbb-streaming/${f}`),
    );
    expect(read("usr/local/sbin/bbb-streaming-remux")).toBe(inputs().REMUX_PROGRAM);
    expect(mode("usr/local/sbin/bbb-streaming-remux")).toBe("755");
    // nginx's worker user writes the HLS segments and the recordings (nginx makes no record_path).
    expect(box.calls("chown")).toContain(`chown www-data:www-data ${box.root}/var/lib/bbb-streaming/hls ${box.root}/var/lib/bbb-streaming/recordings`);
    // BSS: Redis and the API on loopback only, three workers on the host's network.
    expect(containers()).toEqual(["bbb-streaming-controller", "bbb-streaming-redis", "bbb-streaming-worker-1", "bbb-streaming-worker-2", "bbb-streaming-worker-3"]);
    expect(containerArgs("bbb-streaming-redis").slice(13)).toEqual(["--network", "bbb-streaming", "-p", "127.0.0.1:6379:6379", "redis:7.4-alpine", "redis-server", "--save", "", "--appendonly", "no"]);
    expect(containerArgs("bbb-streaming-controller").slice(13)).toEqual([
        "--network", "bbb-streaming", "-p", "127.0.0.1:3000:3000", "-e", "REDIS_HOST=bbb-streaming-redis", "-e", "REDIS_PORT=6379", "pilos/bbb-streaming-server:controller-1.1.1",
    ]);
    expect(containerArgs("bbb-streaming-worker-2").slice(13)).toEqual([
        "--network", "host", "--shm-size", "1g", "-e", "HOSTNAME=bbb-streaming-worker-2", "-e", "REDIS_HOST=127.0.0.1", "-e", "REDIS_PORT=6379",
        "-e", "CONCURRENCY=1", "-e", "FFMPEG_BITRATE=4", "-e", "JSON_LOGS=true", "pilos/bbb-streaming-server:worker-1.1.1",
    ]);
    expect(fs.existsSync(box.file("docker/networks/bbb-streaming"))).toBe(true);
    expect(r.stdout).toContain(`streaming-setup: streaming is served at https://${FQDN}/: 3 worker(s) at 4 Mbit/s, forwarding on\n`);
    expect(fs.existsSync(box.file(PENDING_RESTART))).toBe(false);
});

test("the API's password file verifies with API_PASSWORD (SHA-512 crypt), readable by root and nginx's workers only; a new password replaces it", () => {
    installed();
    const line = read("etc/nginx/bbb-streaming.htpasswd");
    const [, user, hash, salt] = /^([^:]+):(\$6\$([^$]+)\$[^\n]+)\n$/.exec(line)!;
    expect(user).toBe("streaming");
    const again = (password: string) => execFileSync("openssl", ["passwd", "-6", "-salt", salt, "-stdin"], { input: `${password}\n`, encoding: "utf8" }).trim();
    expect(again(API_PASSWORD)).toBe(hash);
    expect(mode("etc/nginx/bbb-streaming.htpasswd")).toBe("640");
    const NEW = "An0ther-Api-Pa55word-31";
    const r = run({ API_PASSWORD: NEW });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("wrote the API's password file");
    const [, , newHash, newSalt] = /^([^:]+):(\$6\$([^$]+)\$[^\n]+)\n$/.exec(read("etc/nginx/bbb-streaming.htpasswd"))!;
    expect(execFileSync("openssl", ["passwd", "-6", "-salt", newSalt, "-stdin"], { input: `${NEW}\n`, encoding: "utf8" }).trim()).toBe(newHash);
    // nginx reads the file on every request: nothing to restart or reload.
    expect(nginxJobs()).toEqual([]);
});

test("a second run with the same inputs changes nothing: no file, no download, no restart or reload, no container replaced", () => {
    installed();
    const before = snapshot();
    const r = run();
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(snapshot()).toEqual(before);
    expect(nginxJobs()).toEqual([]);
    expect(dockerChanges()).toEqual([]);
    expect(box.calls("curl").filter((c) => c.includes("registry.npmjs.org"))).toEqual([]);
    expect(box.calls("apt-get")).toEqual([]);
    expect(r.stdout).not.toContain("wrote");
});

test("a changed site is reloaded, never restarted, even while a stream is live", () => {
    installed();
    box.write("bss/running", "1\n");
    box.write("rtmp-publishers", "127.0.0.1:50412\n");
    const r = run({ SITE_HTTPS_CONF: SITE.https.replace("ssl_protocols TLSv1.2 TLSv1.3;", "ssl_protocols TLSv1.3;") });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(nginxJobs()).toEqual(["systemctl reload nginx"]);
    expect(read("etc/nginx/sites-available/bbb-streaming")).toContain("ssl_protocols TLSv1.3;");
    expect(dockerChanges()).toEqual([]);
});

test("a changed viewer page or remux program is written in place: nginx reads each when it is asked for it, nothing is reloaded", () => {
    installed();
    const r = run({ VIEWER_PLAYER_JS: "const v = document.querySelector('video');\n", REMUX_PROGRAM: "#!/bin/sh\nexit 0\n" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(read("var/www/bbb-streaming/player.js")).toBe("const v = document.querySelector('video');\n");
    expect(read("usr/local/sbin/bbb-streaming-remux")).toBe("#!/bin/sh\nexit 0\n");
    expect(nginxJobs()).toEqual([]);
    expect(dockerChanges()).toEqual([]);
});

describe("a changed RTMP configuration needs nginx restarted, which cuts a live stream", () => {
    const changed = RTMP_CONF.replace("hls_fragment 2s;", "hls_fragment 3s;");

    test.each([
        ["BSS runs a stream job", { "bss/running": "1\n" }, "streams are live: 1 stream job(s) running in BSS, 0 RTMP publisher(s) connected to port 1935"],
        ["a publisher is connected to port 1935", { "rtmp-publishers": "127.0.0.1:50412\n127.0.0.1:50414\n" }, "streams are live: 0 stream job(s) running in BSS, 2 RTMP publisher(s) connected to port 1935"],
        ["BSS's controller gives no count", { "bss/error": "" }, "cannot tell whether streams are live (BSS's controller, http://127.0.0.1:3000/health, gives no running count)"],
    ])("refused while %s: nothing is restarted or written", (_what, files, reason) => {
        installed();
        for (const [file, text] of Object.entries(files)) box.write(file, text);
        const before = snapshot();
        const r = run({ RTMP_CONF: changed });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(
            `streaming-setup: error: ${reason}; restarting nginx (RTMP_CONF changed) would cut them. Nothing that carries a stream was changed. Run pulumi up again once the streams have ended, or set forceReinstall: true (pulumi config set forceReinstall true) to go ahead now.`,
        );
        expect(nginxJobs()).toEqual([]);
        expect(dockerChanges()).toEqual([]);
        expect(snapshot()).toEqual(before);
    });

    test("with FORCE it restarts nginx all the same, saying so", () => {
        installed();
        box.write("bss/running", "2\n");
        const r = run({ RTMP_CONF: changed, FORCE: "true" });
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("FORCE (forceReinstall) is set: restarting nginx (RTMP_CONF changed) although streams are live: 2 stream job(s) running in BSS");
        expect(nginxJobs()).toEqual(["systemctl restart nginx"]);
        expect(read(RTMP_FILE)).toContain("hls_fragment 3s;");
        // Only nginx: BSS's containers run on.
        expect(dockerChanges()).toEqual([]);
    });

    test("a run that stops before the restart leaves it owed: the next run restarts nginx, unless a stream went live meanwhile", () => {
        installed();
        const r = run({ RTMP_CONF: changed }, { SYSTEMCTL_FAIL: "enable nginx" });
        expect(r.status).toBe(1);
        expect(read(RTMP_FILE)).toContain("hls_fragment 3s;");
        expect(nginxJobs()).toEqual([]);
        expect(fs.existsSync(box.file(PENDING_RESTART))).toBe(true);
        // The same inputs again: the file is as written, the restart still owed, and a stream now live.
        box.write("rtmp-publishers", "127.0.0.1:50412\n");
        const refused = run({ RTMP_CONF: changed });
        expect(refused.status).toBe(1);
        expect(refused.stderr).toContain("restarting nginx (RTMP_CONF changed) would cut them");
        expect(nginxJobs()).toEqual([]);
        fs.rmSync(box.file("rtmp-publishers"));
        const done = run({ RTMP_CONF: changed });
        expect(done.stderr).toBe("");
        expect(done.status).toBe(0);
        expect(nginxJobs()).toEqual(["systemctl restart nginx"]);
        expect(fs.existsSync(box.file(PENDING_RESTART))).toBe(false);
    });

    test("a stream that starts while the step runs (after its first look, before the restart) is not cut either", () => {
        installed();
        box.write("rtmp-publishers", "127.0.0.1:50412\n");
        box.write("ss-calls", "0\n");
        box.write("rtmp-publishers-from", "2\n");
        const r = run({ RTMP_CONF: changed });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("restarting nginx (RTMP_CONF changed) would cut them. The step stopped there; the next run goes on.");
        expect(nginxJobs()).toEqual([]);
        expect(fs.existsSync(box.file(PENDING_RESTART))).toBe(true);
    });

    test("a stream that starts before the containers are replaced is not cut either", () => {
        installed();
        box.write("rtmp-publishers", "127.0.0.1:50412\n");
        box.write("ss-calls", "0\n");
        box.write("rtmp-publishers-from", "2\n");
        const r = run({ BITRATE: "6" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("replacing bbb-streaming-worker-1, replacing bbb-streaming-worker-2, replacing bbb-streaming-worker-3 would cut them. The step stopped there; the next run goes on.");
        expect(dockerChanges()).toEqual([]);
    });

    test("a restart that fails leaves nginx owed its new configuration: the next run brings it up", () => {
        installed();
        const r = run({ RTMP_CONF: changed }, { SYSTEMCTL_FAIL: "restart nginx" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("nginx did not restart (see: journalctl -u nginx); the next run restarts it again");
        expect(fs.existsSync(box.file(PENDING_RESTART))).toBe(true);
        clearCalls();
        expect(run({ RTMP_CONF: changed }).status).toBe(0);
        expect(nginxJobs()).toEqual(["systemctl start nginx"]);
        expect(fs.existsSync(box.file("units/nginx"))).toBe(true);
        expect(fs.existsSync(box.file(PENDING_RESTART))).toBe(false);
    });
});

test("an RTMP configuration nginx refuses is not installed: nginx's own words, the running configuration untouched", () => {
    installed();
    const before = snapshot();
    const r = run({ RTMP_CONF: RTMP_CONF.replace("hls_fragment 2s;", "hls_fragmnt 2s;") });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/unknown directive "hls_fragmnt" in \/etc\/nginx\/modules-enabled\/60-bbb-streaming\.conf:\d+/);
    expect(r.stderr).toContain("streaming-setup: error: nginx refuses the new configuration (RTMP_CONF and the site, above); nothing was installed, restarted or reloaded");
    expect(snapshot()).toEqual(before);
    expect(nginxJobs()).toEqual([]);
});

test("a site nginx refuses is not installed either, and nginx's message shows no secret", () => {
    installed();
    const before = snapshot();
    const r = run({ SITE_HTTPS_CONF: SITE.https.replace("root /var/www/bbb-streaming;", "root /var/www/bbb-streaming") });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("nginx refuses the new configuration");
    expect(snapshot()).toEqual(before);
    // A forward URL nginx refuses (its host does not resolve) is quoted by nginx without its scheme: masked.
    const bad = run({ FORWARD_URL: `rtmp://live.example.invalid/app/${STREAM_KEY}` });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/host not found in url "\[secret\]" in \/etc\/nginx\/modules-enabled\/60-bbb-streaming\.conf:\d+/);
    expect(`${bad.stdout}${bad.stderr}`).not.toContain(STREAM_KEY);
});

describe("workers", () => {
    test("scaling from 3 to 1 removes workers 2 and 3 and keeps worker 1", () => {
        installed();
        const r = run({ WORKERS: "1" });
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(dockerChanges()).toEqual(["docker rm -f bbb-streaming-worker-2", "docker rm -f bbb-streaming-worker-3"]);
        expect(containers()).toEqual(["bbb-streaming-controller", "bbb-streaming-redis", "bbb-streaming-worker-1"]);
        expect(r.stdout).toContain("removed bbb-streaming-worker-3 (WORKERS is 1)");
        expect(nginxJobs()).toEqual([]);
    });

    test("scaling down while a stream is live is refused; scaling up is not (nothing is cut)", () => {
        installed();
        box.write("bss/running", "1\n");
        const down = run({ WORKERS: "1" });
        expect(down.status).toBe(1);
        expect(down.stderr).toContain("removing bbb-streaming-worker-2, removing bbb-streaming-worker-3 would cut them. Nothing that carries a stream was changed.");
        expect(dockerChanges()).toEqual([]);
        const up = run({ WORKERS: "5" });
        expect(up.status).toBe(0);
        expect(dockerChanges().filter((c) => c.startsWith("docker run")).map((c) => c.split(" ").slice(0, 5).join(" "))).toEqual(
            ["docker run -d --name bbb-streaming-worker-4", "docker run -d --name bbb-streaming-worker-5"],
        );
    });

    test("a new bitrate replaces every worker when nothing is live; while a stream is, it is refused naming each", () => {
        installed();
        box.write("rtmp-publishers", "127.0.0.1:50412\n");
        const refused = run({ BITRATE: "6" });
        expect(refused.status).toBe(1);
        expect(refused.stderr).toContain("replacing bbb-streaming-worker-1, replacing bbb-streaming-worker-2, replacing bbb-streaming-worker-3 would cut them");
        fs.rmSync(box.file("rtmp-publishers"));
        clearCalls();
        expect(run({ BITRATE: "6" }).status).toBe(0);
        expect(dockerChanges().filter((c) => c.startsWith("docker rm"))).toEqual([1, 2, 3].map((n) => `docker rm -f bbb-streaming-worker-${n}`));
        expect(containerArgs("bbb-streaming-worker-3")).toContain("FFMPEG_BITRATE=6");
    });

    test("workers that never register fail the step after the wait, naming where to look", () => {
        box.write("bss/workers", "0\n");
        const r = run({ HEALTH_WAIT_SECONDS: "0" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(
            "streaming-setup: error: BSS is not ready after 0s: http://127.0.0.1:3000/health answered HTTP 503 with 0 of 3 worker(s) registered (see: docker logs bbb-streaming-worker-1; docker logs bbb-streaming-controller)",
        );
    });

    test("some of the workers registered is not enough: the step waits for every one", () => {
        box.write("bss/workers", "2\n");
        const r = run({ HEALTH_WAIT_SECONDS: "0" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("answered HTTP 200 with 2 of 3 worker(s) registered");
    });
});

describe("hls.js", () => {
    test("a tarball whose integrity is not the pinned one is refused; the installed copy stays", () => {
        installed();
        const tampered = Buffer.concat([tarball, Buffer.from("x")]);
        fs.writeFileSync(box.file("npm/hls.js-1.7.5.tgz"), tampered);
        const r = run({ HLSJS_VERSION: "1.7.5" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(
            `streaming-setup: error: https://registry.npmjs.org/hls.js/-/hls.js-1.7.5.tgz has the integrity sha512-${createHash("sha512").update(tampered).digest("base64")}, not the pinned ${integrity}: refusing it (the installed hls.js is left as it was)`,
        );
        expect(read("var/www/bbb-streaming/hls.light.min.js")).toBe(HLS_LIGHT);
        expect(nginxJobs()).toEqual([]);
        expect(dockerChanges()).toEqual([]);
    });

    test("on a new host a tarball that does not match installs nothing", () => {
        fs.appendFileSync(box.file("npm/hls.js-1.7.4.tgz"), "x");
        const r = run();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("not the pinned");
        expect(fs.existsSync(box.file("root/var/www/bbb-streaming"))).toBe(false);
        expect(fs.existsSync(box.file(`root/${RTMP_FILE}`))).toBe(false);
    });
});

describe("the forward URL", () => {
    test("is in no output and on no command line (every program the step starts, traced)", () => {
        const works = straceWorks();
        if (works !== true) throw new Error(works);
        const trace = new Trace();
        try {
            const r = run({}, trace.env);
            expect(r.status).toBe(0);
            expect(`${r.stdout}${r.stderr}`).not.toContain(STREAM_KEY);
            expect(`${r.stdout}${r.stderr}`).not.toContain(API_PASSWORD);
            const execs = trace.execs();
            expect(execs.some((e) => e.argv.includes("passwd"))).toBe(true);
            expect(secretsOnCommandLines(execs, [FORWARD_URL, STREAM_KEY, API_PASSWORD])).toEqual([]);
        } finally {
            trace.remove();
        }
        // It is only in the RTMP configuration.
        expect(box.files().filter((f) => !fs.lstatSync(box.file(`root/${f}`)).isSymbolicLink() && read(f).includes(STREAM_KEY))).toEqual([RTMP_FILE]);
    });

    test.each([
        ["a slot without a URL", { FORWARD_URL: "" }, "RTMP_CONF forwards the stream (it holds @FORWARD_URL@) but FORWARD_URL is empty"],
        ["a URL without a slot", { RTMP_CONF: NO_FORWARD }, "FORWARD_URL is set but RTMP_CONF has no @FORWARD_URL@ slot for it"],
        ["a URL with a ';'", { FORWARD_URL: `${FORWARD_URL}; deny publish all` }, "FORWARD_URL must be rtmp://host[:port]/application/key in one line of at most 1024 characters, without white space, quotes, ';', '{', '}', '\\', '$' or '#'"],
        ["a URL with a line break", { FORWARD_URL: `${FORWARD_URL}\n}` }, "FORWARD_URL must be rtmp://host[:port]/application/key in one line"],
        ["an rtmps:// URL", { FORWARD_URL: `rtmps://live.example.net/app/${STREAM_KEY}` }, "FORWARD_URL must start with rtmp://"],
    ])("refuses %s, showing no key", (_what, over, message) => {
        const r = run(over);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`streaming-setup: error: ${message}`);
        expect(`${r.stdout}${r.stderr}`).not.toContain(STREAM_KEY);
        expect(box.calls("apt-get")).toEqual([]);
    });

    test.each(REFUSED_FORWARD_URLS)("refuses a URL with %s, as the configuration check does, showing no key", (_why, url) => {
        const r = run({ FORWARD_URL: url });
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(/FORWARD_URL must (start with rtmp:\/\/|be rtmp:\/\/host)/);
        expect(`${r.stdout}${r.stderr}`).not.toContain("5e1");
    });

    test("without forwarding there is neither slot nor URL", () => {
        const r = run({ FORWARD_URL: "", RTMP_CONF: NO_FORWARD });
        expect(r.status).toBe(0);
        expect(read(RTMP_FILE)).not.toMatch(/^\s*push /m);
        expect(r.stdout).toContain("forwarding off");
    });
});

test("until the certificate is there nginx serves ACME's challenges only, logging nothing under strict privacy", () => {
    const r = run({ PRIVACY: "strict" }, { CERTBOT_FAIL: "1" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`certbot could not obtain a certificate for ${FQDN}`);
    const site = read("etc/nginx/sites-available/bbb-streaming");
    // The program's own port-80 server, alone: ACME's challenges and the redirect, its strict logging.
    expect(site).toBe(`${SITE.http.replace(/\n$/, "")}\n`);
    expect(site).toContain("root /var/www/bbb-acme;");
    expect(site).toContain("access_log off;\n    log_not_found off;\n    error_log /var/log/nginx/error.log emerg;");
    expect(site).not.toContain("443");
    // The RTMP ingest is up all the same; BSS waits for the next run.
    expect(nginxJobs()).toEqual(["systemctl restart nginx"]);
    expect(containers()).toEqual([]);
});

test.each([
    [{ WORKERS: "0" }, "WORKERS must be 1 to 32 (streams at a time), not '0'"],
    [{ KEEP_DAYS: "0" }, "KEEP_DAYS must be a number of days from 1, not '0'"],
    [{ WORKERS: "33" }, "WORKERS must be 1 to 32 (streams at a time), not '33'"],
    [{ BITRATE: "21" }, "BITRATE must be 1 to 20 (Mbit/s), not '21'"],
    [{ PRIVACY: "lax" }, "PRIVACY must be strict or standard, not 'lax'"],
    [{ FORCE: "yes" }, "FORCE must be true or false, not 'yes'"],
    [{ WORKER_IMAGE: "pilos/bbb streaming" }, "WORKER_IMAGE 'pilos/bbb streaming' is not an image reference"],
    [{ HLSJS_INTEGRITY: "sha256-abc" }, "HLSJS_INTEGRITY 'sha256-abc' is not npm's integrity of a tarball (sha512-<base64>)"],
    [{ API_USER: "stream:ing" }, "API_USER 'stream:ing' must be 1 to 64 letters, digits, '.', '_' or '-'"],
    [{ API_PASSWORD: "short" }, "API_PASSWORD is too short (12 characters at least"],
    [{ API_PASSWORD: "a-long-password\nwith-a-break" }, "API_PASSWORD must not contain control characters"],
    [{ SITE_HTTP_CONF: SITE.http.replace("root /var/www/bbb-acme;", "return 404;") }, "SITE_HTTP_CONF does not serve ACME's challenges from /var/www/bbb-acme"],
    [{ REMUX_PROGRAM: "ffmpeg -i x" }, "REMUX_PROGRAM does not start with #!"],
    [{ VIEWER_PLAYER_JS: "" }, "input VIEWER_PLAYER_JS is missing"],
])("refuses %p before it changes anything", (over, message) => {
    const r = run(over);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`streaming-setup: error: ${message}`);
    expect(r.stderr).not.toContain("a-long-password");
    expect(box.calls()).toEqual([]);
});
