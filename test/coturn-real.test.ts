// scripts/remote/turn-coturn.sh with the real parts around it, all on 127.0.0.1: a real certbot gets the
// certificate from a local ACME CA (Debian's pebble, which with PEBBLE_VA_ALWAYS_VALID issues without
// resolving or calling back), the real deploy hook copies it with the real install and chown, then the real
// coturn runs, as the turnserver user like the systemd unit does, with the turnserver.conf the step wrote,
// and turnutils_uclient allocates relays through it. Only apt-get and systemctl stay stubs.
//
// Needs root and Debian's coturn, pebble, certbot and openssl. Every process this file starts listens on
// 127.0.0.1 only, on ports found free, and is stopped by its own pid in afterAll.
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as dgram from "dgram";
import * as fs from "fs";
import * as https from "https";
import * as net from "net";
import * as path from "path";
import * as tls from "tls";
import { account } from "./accounts";
import { Sandbox } from "./sandbox";
import { installStubs } from "./stubs";
import { tcpOpen } from "./tcp";

const LOOPBACK = "127.0.0.1";
const FQDN = "turn.example.org";
const SECRET = crypto.randomBytes(32).toString("hex");
const RELAY_PORTS = 100;

function tool(name: string): string {
    for (const dir of ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]) {
        if (fs.existsSync(path.join(dir, name))) return path.join(dir, name);
    }
    throw new Error(`${name} is not installed (apt-get install -y coturn pebble certbot openssl)`);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resolves true when PORT can be bound on 127.0.0.1 for PROTOCOL right now. */
function bindable(port: number, protocol: "tcp" | "udp"): Promise<boolean> {
    return new Promise((resolve) => {
        if (protocol === "tcp") {
            const server = net.createServer();
            server.once("error", () => resolve(false));
            server.listen(port, LOOPBACK, () => server.close(() => resolve(true)));
        } else {
            const socket = dgram.createSocket("udp4");
            socket.once("error", () => {
                socket.close();
                resolve(false);
            });
            socket.bind(port, LOOPBACK, () => socket.close(() => resolve(true)));
        }
    });
}

/** Ports are picked below the kernel's ephemeral range, so no client's source port takes one meanwhile. */
const EPHEMERAL_MIN = Number(fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || 32768;
const taken = new Set<number>();
const candidate = (span: number) => 20000 + crypto.randomInt(Math.max(1, EPHEMERAL_MIN - 20000 - span));

/** A port free for TCP and UDP on 127.0.0.1. */
async function freePort(): Promise<number> {
    for (let attempt = 0; attempt < 200; attempt++) {
        const port = candidate(1);
        if (taken.has(port)) continue;
        if ((await bindable(port, "tcp")) && (await bindable(port, "udp"))) {
            taken.add(port);
            return port;
        }
    }
    throw new Error("no free port on 127.0.0.1");
}

/** COUNT consecutive ports free for UDP on 127.0.0.1: coturn's relay range. */
async function freeRange(count: number): Promise<number> {
    for (let attempt = 0; attempt < 50; attempt++) {
        const base = candidate(count);
        const ports = Array.from({ length: count }, (_, i) => base + i);
        if (ports.some((p) => taken.has(p))) continue;
        let free = true;
        for (const p of ports) if (!(free = await bindable(p, "udp"))) break;
        if (free) {
            ports.forEach((p) => taken.add(p));
            return base;
        }
    }
    throw new Error(`no ${count} consecutive free UDP ports on 127.0.0.1`);
}

/** Polls PROBE every 100 ms until it gives a value; WHAT (evaluated on time-out) says what was awaited. */
async function until<T>(what: string | (() => string), ms: number, probe: () => Promise<T | undefined>): Promise<T> {
    const end = Date.now() + ms;
    let last: unknown;
    while (Date.now() < end) {
        try {
            const value = await probe();
            if (value !== undefined) return value;
        } catch (e) {
            last = e;
        }
        await sleep(100);
    }
    throw new Error(`timed out after ${ms} ms waiting for ${typeof what === "function" ? what() : what}${last ? `\nlast error: ${String(last)}` : ""}`);
}

function httpsGet(url: string, ca: string): Promise<string> {
    return new Promise((resolve, reject) => {
        const req = https.get(url, { ca, timeout: 2000 }, (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (chunk: string) => (body += chunk));
            res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: HTTP ${res.statusCode}`))));
        });
        req.on("timeout", () => req.destroy(new Error(`${url}: timeout`)));
        req.on("error", reject);
    });
}

/** Sends a STUN Binding request over UDP; true when the answer is a Binding success for it. */
function stunBinding(port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const socket = dgram.createSocket("udp4");
        const id = crypto.randomBytes(12);
        const request = Buffer.concat([Buffer.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]), id]);
        const done = (ok: boolean) => {
            clearTimeout(timer);
            socket.close();
            resolve(ok);
        };
        const timer = setTimeout(() => done(false), 500);
        socket.on("error", () => done(false));
        socket.on("message", (msg) => done(msg.length >= 20 && msg.readUInt16BE(0) === 0x0101 && msg.subarray(8, 20).equals(id)));
        socket.send(request, port, LOOPBACK);
    });
}

/** The TLS handshake with coturn on PORT: the certificate it presents, or the handshake's error. */
function tlsPeer(port: number, options: tls.ConnectionOptions): Promise<{ cert?: crypto.X509Certificate; error?: string }> {
    return new Promise((resolve) => {
        const socket = tls.connect({ host: LOOPBACK, port, servername: FQDN, ...options });
        const timer = setTimeout(() => finish({ error: "no handshake within 1.5 s" }), 1500);
        function finish(result: { cert?: crypto.X509Certificate; error?: string }) {
            clearTimeout(timer);
            socket.destroy();
            resolve(result);
        }
        socket.once("secureConnect", () => {
            const raw = socket.getPeerCertificate().raw;
            finish(socket.authorized ? { cert: new crypto.X509Certificate(raw) } : { error: String(socket.authorizationError) });
        });
        socket.once("error", (e) => finish({ error: e.message }));
    });
}

/** Stops a child this file started, by its pid: TERM, then KILL after 3 s. */
async function stop(child: ChildProcess | undefined): Promise<void> {
    if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const pid = child.pid;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const signal = (name: NodeJS.Signals) => {
        try {
            if (child.exitCode === null && child.signalCode === null) process.kill(pid, name);
        } catch {
            // already gone
        }
    };
    signal("SIGTERM");
    const timer = setTimeout(() => signal("SIGKILL"), 3000);
    await exited;
    clearTimeout(timer);
}

function firstPem(file: string): crypto.X509Certificate {
    return new crypto.X509Certificate(fs.readFileSync(file, "utf8").split(/(?<=-----END CERTIFICATE-----)/)[0]);
}

/** systemctl like test/stubs.ts's, but `kill -s SIG coturn.service` signals the real coturn this test runs. */
const SYSTEMCTL = `
verb=$1; shift
mkdir -p "$SANDBOX/units"
unit=""; sig=""; prev=""
for a in "$@"; do
  if [ "$prev" = "-s" ]; then sig=$a; else case $a in -*) ;; *) unit=$a ;; esac; fi
  prev=$a
done
case $verb in
  start|restart) touch "$SANDBOX/units/$unit" ;;
  stop) rm -f "$SANDBOX/units/$unit" ;;
  is-active) [ -f "$SANDBOX/units/$unit" ] ;;
  kill) [ "$unit" = coturn.service ] && [ -s "$SANDBOX/coturn.pid" ] && kill -s "$sig" "$(cat "$SANDBOX/coturn.pid")" ;;
esac`;

const UCLIENT = "turnutils_uclient";
const TURNSERVER = "turnserver";

describe("TURN host for real on 127.0.0.1: certificate from an ACME CA, then coturn with the configuration the step writes", () => {
    let box: Sandbox;
    let pebble: ChildProcess | undefined;
    let coturn: ChildProcess | undefined;
    let step: { status: number | null; stdout: string; stderr: string };
    const turnserverUser = account("turnserver", "coturn");
    const ports = { acme: 0, acmeManagement: 0, http01: 0, listening: 0, tls: 0, relayMin: 0, relayMax: 0 };
    let pebbleCa = "";
    const live = () => box.file(`root/etc/letsencrypt/live/${FQDN}`);
    const certs = () => box.file("root/etc/coturn/certs");
    const conf = () => box.file("root/etc/turnserver.conf");
    const coturnLog = () => box.file("root/var/log/turnserver/turnserver.log");
    /** The tails of what pebble and coturn said, for failure messages. */
    const logs = () =>
        ["pebble.log", "coturn.out", "root/var/log/turnserver/turnserver.log"]
            .filter((f) => fs.existsSync(box.file(f)))
            .map((f) => `--- ${f}\n${fs.readFileSync(box.file(f), "utf8").split("\n").slice(-25).join("\n")}`)
            .join("\n");

    beforeAll(async () => {
        if (process.getuid?.() !== 0) throw new Error("this test runs the real certbot, chown and coturn: run it as root");
        for (const name of ["pebble", "certbot", "openssl", TURNSERVER, UCLIENT]) tool(name);
        box = new Sandbox();
        installStubs(box);
        box.stub("systemctl", SYSTEMCTL);
        box.stub("install", `exec ${tool("install")} "$@"`);
        box.stub("chown", `exec ${tool("chown")} "$@"`);
        // coturn runs as turnserver: it must get through the sandbox to its config, certificates and log.
        fs.chmodSync(box.dir, 0o711);

        ports.acme = await freePort();
        ports.acmeManagement = await freePort();
        ports.http01 = await freePort();
        ports.listening = await freePort();
        ports.tls = await freePort();
        ports.relayMin = await freeRange(RELAY_PORTS);
        ports.relayMax = ports.relayMin + RELAY_PORTS - 1;

        // pebble, with its own TLS certificate for 127.0.0.1.
        fs.mkdirSync(box.file("pebble"));
        execFileSync(tool("openssl"), [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=pebble on 127.0.0.1", "-addext", `subjectAltName=IP:${LOOPBACK}`,
            "-keyout", box.file("pebble/key.pem"), "-out", box.file("pebble/cert.pem"),
        ], { stdio: "ignore", timeout: 10000 });
        pebbleCa = fs.readFileSync(box.file("pebble/cert.pem"), "utf8");
        const pebbleConfig = {
            pebble: {
                listenAddress: `${LOOPBACK}:${ports.acme}`,
                managementListenAddress: `${LOOPBACK}:${ports.acmeManagement}`,
                certificate: box.file("pebble/cert.pem"),
                privateKey: box.file("pebble/key.pem"),
                httpPort: ports.http01,
                tlsPort: ports.http01,
                ocspResponderURL: "",
                externalAccountBindingRequired: false,
            },
        };
        fs.writeFileSync(box.file("pebble/config.json"), JSON.stringify(pebbleConfig));
        const pebbleOut = fs.openSync(box.file("pebble.log"), "w");
        pebble = spawn(tool("pebble"), ["-config", box.file("pebble/config.json")], {
            cwd: box.file("pebble"),
            stdio: ["ignore", pebbleOut, pebbleOut],
            env: { PATH: "/usr/bin:/bin", PEBBLE_VA_ALWAYS_VALID: "1", PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0" },
        });
        fs.closeSync(pebbleOut);
        await until(() => `pebble on ${LOOPBACK}:${ports.acme}\n${logs()}`, 5000, async () => {
            if (pebble!.exitCode !== null) throw new Error(`pebble exited ${pebble!.exitCode}`);
            return (await httpsGet(`https://${LOOPBACK}:${ports.acme}/dir`, pebbleCa)).includes("newOrder") ? true : undefined;
        });

        // certbot: the real one, with the step's own arguments, pointed at pebble and kept inside the sandbox.
        box.stub(
            "certbot",
            [
                `export REQUESTS_CA_BUNDLE="$SANDBOX/pebble/cert.pem"`,
                `exec ${tool("certbot")} "$@" --server https://${LOOPBACK}:${ports.acme}/dir --config-dir "$ROOT/etc/letsencrypt"` +
                    ` --work-dir "$SANDBOX/letsencrypt/work" --logs-dir "$SANDBOX/letsencrypt/logs"` +
                    ` --http-01-port ${ports.http01} --http-01-address ${LOOPBACK}`,
            ].join("\n"),
        );

        step = box.run("turn-coturn", {
            FQDN,
            REALM: "example.org",
            EMAIL: "ops@example.org",
            SECRET,
            PRIVATE_IPV4: LOOPBACK,
            PUBLIC_IPV4: LOOPBACK,
            IPV6: "",
            LISTENING_PORT: String(ports.listening),
            TLS_PORT: String(ports.tls),
            RELAY_MIN: String(ports.relayMin),
            RELAY_MAX: String(ports.relayMax),
            PEERS: `bbb-1.example.org ${LOOPBACK}`,
            LOGGING: "file",
        });
    }, 25000);

    afterAll(async () => {
        await stop(coturn);
        await stop(pebble);
        box?.cleanup();
    }, 10000);

    describe("ACME: certbot gets the TURN host's certificate and the deploy hook hands it to coturn", () => {
        test("the step succeeds, asking the ACME CA by HTTP-01 for turn.example.org", () => {
            expect({ status: step.status, stderr: step.stderr }).toEqual({ status: 0, stderr: "" });
            expect(box.calls("certbot")).toEqual([
                `certbot certonly --standalone --non-interactive --agree-tos --keep-until-expiring -m ops@example.org -d ${FQDN}`,
            ]);
            expect(step.stdout).toContain("Successfully received certificate.");
        });

        test("the certificate is really issued by the ACME CA, for turn.example.org, and matches its key", async () => {
            const leaf = firstPem(path.join(live(), "fullchain.pem"));
            const intermediate = new crypto.X509Certificate(await httpsGet(`https://${LOOPBACK}:${ports.acmeManagement}/intermediates/0`, pebbleCa));
            expect(leaf.issuer).toMatch(/^CN=Pebble Intermediate CA /);
            expect(leaf.checkIssued(intermediate)).toBe(true);
            expect(leaf.verify(intermediate.publicKey)).toBe(true);
            expect(leaf.subjectAltName).toBe(`DNS:${FQDN}`);
            expect(leaf.checkPrivateKey(crypto.createPrivateKey(fs.readFileSync(path.join(live(), "privkey.pem"))))).toBe(true);
        });

        test("coturn's copies are the issued files, owned by turnserver: certificate 0640, key 0600, directory 0750", () => {
            for (const [file, mode] of [["fullchain.pem", 0o640], ["privkey.pem", 0o600]] as const) {
                const copy = path.join(certs(), file);
                expect(fs.readFileSync(copy, "utf8")).toBe(fs.readFileSync(path.join(live(), file), "utf8"));
                const st = fs.statSync(copy);
                expect({ file, mode: st.mode & 0o777, uid: st.uid, gid: st.gid }).toEqual({ file, mode, ...turnserverUser });
            }
            const dir = fs.statSync(certs());
            expect({ mode: dir.mode & 0o777, uid: dir.uid, gid: dir.gid }).toEqual({ mode: 0o750, ...turnserverUser });
        });

        test("turnserver.conf, holding the secret, is root:turnserver 0640", () => {
            const st = fs.statSync(conf());
            expect({ mode: st.mode & 0o777, uid: st.uid, gid: st.gid }).toEqual({ mode: 0o640, uid: 0, gid: turnserverUser.gid });
        });
    });

    describe("coturn, running as turnserver with that configuration, relays for clients holding the TURN secret", () => {
        const relays = (out: string) => [...out.matchAll(/Received relay addr: ([\d.]+):(\d+)/g)].map((m) => ({ ip: m[1], port: Number(m[2]) }));

        /** turnutils_uclient -v ... 127.0.0.1, bounded; its exit code says nothing (255 on success here too), its output does. */
        function uclient(args: string[]): string {
            const r = spawnSync(tool(UCLIENT), ["-v", ...args, "-e", LOOPBACK, "-n", "1", "-m", "1", LOOPBACK], {
                encoding: "utf8",
                timeout: 5000,
                killSignal: "SIGKILL",
                cwd: box.dir,
            });
            return `${r.stdout}${r.stderr}${r.error ? `\n[${r.error.message}]` : ""}`;
        }

        function expectRelayed(out: string) {
            expect(out).not.toContain("Cannot complete Allocation");
            expect(out).toMatch(/allocate response received: \s*\n.*success/);
            const got = relays(out);
            expect(got.length).toBeGreaterThan(0);
            for (const relay of got) {
                expect(relay.ip).toBe(LOOPBACK);
                expect(relay.port).toBeGreaterThanOrEqual(ports.relayMin);
                expect(relay.port).toBeLessThanOrEqual(ports.relayMax);
            }
        }

        function expectRefused(out: string) {
            expect(out).toContain("ERROR: Cannot complete Allocation");
            expect(relays(out)).toEqual([]);
        }

        /** TURN REST API credential, as BigBlueButton computes it from the shared secret. */
        function credential(expiresAt: number, user: string, secret = SECRET): string[] {
            const username = `${expiresAt}:${user}`;
            return ["-u", username, "-w", crypto.createHmac("sha1", secret).update(username).digest("base64")];
        }

        beforeAll(async () => {
            if (step?.status !== 0) throw new Error(`the turn-coturn step failed, coturn not started:\n${step?.stderr}`);
            const run = box.file("run");
            fs.mkdirSync(run);
            fs.chownSync(run, turnserverUser.uid, turnserverUser.gid);
            const out = fs.openSync(box.file("coturn.out"), "w");
            // As the systemd unit runs it (User=turnserver, -c /etc/turnserver.conf --pidfile), in the foreground;
            // --userdb keeps coturn's SQLite database in the sandbox instead of /var/lib/turn.
            coturn = spawn(tool(TURNSERVER), ["-c", conf(), "--pidfile", path.join(run, "turnserver.pid"), "--userdb", path.join(run, "turndb")], {
                cwd: run,
                uid: turnserverUser.uid,
                gid: turnserverUser.gid,
                stdio: ["ignore", out, out],
                env: { PATH: "/usr/bin:/bin", HOME: run },
            });
            fs.closeSync(out);
            fs.writeFileSync(box.file("coturn.pid"), String(coturn.pid));
            await until(() => `coturn on ${LOOPBACK}:${ports.listening} (udp, tcp) and :${ports.tls} (tls)\n${logs()}`, 6000, async () => {
                if (coturn!.exitCode !== null) throw new Error(`coturn exited ${coturn!.exitCode}`);
                const up = (await tcpOpen(ports.listening)) && (await tcpOpen(ports.tls)) && (await stunBinding(ports.listening));
                return up ? true : undefined;
            });
        }, 10000);

        test("coturn runs and accepts every line of the configuration (no-loopback-peers aside)", () => {
            expect(coturn?.exitCode).toBeNull();
            const log = fs.readFileSync(coturnLog(), "utf8");
            expect(log).toContain(`Certificate file found: ${path.join(certs(), "fullchain.pem")}`);
            // coturn 4.6 no longer knows no-loopback-peers (it refuses loopback peers unless allow-loopback-peers)
            // and logs "Bad configuration format: no-loopback-peers"; coturn 4.5 knows it. Anything else is a mistake.
            const rejected = log
                .split("\n")
                .filter((l) => /Bad configuration format|CONFIG ERROR|CONFIGURATION ALERT/.test(l))
                .filter((l) => !l.endsWith("Bad configuration format: no-loopback-peers"));
            expect(rejected).toEqual([]);
        });

        test("a client gets a relay over UDP, and relaying to a loopback peer is refused (403 Forbidden IP)", () => {
            const out = uclient(["-W", SECRET, "-u", "alice", "-p", String(ports.listening)]);
            expectRelayed(out);
            expect(out).toContain("channel bind: error 403 (Forbidden IP)");
        });

        test("a client gets a relay over TCP", () => {
            expectRelayed(uclient(["-t", "-W", SECRET, "-u", "alice", "-p", String(ports.listening)]));
        });

        // uclient picks a random SSL context per connection, TLS 1.0 and 1.1 among them; coturn (no-tlsv1,
        // no-tlsv1_1) drops such a hello without an alert and uclient then waits forever. TLS 1.2-only suites make
        // those contexts fail at once in uclient, which then takes another.
        const TLS12 = ["-F", "ECDHE+AESGCM"];

        test("a client gets a relay over TLS on the TLS port", () => {
            const out = uclient(["-t", "-S", ...TLS12, "-W", SECRET, "-u", "alice", "-p", String(ports.tls)]);
            expect(out).toMatch(/client session connected with cipher \S+, method=TLSv1\.2/);
            expectRelayed(out);
        });

        test("a client gets a relay over DTLS on the TLS port", () => {
            const out = uclient(["-S", ...TLS12, "-W", SECRET, "-u", "alice", "-p", String(ports.tls)]);
            expect(out).toMatch(/method=DTLSv1\.2/);
            expectRelayed(out);
        });

        test("a credential computed from the secret as BigBlueButton does (expiry:user, HMAC-SHA1) works", () => {
            expectRelayed(uclient([...credential(Math.floor(Date.now() / 1000) + 3600, "bbb-user"), "-p", String(ports.listening)]));
        });

        test("a wrong secret gets no relay", () => {
            const wrong = crypto.randomBytes(32).toString("hex");
            expectRefused(uclient(["-W", wrong, "-u", "alice", "-p", String(ports.listening)]));
            expectRefused(uclient(["-t", "-S", ...TLS12, "-W", wrong, "-u", "alice", "-p", String(ports.tls)]));
        });

        test("an expired credential gets no relay", () => {
            expectRefused(uclient([...credential(Math.floor(Date.now() / 1000) - 60, "bbb-user"), "-p", String(ports.listening)]));
        });

        test("the TLS port presents the ACME certificate, valid for turn.example.org up to the CA's root; TLS 1.0 gets nothing", async () => {
            const root = await httpsGet(`https://${LOOPBACK}:${ports.acmeManagement}/roots/0`, pebbleCa);
            const served = await tlsPeer(ports.tls, { ca: root, minVersion: "TLSv1.2" });
            expect(served.error).toBeUndefined();
            expect(served.cert?.fingerprint256).toBe(firstPem(path.join(certs(), "fullchain.pem")).fingerprint256);
            // Node does send a TLS 1.0 hello with these options; coturn 4.6 drops it without an alert.
            const old = await tlsPeer(ports.tls, { ca: root, minVersion: "TLSv1", maxVersion: "TLSv1", ciphers: "DEFAULT@SECLEVEL=0" });
            expect(old.cert).toBeUndefined();
            expect(old.error).toMatch(/no handshake within|alert protocol version/);
        });

        test("a renewal runs the deploy hook, which reloads coturn (USR2): it then serves the renewed certificate", async () => {
            const before = firstPem(path.join(certs(), "fullchain.pem")).fingerprint256;
            fs.writeFileSync(box.callLog, "");
            const renew = spawnSync(box.file("bin/certbot"), ["renew", "--force-renewal", "--no-random-sleep-on-renew", "--non-interactive"], {
                env: { PATH: box.bin, SANDBOX: box.dir, HOME: box.dir, LANG: "C.UTF-8" },
                encoding: "utf8",
                timeout: 20000,
            });
            expect({ status: renew.status, error: renew.error?.message }).toEqual({ status: 0, error: undefined });
            expect(box.calls("systemctl")).toEqual(["systemctl is-active --quiet coturn.service", "systemctl kill -s USR2 coturn.service"]);
            const renewed = firstPem(path.join(certs(), "fullchain.pem")).fingerprint256;
            expect(renewed).not.toBe(before);
            expect(renewed).toBe(firstPem(path.join(live(), "fullchain.pem")).fingerprint256);
            const root = await httpsGet(`https://${LOOPBACK}:${ports.acmeManagement}/roots/0`, pebbleCa);
            await until(() => `coturn to serve the renewed certificate\n${logs()}`, 3000, async () =>
                (await tlsPeer(ports.tls, { ca: root })).cert?.fingerprint256 === renewed ? true : undefined,
            );
            expect(fs.readFileSync(coturnLog(), "utf8")).toContain("Reloading TLS certificates and keys");
            expectRelayed(uclient(["-t", "-S", ...TLS12, "-W", SECRET, "-u", "alice", "-p", String(ports.tls)]));
        }, 25000);

        test("after logrotate moves the log, its postrotate command (HUP) makes coturn write a new one", async () => {
            const rotate = fs.readFileSync(box.file("root/etc/logrotate.d/coturn"), "utf8");
            const postrotate = rotate.match(/postrotate\n([\s\S]*?)\n\s*endscript/)?.[1].trim();
            expect(postrotate).toBe("systemctl kill -s HUP coturn.service");
            fs.renameSync(coturnLog(), `${coturnLog()}.1`);
            const hup = spawnSync(box.file("bin/bash"), ["-c", postrotate!], { env: { PATH: box.bin, SANDBOX: box.dir }, timeout: 5000 });
            expect(hup.status).toBe(0);
            await until("coturn to write a new log file", 3000, async () => {
                uclient(["-W", "0".repeat(64), "-u", "alice", "-p", String(ports.listening)]); // logs an auth error
                return fs.existsSync(coturnLog()) && fs.readFileSync(coturnLog(), "utf8").includes("check_stun_auth") ? true : undefined;
            });
            expect(coturn?.exitCode).toBeNull();
        });
    });
});
