// The streaming host's ingest, for real (issue 16, docs/streaming-ingest.md): the files components/streaming-config.ts
// generates, with this test's paths and ports, in a real nginx with Debian's RTMP module, set up as the streaming
// step has to set up the host. ffmpeg publishes a test pattern (standing in for a BBB-Streaming-Server worker) to
// publishUrl(); headless Chromium plays the viewer page (hls.js), driven over the DevTools protocol by
// test/streaming-probe.mjs; ffprobe checks the remuxed recording; a second nginx-rtmp stands in for the operator's
// external RTMP target; a small HTTP server stands in for the workers' controller behind the API's Basic auth.
//
// The nginx.conf here mirrors Debian's and Ubuntu's stock one (user www-data; the modules-enabled/*.conf include at
// the top level, where libnginx-mod-rtmp's 50-mod-rtmp.conf loads the module before our 60-bbb-streaming.conf; the
// site included inside http{}), with this test's pid, logs and temporary paths. Needs root and Debian's nginx,
// libnginx-mod-rtmp, ffmpeg, chromium and openssl. Every process it starts listens on 127.0.0.1 only, on ports
// found free, and is stopped by its own pid in afterAll.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";
import {
    CONTENT_SECURITY_POLICY,
    FORWARD_SLOT,
    IngestPaths,
    Privacy,
    publishUrl,
    rtmpConf,
    RTMP_CONF_PATH,
    VIEWER_VENDOR_FILES,
    viewerFiles,
    viewerSite,
    watchPath,
} from "../components/streaming-config";
import { tcpOpen } from "./tcp";

const LOOPBACK = "127.0.0.1";
const FQDN = "stream.example.org";
const ROOT = path.join(__dirname, "..");
const WORKER_USER = "www-data";
const STREAM = crypto.randomBytes(16).toString("hex");
/** The publisher from a non-loopback address: refused by the rules. */
const REFUSED = crypto.randomBytes(16).toString("hex");
/** The external target's stream key: a secret nginx must not write to its logs. */
const FORWARD_KEY = `key-${crypto.randomBytes(12).toString("hex")}`;
const API_USER = "lead";
const API_PASSWORD = crypto.randomBytes(18).toString("base64url");

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls PROBE every 100 ms until it gives a value; WHAT says what was awaited. */
async function until<T>(what: string, ms: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
        const value = await probe();
        if (value !== undefined) return value;
        if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await sleep(100);
    }
}

/** Ports below the kernel's ephemeral range (no client's source port takes one meanwhile), free on 127.0.0.1. */
const EPHEMERAL_MIN = Number(fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || 32768;
const taken = new Set<number>();
async function freePort(): Promise<number> {
    for (let attempt = 0; attempt < 200; attempt++) {
        const port = 20000 + crypto.randomInt(EPHEMERAL_MIN - 20000);
        if (taken.has(port)) continue;
        const free = await new Promise<boolean>((resolve) => {
            const server = net.createServer();
            server.once("error", () => resolve(false));
            server.listen(port, LOOPBACK, () => server.close(() => resolve(true)));
        });
        if (free) {
            taken.add(port);
            return port;
        }
    }
    throw new Error("no free port on 127.0.0.1");
}

const groupLeaders = new WeakSet<ChildProcess>();

/**
 * Stops a child this file started, by its pid: SIGNAL (nginx: TERM is its fast shutdown), then KILL after 3 s. A
 * child started `detached` leads its own process group, which gets the signals (Chromium's helper processes).
 */
async function stop(child: ChildProcess | undefined, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const pid = groupLeaders.has(child) ? -child.pid : child.pid;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const send = (name: NodeJS.Signals) => {
        try {
            if (child.exitCode === null && child.signalCode === null) process.kill(pid, name);
        } catch {
            // already gone
        }
    };
    send(signal);
    const timer = setTimeout(() => send("SIGKILL"), 3000);
    await exited;
    clearTimeout(timer);
}

/** A child's exit status, once it has exited. */
function exitCode(child: ChildProcess): Promise<number | null> {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
    return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

/** Runs a program to its end; its stdout, or an error naming its stderr. */
function run(file: string, args: string[], input?: string): string {
    const r = spawnSync(file, args, { input, encoding: "utf8", timeout: 15000 });
    if (r.status !== 0) throw new Error(`${file} ${args.join(" ")}: exit ${r.status}\n${r.stderr}`);
    return r.stdout;
}

/** A PNG's pixels (8-bit RGB or RGBA, not interlaced: what Chromium's screenshots are), decoded with zlib alone. */
function decodePng(png: Buffer): { width: number; height: number; channels: number; pixels: Buffer } {
    const width = png.readUInt32BE(16);
    const height = png.readUInt32BE(20);
    const [depth, colour, , , interlace] = png.subarray(24, 29);
    const channels = { 2: 3, 6: 4 }[colour as 2 | 6];
    if (depth !== 8 || !channels || interlace !== 0) throw new Error(`PNG depth ${depth} colour type ${colour} interlace ${interlace}: not decoded here`);
    const idat: Buffer[] = [];
    for (let at = 8; at < png.length; ) {
        const length = png.readUInt32BE(at);
        if (png.toString("latin1", at + 4, at + 8) === "IDAT") idat.push(png.subarray(at + 8, at + 8 + length));
        at += 12 + length;
    }
    const raw = zlib.inflateSync(Buffer.concat(idat));
    const stride = width * channels;
    const pixels = Buffer.alloc(stride * height);
    for (let y = 0; y < height; y++) {
        const filter = raw[y * (stride + 1)];
        const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
        for (let x = 0; x < stride; x++) {
            const a = x >= channels ? pixels[y * stride + x - channels] : 0;
            const b = y > 0 ? pixels[(y - 1) * stride + x] : 0;
            const c = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels] : 0;
            const p = a + b - c;
            const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
            const predictor = [0, a, b, (a + b) >> 1, paeth][filter];
            pixels[y * stride + x] = (line[x] + predictor) & 0xff;
        }
    }
    return { width, height, channels, pixels };
}

/** How many distinct colours a decoded image has, and what share of its pixels differ from another's. */
function colours(image: ReturnType<typeof decodePng>): number {
    const seen = new Set<number>();
    for (let i = 0; i < image.pixels.length; i += image.channels) seen.add(image.pixels.readUIntBE(i, 3));
    return seen.size;
}
function changed(a: ReturnType<typeof decodePng>, b: ReturnType<typeof decodePng>): number {
    let differ = 0;
    for (let i = 0; i < a.pixels.length; i += a.channels) if (a.pixels.readUIntBE(i, 3) !== b.pixels.readUIntBE(i, 3)) differ++;
    return differ / (a.width * a.height);
}

interface Reply {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: string;
}
function request(url: string, options: https.RequestOptions = {}, body?: string): Promise<Reply> {
    const client = url.startsWith("https:") ? https : http;
    return new Promise((resolve, reject) => {
        const req = client.request(url, { rejectUnauthorized: false, timeout: 3000, ...options }, (res) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (chunk: string) => (text += chunk));
            res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
        });
        req.on("timeout", () => req.destroy(new Error(`${url}: timeout`)));
        req.on("error", reject);
        req.end(body);
    });
}
const basic = (user: string, password: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` });

function ffprobe(file: string): { codecs: string[]; duration: number; width?: number } {
    const out = JSON.parse(run("ffprobe", ["-v", "error", "-show_entries", "stream=codec_name,width:format=duration", "-of", "json", file]));
    return {
        codecs: out.streams.map((s: { codec_name: string }) => s.codec_name),
        duration: Number(out.format.duration),
        width: out.streams.find((s: { width?: number }) => s.width)?.width,
    };
}

/** ffmpeg publishing a test pattern (640x360 at 25 fps with a keyframe every 2 s, and a tone) to an RTMP URL. */
function publish(url: string, seconds?: number): ChildProcess {
    const args = ["-nostdin", "-hide_banner", "-loglevel", "error", "-re"];
    args.push("-f", "lavfi", "-i", "testsrc=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440");
    if (seconds) args.push("-t", String(seconds));
    args.push("-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-c:a", "aac", "-f", "flv", url);
    return spawn("ffmpeg", args, { stdio: "ignore" });
}

// The whole test's state: temporary root, ports, processes.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-streaming-ingest-"));
const children: ChildProcess[] = [];
const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();
/** Keeps SERVER's connections, so that afterAll can end them: close() waits for every one. */
function track<S extends net.Server>(server: S): S {
    servers.push(server);
    server.on("connection", (socket: net.Socket) => {
        sockets.add(socket);
        socket.on("close", () => sockets.delete(socket));
    });
    return server;
}
const ports = { rtmp: 0, target: 0, http: 0, https: 0, controller: 0, cdp: 0, relay: 0, standardHttp: 0, standardHttps: 0 };
const controllerSaw: { method: string; url: string; authorization?: string; body: string }[] = [];
let paths: IngestPaths;
let ffmpeg: ChildProcess;
let refused: ChildProcess;
let chromium: ChildProcess;

/** A test nginx.conf with Debian's stock structure (see the top of this file); RTMP from modules-enabled when given. */
function nginxConf(name: string, site: string, modulesEnabled?: string): string {
    const at = path.join(dir, name);
    fs.mkdirSync(path.join(at, "logs"), { recursive: true });
    const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `    ${t}_temp_path ${at}/${t};`);
    const conf = [
        `user ${WORKER_USER};`,
        "worker_processes auto;",
        `pid ${at}/nginx.pid;`,
        `error_log ${at}/logs/error.log;`,
        ...(modulesEnabled ? [`include ${modulesEnabled}/*.conf;`] : []),
        "events {",
        "    worker_connections 768;",
        "}",
        "http {",
        "    sendfile on;",
        "    tcp_nopush on;",
        "    types_hash_max_size 2048;",
        "    include /etc/nginx/mime.types;",
        "    default_type application/octet-stream;",
        `    access_log ${at}/logs/access.log;`,
        ...temp,
        `    include ${site};`,
        "}",
        "",
    ].join("\n");
    fs.writeFileSync(path.join(at, "nginx.conf"), conf);
    return path.join(at, "nginx.conf");
}

/** nginx in the foreground (its pid is this child's), ready once all of LISTENING accept connections. */
async function startNginx(conf: string, listening: number[]): Promise<ChildProcess> {
    const child = spawn("nginx", ["-c", conf, "-g", "daemon off;"], { stdio: ["ignore", "ignore", "pipe"] });
    children.push(child);
    let stderr = "";
    child.stderr!.on("data", (chunk) => (stderr += chunk));
    await until(`nginx -c ${conf} to listen on ${listening.join(", ")}`, 5000, async () => {
        if (child.exitCode !== null) throw new Error(`nginx -c ${conf} exited ${child.exitCode}: ${stderr}`);
        return (await Promise.all(listening.map((p) => tcpOpen(p)))).every(Boolean) || undefined;
    });
    return child;
}

/** The viewer's site for PRIVACY on the given ports, written as the step writes it once the certificate exists. */
function writeSite(file: string, privacy: Privacy, httpPort: number, httpsPort: number, sitePaths: IngestPaths): void {
    const site = viewerSite({ fqdn: FQDN, privacy, paths: sitePaths, listen: { http: [`${LOOPBACK}:${httpPort}`], https: [`${LOOPBACK}:${httpsPort}`] }, controllerPort: ports.controller });
    fs.writeFileSync(file, site.http + site.https);
}

const nonLoopbackIpv4 = Object.values(os.networkInterfaces())
    .flat()
    .find((a) => a && a.family === "IPv4" && !a.internal)?.address;

beforeAll(async () => {
    for (const key of Object.keys(ports) as (keyof typeof ports)[]) ports[key] = await freePort();
    // nginx's workers (www-data) must reach every file below this root.
    fs.chmodSync(dir, 0o755);
    paths = {
        hls: path.join(dir, "var/lib/bbb-streaming/hls"),
        recordings: path.join(dir, "var/lib/bbb-streaming/recordings"),
        www: path.join(dir, "var/www/bbb-streaming"),
        htpasswd: path.join(dir, "etc/nginx/bbb-streaming.htpasswd"),
        acmeWebroot: path.join(dir, "var/www/bbb-acme"),
        certificates: path.join(dir, "etc/letsencrypt/live"),
        remux: path.join(dir, "usr/local/sbin/bbb-streaming-remux"),
        errorLog: path.join(dir, "main/logs/error.log"),
    };

    // What the streaming step has to do on the host: nginx creates the HLS directory itself (its parent must exist),
    // but not the recordings' one, which its workers write (and the remux program, run by them, too).
    for (const d of [path.dirname(paths.hls), paths.recordings, paths.www, path.dirname(paths.htpasswd), paths.acmeWebroot, path.dirname(paths.remux)]) {
        fs.mkdirSync(d, { recursive: true });
    }
    run("chown", [WORKER_USER, paths.recordings]);
    fs.copyFileSync(path.join(ROOT, "scripts/remote/streaming-remux.sh"), paths.remux);
    fs.chmodSync(paths.remux, 0o755);
    for (const [name, text] of Object.entries(viewerFiles())) fs.writeFileSync(path.join(paths.www, name), text);
    for (const [name, from] of Object.entries(VIEWER_VENDOR_FILES)) fs.copyFileSync(path.join(ROOT, "node_modules/hls.js", from), path.join(paths.www, name));
    // The API's user, hashed as the step hashes it: the password on stdin, never in argv. nginx's workers read the file.
    const hash = run("openssl", ["passwd", "-6", "-stdin"], `${API_PASSWORD}\n`).trim();
    fs.writeFileSync(paths.htpasswd, `${API_USER}:${hash}\n`, { mode: 0o640 });
    run("chown", [`root:${WORKER_USER}`, paths.htpasswd]);
    const live = path.join(paths.certificates, FQDN);
    fs.mkdirSync(live, { recursive: true });
    run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", `/CN=${FQDN}`, "-keyout", `${live}/privkey.pem`, "-out", `${live}/fullchain.pem`]);

    // modules-enabled as Debian's packages leave it, plus our file under the name RTMP_CONF_PATH gives it; the
    // forwarding slot filled as the step fills it, in a root-only copy.
    const modulesEnabled = path.join(dir, "etc/nginx/modules-enabled");
    fs.mkdirSync(modulesEnabled, { recursive: true });
    fs.writeFileSync(path.join(modulesEnabled, "50-mod-rtmp.conf"), "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n");
    const forwardUrl = `rtmp://${LOOPBACK}:${ports.target}/ext/${FORWARD_KEY}`;
    const rtmp = rtmpConf({ paths, port: ports.rtmp, record: true, forward: true });
    fs.writeFileSync(path.join(modulesEnabled, path.basename(RTMP_CONF_PATH)), rtmp.replace(FORWARD_SLOT, forwardUrl), { mode: 0o600 });

    const site = path.join(dir, "etc/nginx/sites-available/bbb-streaming");
    fs.mkdirSync(path.dirname(site), { recursive: true });
    writeSite(site, "strict", ports.http, ports.https, paths);
    const standardSite = path.join(dir, "etc/nginx/sites-available/bbb-streaming-standard");
    writeSite(standardSite, "standard", ports.standardHttp, ports.standardHttps, { ...paths, errorLog: path.join(dir, "standard/logs/error.log") });

    // The operator's external target: another nginx-rtmp that records what it gets.
    const target = path.join(dir, "target");
    fs.mkdirSync(path.join(target, "logs"), { recursive: true });
    fs.mkdirSync(path.join(target, "recordings"));
    run("chown", [WORKER_USER, path.join(target, "recordings")]);
    fs.writeFileSync(
        path.join(target, "nginx.conf"),
        [
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;",
            `user ${WORKER_USER};`,
            `pid ${target}/nginx.pid;`,
            `error_log ${target}/logs/error.log;`,
            "events {}",
            `rtmp { access_log off; server { listen ${LOOPBACK}:${ports.target}; application ext { live on; record all; record_path ${target}/recordings; } } }`,
            "",
        ].join("\n"),
    );

    // The workers' controller: BBB-Streaming-Server v1.1.1 src/controller/app.ts, its answers for a queue with one
    // worker and no job (GET /health L38-68: 200 and the counts; POST / L93-190: 422 without joinUrl and rtmpUrl,
    // else 201; anything else: express's 404). It notes what reached it.
    const controller = track(http.createServer((req, res) => {
        let body = "";
        req.on("data", (chunk) => (body += chunk));
        req.on("end", () => {
            controllerSaw.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization, body });
            res.setHeader("Content-Type", "application/json");
            if (req.method === "GET" && req.url === "/health") {
                res.end(JSON.stringify({ workerCount: 1, waitingCount: 0, runningCount: 0 }));
            } else if (req.method === "POST" && req.url === "/") {
                const job = JSON.parse(body || "{}");
                res.statusCode = job.joinUrl && job.rtmpUrl ? 201 : 422;
                res.end(JSON.stringify(res.statusCode === 201 ? { id: crypto.createHash("sha256").update(job.joinUrl).digest("hex") } : { errors: [] }));
            } else {
                res.statusCode = 404;
                res.end();
            }
        });
    }));
    await new Promise<void>((resolve) => controller.listen(ports.controller, LOOPBACK, resolve));

    // The refused publisher: a relay whose connections to the RTMP port come from this machine's non-loopback address.
    if (nonLoopbackIpv4) {
        const relay = track(net.createServer((client) => {
            const upstream = net.connect({ host: LOOPBACK, port: ports.rtmp, localAddress: nonLoopbackIpv4 });
            client.pipe(upstream).pipe(client);
            upstream.on("error", () => client.destroy());
            client.on("error", () => upstream.destroy());
        }));
        await new Promise<void>((resolve) => relay.listen(ports.relay, LOOPBACK, resolve));
    }

    chromium = spawn(
        "chromium",
        [
            "--headless=new",
            "--no-sandbox",
            "--ignore-certificate-errors",
            "--autoplay-policy=no-user-gesture-required",
            "--mute-audio",
            "--no-first-run",
            "--disable-background-networking",
            `--remote-debugging-port=${ports.cdp}`,
            `--user-data-dir=${path.join(dir, "chromium")}`,
            "about:blank",
        ],
        { stdio: "ignore", detached: true },
    );
    children.push(chromium);
    groupLeaders.add(chromium);
    await startNginx(path.join(target, "nginx.conf"), [ports.target]);
    await startNginx(nginxConf("main", site, modulesEnabled), [ports.rtmp, ports.http, ports.https]);
    await startNginx(nginxConf("standard", standardSite), [ports.standardHttp, ports.standardHttps]);
    ffmpeg = publish(publishUrl(STREAM, ports.rtmp));
    children.push(ffmpeg);
    if (nonLoopbackIpv4) {
        refused = publish(`rtmp://${LOOPBACK}:${ports.relay}/live/${REFUSED}`, 2);
        children.push(refused);
    }
}, 30000);

afterAll(async () => {
    // Publishers first (nginx's fast shutdown does not wait for them), then the rest, each by its own pid.
    await Promise.all(children.filter((c) => c.spawnargs[0] === "ffmpeg").map((c) => stop(c)));
    await Promise.all(children.filter((c) => c.spawnargs[0] !== "ffmpeg").map((c) => stop(c)));
    for (const socket of sockets) socket.destroy();
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    for (const port of [ports.rtmp, ports.target, ports.https]) await until(`port ${port} to be free`, 5000, async () => (!(await tcpOpen(port)) ? true : undefined));
    // Chromium's helpers may still be leaving its profile directory.
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10 });
}, 20000);

const logs = (name: string) =>
    fs
        .readdirSync(path.join(dir, name, "logs"))
        .map((f) => fs.readFileSync(path.join(dir, name, "logs", f), "utf8"))
        .join("");

describe("the streaming ingest, for real: ffmpeg to nginx-rtmp to HLS to a headless browser", () => {
    let probe: {
        t1: number;
        t2: number;
        playingAfterMs: number;
        src: string;
        width: number;
        height: number;
        paused: boolean;
        hlsJs: boolean;
        status: string;
        violations: string[];
        requests: string[];
    };

    test("the viewer page plays the published stream in Chromium: time advances, the picture moves", async () => {
        const playlist = path.join(paths.hls, `${STREAM}.m3u8`);
        await until("the first HLS playlist", 15000, () => (fs.existsSync(playlist) ? true : undefined));
        const out = run("node", ["--no-warnings", "--experimental-websocket", path.join(__dirname, "streaming-probe.mjs"), String(ports.cdp), `https://${LOOPBACK}:${ports.https}${watchPath(STREAM)}`, dir]);
        probe = JSON.parse(out);
        expect(probe.t2 - probe.t1).toBeGreaterThanOrEqual(1.5);
        expect(probe).toMatchObject({ height: 360, paused: false, hlsJs: true, status: "", violations: [] });
        // hls.js plays through MediaSource, from a blob: URL.
        expect(probe.src).toMatch(/^blob:/);
        const shots = ["shot-1.png", "shot-2.png"].map((f) => decodePng(fs.readFileSync(path.join(dir, f))));
        // The test pattern has many colours (a black or blank page has one or two), and it moves.
        expect(colours(shots[0])).toBeGreaterThan(100);
        expect(changed(shots[0], shots[1])).toBeGreaterThan(0.01);
    }, 30000);

    test("a stream that has not started: the page says so and that it tries again, having asked for its playlist once", () => {
        const other = crypto.randomBytes(16).toString("hex");
        const args = ["--no-warnings", "--experimental-websocket", path.join(__dirname, "streaming-probe.mjs"), String(ports.cdp)];
        const waiting = JSON.parse(run("node", [...args, `https://${LOOPBACK}:${ports.https}${watchPath(other)}`, dir, "--status"]));
        expect(waiting.status).toBe("The stream has not started yet, or it has ended. This page tries again in 5 seconds.");
        expect(waiting.requests.filter((u: string) => u.includes("/hls/"))).toEqual([`https://${LOOPBACK}:${ports.https}/hls/${other}.m3u8`]);
    });

    test("the page asks nothing of any other origin", () => {
        const origin = `https://${LOOPBACK}:${ports.https}/`;
        expect(probe.requests).toContain(`${origin}hls.light.min.js`);
        expect(probe.requests.some((u) => u.startsWith(`${origin}hls/${STREAM}-`) && u.endsWith(".ts"))).toBe(true);
        expect(probe.requests.filter((u) => !u.startsWith(origin) && !/^(data|blob):/.test(u))).toEqual([]);
    });

    test("the page and the HLS files carry the security headers, playlists are not cached, nothing is listed", async () => {
        const page = await request(`https://${LOOPBACK}:${ports.https}${watchPath(STREAM)}`);
        expect(page.status).toBe(200);
        expect(page.body).toBe(viewerFiles()["index.html"]);
        expect(page.headers["content-security-policy"]).toBe(CONTENT_SECURITY_POLICY);
        const playlist = await request(`https://${LOOPBACK}:${ports.https}/hls/${STREAM}.m3u8`);
        expect(playlist).toMatchObject({ status: 200, headers: { "content-type": "application/vnd.apple.mpegurl", "cache-control": "no-cache", "x-content-type-options": "nosniff" } });
        const segment = playlist.body.split("\n").find((l) => l.endsWith(".ts"))!;
        const ts = await request(`https://${LOOPBACK}:${ports.https}/hls/${segment}`);
        expect(ts.status).toBe(200);
        expect(ts.headers["content-type"]).toBe("video/mp2t");
        expect(ts.headers["cache-control"]).toBeUndefined();
        expect((await request(`https://${LOOPBACK}:${ports.https}/hls/`)).status).toBe(403);
        expect((await request(`https://${LOOPBACK}:${ports.https}/watch/not-a-stream`)).status).toBe(404);
        const redirect = await request(`http://${LOOPBACK}:${ports.http}${watchPath(STREAM)}`);
        expect(redirect).toMatchObject({ status: 301, headers: { location: `https://${FQDN}${watchPath(STREAM)}` } });
        // certbot --webroot writes its token there.
        fs.mkdirSync(path.join(paths.acmeWebroot, ".well-known/acme-challenge"), { recursive: true });
        fs.writeFileSync(path.join(paths.acmeWebroot, ".well-known/acme-challenge/token"), "challenge");
        expect(await request(`http://${LOOPBACK}:${ports.http}/.well-known/acme-challenge/token`)).toMatchObject({ status: 200, body: "challenge" });
    });

    test("when the publisher stops, the recording becomes a playable MP4 and its FLV is removed; the target got the stream", async () => {
        await stop(ffmpeg, "SIGINT");
        const mp4 = await until("the remuxed recording", 10000, () => fs.readdirSync(paths.recordings).find((f) => f.startsWith(`${STREAM}-`) && f.endsWith(".mp4")));
        expect(mp4).toMatch(new RegExp(`^${STREAM}-\\d+\\.mp4$`));
        const recording = ffprobe(path.join(paths.recordings, mp4));
        expect(recording.codecs.sort()).toEqual(["aac", "h264"]);
        expect(recording.width).toBe(640);
        expect(recording.duration).toBeGreaterThan(4);
        expect(fs.readdirSync(paths.recordings).filter((f) => f.endsWith(".flv"))).toEqual([]);
        // The forwarded copy, under the stream key the push line carried.
        const forwarded = path.join(dir, "target/recordings", `${FORWARD_KEY}.flv`);
        await until("the target's recording to be closed", 5000, () => (ffprobe(forwarded).duration > 4 ? true : undefined));
        expect(ffprobe(forwarded).codecs.sort()).toEqual(["aac", "h264"]);
    }, 20000);

    (nonLoopbackIpv4 ? test : test.skip)("a publisher from another address is refused, and leaves no stream and no recording", async () => {
        expect(await exitCode(refused)).not.toBe(0);
        expect(logs("main")).toContain(`access forbidden by rule, client: ${nonLoopbackIpv4}`);
        expect(fs.existsSync(path.join(paths.hls, `${REFUSED}.m3u8`))).toBe(false);
        // nginx-rtmp opens its (empty) recording before the rules refuse it; the remux program removes it.
        await until("the refused publisher's empty recording to be removed", 3000, () => (fs.readdirSync(paths.recordings).some((f) => f.startsWith(REFUSED)) ? undefined : true));
        // And nothing listens for RTMP on that address at all.
        expect(await tcpOpen(ports.rtmp, nonLoopbackIpv4)).toBe(false);
    });

    test("the API: without or with wrong credentials 401; with them, the controller gets the path without /api and no credentials", async () => {
        const api = `https://${LOOPBACK}:${ports.https}/api`;
        expect((await request(`${api}/health`)).status).toBe(401);
        expect((await request(`${api}/health`, { headers: basic(API_USER, "wrong") })).status).toBe(401);
        expect((await request(`${api}/health`, { headers: basic("nobody", API_PASSWORD) })).status).toBe(401);
        expect(controllerSaw).toEqual([]);
        const health = await request(`${api}/health`, { headers: basic(API_USER, API_PASSWORD) });
        expect(health.status).toBe(200);
        expect(JSON.parse(health.body)).toEqual({ workerCount: 1, waitingCount: 0, runningCount: 0 });
        const job = JSON.stringify({ joinUrl: "https://bbb.example.org/bigbluebutton/api/join?meetingID=m", rtmpUrl: publishUrl(STREAM) });
        const created = await request(`${api}/`, { method: "POST", headers: { ...basic(API_USER, API_PASSWORD), "Content-Type": "application/json" } }, job);
        expect(created.status).toBe(201);
        expect(controllerSaw).toEqual([
            { method: "GET", url: "/health", authorization: undefined, body: "" },
            { method: "POST", url: "/", authorization: undefined, body: job },
        ]);
    });

    test("privacy strict: after the viewer's page, playlists and segments, no access log line and no client in the error log", () => {
        expect(probe.requests.length).toBeGreaterThan(3);
        const all = logs("main");
        expect(fs.readFileSync(path.join(dir, "main/logs/access.log"), "utf8")).toBe("");
        expect(all).not.toContain(`client: ${LOOPBACK}`);
        expect(all).not.toContain(STREAM);
        // Nor the forwarding target's stream key, anywhere.
        expect(all + logs("target")).not.toContain(FORWARD_KEY);
        // Without `access_log off` in rtmp{}, nginx-rtmp would log each publish to nginx's compiled-in access log.
        const rtmpDefaultLog = /--http-log-path=(\S+)/.exec(spawnSync("nginx", ["-V"], { encoding: "utf8" }).stderr)![1];
        expect(fs.existsSync(rtmpDefaultLog) ? fs.readFileSync(rtmpDefaultLog, "utf8") : "").not.toContain(STREAM);
    });

    test("privacy standard: nginx's access log and error log name the viewer", async () => {
        const base = `https://${LOOPBACK}:${ports.standardHttps}`;
        expect((await request(`${base}${watchPath(STREAM)}`)).status).toBe(200);
        expect((await request(`${base}/favicon.ico`)).status).toBe(404);
        await until("the standard site's log lines", 2000, () => {
            const log = logs("standard");
            return log.includes(`GET ${watchPath(STREAM)} `) && log.includes(`client: ${LOOPBACK}`) ? true : undefined;
        });
    });
});

describe("the remux program (scripts/remote/streaming-remux.sh), on its own", () => {
    const remux = (recordings: string, file: string) => spawnSync("bash", [path.join(ROOT, "scripts/remote/streaming-remux.sh"), recordings, file], { encoding: "utf8" });
    const recordings = path.join(dir, "remux/recordings");
    const outside = path.join(dir, "remux/elsewhere");
    beforeAll(() => {
        fs.mkdirSync(recordings, { recursive: true });
        fs.mkdirSync(outside, { recursive: true });
    });

    test("touches nothing but a regular .flv file directly in the recordings directory", () => {
        const foreign = path.join(outside, "a.flv");
        fs.writeFileSync(foreign, "");
        fs.symlinkSync(foreign, path.join(recordings, "link.flv"));
        fs.writeFileSync(path.join(recordings, "notes.txt"), "");
        for (const file of [foreign, path.join(recordings, "../elsewhere/a.flv"), path.join(recordings, "link.flv"), path.join(recordings, "notes.txt"), recordings]) {
            const r = remux(recordings, file);
            expect(r.status).toBe(1);
            expect(r.stderr).toMatch(/^bbb-streaming-remux: refusing a file that is not a regular \.flv directly in /);
        }
        expect(fs.existsSync(foreign)).toBe(true);
        expect(fs.readdirSync(recordings).sort()).toEqual(["link.flv", "notes.txt"]);
    });

    test("its log names a recording by the time it started, never by its stream (the viewer URL's secret part)", () => {
        const name = "c".repeat(32);
        const empty = path.join(recordings, `${name}-1795935001.flv`);
        fs.writeFileSync(empty, "");
        const removed = remux(recordings, empty);
        expect([removed.status, removed.stderr]).toEqual([0, "bbb-streaming-remux: removed the empty recording started at 1795935001\n"]);
        const flv = path.join(recordings, `${name}-1795935002.flv`);
        const made = spawnSync("ffmpeg", ["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=10", "-t", "1", "-c:v", "libx264", "-f", "flv", flv]);
        expect(made.status).toBe(0);
        const remuxed = remux(recordings, flv);
        expect([remuxed.status, remuxed.stderr]).toEqual([0, "bbb-streaming-remux: remuxed the recording started at 1795935002 to MP4\n"]);
        expect(fs.readdirSync(recordings).filter((f) => f.startsWith(name))).toEqual([`${name}-1795935002.mp4`]);
        expect(remux(recordings, path.join(recordings, `${name}-1.flv`)).stderr).toBe("bbb-streaming-remux: no such recording\n");
    });

    test("keeps a recording ffmpeg cannot read, and leaves no partial MP4", () => {
        const broken = path.join(recordings, `${"b".repeat(32)}-1795935873.flv`);
        fs.writeFileSync(broken, "not a flash video");
        const r = remux(recordings, broken);
        expect(r.status).toBe(1);
        // Its log names the time, never the stream (its viewer URL's secret part).
        expect(r.stderr).toContain("ffmpeg could not remux the recording started at 1795935873; its FLV is kept");
        expect(r.stderr).not.toContain("b".repeat(32));
        expect(fs.readdirSync(recordings).filter((f) => f.startsWith("b") || f.startsWith(".remux"))).toEqual([path.basename(broken)]);
    });
});
