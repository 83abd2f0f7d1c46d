// scripts/smoke.ts against stand-ins on 127.0.0.1, without a network: an HTTPS server that behaves like
// BBB's API (checksums verified the way bbb-web does, meetings kept in memory, notFound for unknown ones)
// and optionally like Scalelite (admin API getServers, join answered with a redirect), and a TLS server
// standing in for TURN. Certificates are self-signed with openssl; --ca trusts them.
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as https from "https";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import * as tls from "tls";
import { checksum, Io, signedUrl } from "../scripts/bbb-api";
import { main } from "../scripts/smoke";
import { checksumValid } from "./bbb-checksum";

const SECRET = "639259d4-9dd8-4b25-bf01-95f9567eaf4b";

interface Cert {
    key: string;
    cert: string;
}

function selfSigned(dir: string, name: string, san: string): Cert {
    const key = path.join(dir, `${name}.key`);
    const cert = path.join(dir, `${name}.crt`);
    execFileSync("openssl", [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
        "-keyout", key, "-out", cert, "-subj", `/CN=${name}`, "-addext", `subjectAltName=${san}`,
    ], { stdio: "pipe" });
    return { key: fs.readFileSync(key, "utf8"), cert: fs.readFileSync(cert, "utf8") };
}

// ------------------------------------------------------------------------------------------ fake BBB

interface ServerEntry {
    id: string;
    url: string;
    secret: string;
    state: string;
    load: number;
    online: string;
}

interface FakeOptions {
    secret: string;
    /** getMeetingInfo never finds a meeting (as if another server answered it). */
    forgetMeetings?: boolean;
    /** join always fails. */
    failJoin?: boolean;
    /** Scalelite: the admin API's servers ([] = none configured); "no-admin-api": Scalelite without it. */
    scalelite?: ServerEntry[] | "no-admin-api";
}

const xml = (fields: Record<string, string>) =>
    `<?xml version="1.0"?>\n<response>${Object.entries(fields).map(([k, v]) => `<${k}>${v}</${k}>`).join("")}</response>`;
const failed = (messageKey: string, message: string) => xml({ returncode: "FAILED", messageKey, message });
const NOT_FOUND = failed("notFound", "We could not find a meeting with that meeting ID");


class FakeBbb {
    readonly meetings = new Map<string, { name: string; joined: number }>();
    readonly calls: string[] = [];
    private server!: https.Server;
    port = 0;

    constructor(private readonly options: FakeOptions, private readonly cert: Cert) {}

    get apiUrl(): string {
        return `https://localhost:${this.port}/bigbluebutton/api`;
    }

    async start(): Promise<this> {
        this.server = https.createServer({ ...this.cert }, (req, res) => {
            const [pathname, rawQuery = ""] = (req.url ?? "/").split(/\?(.*)/s);
            const send = (status: number, body: string, type = "text/xml;charset=utf-8", headers: Record<string, string> = {}) => {
                res.writeHead(status, { "content-type": type, ...headers });
                res.end(body);
            };
            if (pathname === "/scalelite/api/getServers") {
                this.calls.push("getServers");
                const sl = this.options.scalelite;
                if (!Array.isArray(sl)) return send(404, "<h1>Not Found</h1>", "text/html");
                if (!checksumValid("getServers", rawQuery, this.options.secret)) return send(200, failed("checksumError", "You did not pass the checksum security check"));
                if (sl.length === 0) return send(404, JSON.stringify({ error: "No servers are configured" }), "application/json");
                return send(200, JSON.stringify(sl), "application/json");
            }
            const m = /^\/bigbluebutton\/api\/?([A-Za-z]*)$/.exec(pathname);
            if (!m) return send(404, "<h1>Not Found</h1>", "text/html");
            const call = m[1];
            if (call === "") return send(200, xml({ returncode: "SUCCESS", version: "2.0", apiVersion: "2.0", bbbVersion: "3.0.4" }));
            this.calls.push(call);
            if (!checksumValid(call, rawQuery, this.options.secret)) return send(200, failed("checksumError", "Checksums do not match"));
            const p = new URLSearchParams(rawQuery);
            const id = p.get("meetingID") ?? "";
            const meeting = this.meetings.get(id);
            switch (call) {
                case "getMeetings": {
                    const list = [...this.meetings].map(([mid, mt]) => `<meeting><meetingID>${mid}</meetingID><meetingName>${mt.name}</meetingName></meeting>`);
                    return send(200, xml({ returncode: "SUCCESS", meetings: list.join("") }));
                }
                case "create":
                    if (!id) return send(200, failed("missingParamMeetingID", "You must specify a meeting ID for the meeting."));
                    if (!meeting) this.meetings.set(id, { name: p.get("name") ?? id, joined: 0 });
                    return send(200, xml({ returncode: "SUCCESS", meetingID: id, internalMeetingID: crypto.randomBytes(20).toString("hex"), hasUserJoined: "false" }));
                case "join": {
                    // Scalelite redirects to the meeting's server, which answers (here: the same fake, re-signed).
                    if (Array.isArray(this.options.scalelite) && !p.has("node")) {
                        if (!meeting) return send(200, NOT_FOUND);
                        p.delete("checksum");
                        p.set("node", "bbb-1");
                        return send(302, "", "text/html", { location: signedUrl("/bigbluebutton/api", "join", Object.fromEntries(p), this.options.secret) });
                    }
                    if (this.options.failJoin) return send(200, failed("invalidMeetingIdentifier", "The meeting ID that you supplied did not match any existing meetings"));
                    if (!meeting) return send(200, NOT_FOUND);
                    if (!p.get("fullName") || !["MODERATOR", "VIEWER"].includes(p.get("role") ?? "")) return send(200, failed("missingParamFullName", "bad join"));
                    meeting.joined++;
                    if (p.get("redirect") !== "false") return send(302, "", "text/html", { location: `https://localhost:${this.port}/html5client/join?sessionToken=x` });
                    return send(200, xml({ returncode: "SUCCESS", messageKey: "successfullyJoined", meeting_id: "internal", session_token: "x", url: "https://localhost/html5client/join" }));
                }
                case "isMeetingRunning":
                    return send(200, xml({ returncode: "SUCCESS", running: "false" }));
                case "getMeetingInfo":
                    if (!meeting || this.options.forgetMeetings) return send(200, NOT_FOUND);
                    return send(200, xml({ returncode: "SUCCESS", meetingName: meeting.name, meetingID: id, running: "false" }));
                case "end":
                    if (!meeting) return send(200, NOT_FOUND);
                    this.meetings.delete(id);
                    return send(200, xml({ returncode: "SUCCESS", messageKey: "sentEndMeetingRequest", message: "A request to end the meeting was sent." }));
                default:
                    return send(200, failed("unsupportedRequest", "This request is not supported."));
            }
        });
        await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
        this.port = (this.server.address() as net.AddressInfo).port;
        return this;
    }

    stop(): Promise<void> {
        this.server.closeAllConnections();
        return new Promise((resolve) => this.server.close(() => resolve()));
    }
}

// ------------------------------------------------------------------------------------------ setup

let dir: string;
let good: Cert;
let otherName: Cert;
let caFile: string;
const servers: { stop(): Promise<void> }[] = [];

async function turnServer(cert: Cert): Promise<number> {
    const server = tls.createServer({ ...cert }, (socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    servers.push({ stop: () => new Promise((resolve) => server.close(() => resolve())) });
    return (server.address() as net.AddressInfo).port;
}

async function fakeBbb(options: Partial<FakeOptions> = {}): Promise<FakeBbb> {
    const fake = await new FakeBbb({ secret: SECRET, ...options }, good).start();
    servers.push(fake);
    return fake;
}

async function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; lines: string[]; err: string }> {
    const lines: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (l) => lines.push(...l.split("\n")), err: (l) => err.push(l), env };
    const code = await main(["--ca", caFile, "--timeout", "3", "--wait", "1", ...args], io);
    return { code, lines, err: err.join("\n") };
}

const server = (id: string, state = "enabled", online = "online"): ServerEntry => ({
    id,
    url: `https://${id}/bigbluebutton/api`,
    secret: `node-secret-of-${id}`,
    state,
    load: 2,
    online,
});

beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-smoke-"));
    good = selfSigned(dir, "localhost", "DNS:localhost,IP:127.0.0.1");
    otherName = selfSigned(dir, "turn.example.org", "DNS:turn.example.org");
    caFile = path.join(dir, "ca.pem");
    fs.writeFileSync(caFile, good.cert + otherName.cert);
});

afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// ------------------------------------------------------------------------------------------ tests

test("the checksum is sha1(call + query + secret): the API docs' test vector", () => {
    expect(checksum("create", "name=Test+Meeting&meetingID=abc123&attendeePW=111222&moderatorPW=333444", SECRET)).toBe(
        "1fcbb0c4fc1f039f73aa6d697d2db9ba7f803f17",
    );
    const url = signedUrl("https://bbb.example.org/bigbluebutton/api/", "create", { name: "Test Meeting", meetingID: "abc123", attendeePW: "111222", moderatorPW: "333444" }, SECRET);
    expect(url).toBe(
        "https://bbb.example.org/bigbluebutton/api/create?name=Test+Meeting&meetingID=abc123&attendeePW=111222&moderatorPW=333444&checksum=1fcbb0c4fc1f039f73aa6d697d2db9ba7f803f17",
    );
});

test("a correct single server and TURN: every check passes, exit 0", async () => {
    const bbb = await fakeBbb();
    const turn = await turnServer(good);
    const { code, lines } = await run(["--url", bbb.apiUrl, "--secret", SECRET, "--turn", `localhost:${turn}`, "--verbose"]);
    expect(lines.filter((l) => l.startsWith("FAIL"))).toEqual([]);
    expect(code).toBe(0);
    const passes = lines.filter((l) => l.startsWith("PASS"));
    expect(passes.map((l) => l.replace(/bbb-smoke-[0-9a-f]+/, "bbb-smoke-X").replace(/expires .*/, "expires ..."))).toEqual([
        `PASS API reachable at ${bbb.apiUrl}: API version 2.0, BigBlueButton 3.0.4`,
        "PASS signed getMeetings: SUCCESS, 0 meetings running",
        "PASS create meeting bbb-smoke-X",
        "PASS join URLs produced for a moderator and an attendee",
        "PASS join as moderator (redirect=false): SUCCESS",
        "PASS join as attendee (redirect=false): SUCCESS",
        "PASS isMeetingRunning: SUCCESS (running: false)",
        "PASS getMeetingInfo: meeting bbb-smoke-X found",
        "PASS end meeting bbb-smoke-X: SUCCESS",
        "PASS getMeetingInfo after end: notFound",
        `PASS TURN localhost:${turn} over TLS: valid certificate for localhost, expires ...`,
    ]);
    // --verbose shows the signed join URLs, each valid for the server.
    const joinUrls = lines.filter((l) => / join URL: /.test(l)).map((l) => l.split(" join URL: ")[1]);
    expect(joinUrls).toHaveLength(2);
    expect(joinUrls[0]).toMatch(/\/join\?fullName=Smoke\+Moderator&meetingID=bbb-smoke-[0-9a-f]+&role=MODERATOR&redirect=false&checksum=[0-9a-f]{40}$/);
    expect(joinUrls[1]).toContain("&role=VIEWER&redirect=false&checksum=");
    expect(lines.join("\n")).not.toContain(SECRET);
    expect(bbb.meetings.size).toBe(0);
    expect(bbb.calls).toEqual(["getMeetings", "create", "join", "join", "isMeetingRunning", "getMeetingInfo", "end", "getMeetingInfo"]);
});

test("a wrong secret: the line says the secret is wrong, the secret is never printed, exit 1", async () => {
    const bbb = await fakeBbb({ scalelite: [server("bbb-1.example.org")] });
    const wrong = "0123456789abcdef-wrong-secret";
    const { code, lines } = await run(["--url", bbb.apiUrl, "--secret", wrong, "--scalelite", "--verbose"]);
    expect(code).toBe(1);
    expect(lines).toContain("FAIL signed getMeetings: checksumError: the secret is wrong (the server rejected the checksum)");
    expect(lines).toContain("FAIL test meeting: not tried: the secret is wrong");
    expect(lines.find((l) => l.startsWith("FAIL Scalelite servers"))).toMatch(/checksumError: the secret is wrong/);
    expect(lines[0]).toMatch(/^PASS API reachable/);
    const text = lines.join("\n");
    expect(text).not.toContain(wrong);
    expect(text).not.toContain(SECRET);
    expect(bbb.calls).not.toContain("create");
});

test("a server that never knows the meeting fails getMeetingInfo; the meeting is still ended", async () => {
    const bbb = await fakeBbb({ forgetMeetings: true });
    const { code, lines } = await run(["--url", bbb.apiUrl, "--secret", SECRET]);
    expect(code).toBe(1);
    expect(lines.filter((l) => l.startsWith("FAIL"))).toEqual([
        "FAIL getMeetingInfo: the meeting just created is not found (FAILED notFound: We could not find a meeting with that meeting ID)",
    ]);
    expect(bbb.calls).toContain("end");
    expect(bbb.meetings.size).toBe(0);
});

test("the meeting is ended even when a check after create failed", async () => {
    const bbb = await fakeBbb({ failJoin: true });
    const { code, lines } = await run(["--url", bbb.apiUrl, "--secret", SECRET]);
    expect(code).toBe(1);
    expect(lines.filter((l) => l.startsWith("FAIL")).map((l) => l.split(":")[0])).toEqual([
        "FAIL join as moderator (redirect=false)",
        "FAIL join as attendee (redirect=false)",
    ]);
    expect(lines.find((l) => l.startsWith("PASS end meeting"))).toBeDefined();
    expect(bbb.calls.slice(-2)).toEqual(["end", "getMeetingInfo"]);
    expect(bbb.meetings.size).toBe(0);
});

test("pool: every Scalelite server enabled and online passes, join is followed through Scalelite's redirect", async () => {
    const bbb = await fakeBbb({ scalelite: [server("bbb-1.example.org"), server("bbb-2.example.org")] });
    const { code, lines } = await run(["--url", bbb.apiUrl, "--secret", SECRET, "--scalelite"]);
    expect(lines.filter((l) => l.startsWith("FAIL"))).toEqual([]);
    expect(code).toBe(0);
    expect(lines).toContain("PASS Scalelite server bbb-1.example.org: enabled, online, load 2");
    expect(lines).toContain("PASS Scalelite server bbb-2.example.org: enabled, online, load 2");
    expect(lines.join("\n")).not.toContain("node-secret-of");
    expect(bbb.calls.filter((c) => c === "join")).toHaveLength(4); // Scalelite's redirect, then the node
});

test("pool: a cordoned server and an offline server fail the pool check", async () => {
    const bbb = await fakeBbb({
        scalelite: [server("bbb-1.example.org"), server("bbb-2.example.org", "cordoned"), server("bbb-3.example.org", "enabled", "offline")],
    });
    const { code, lines } = await run(["--url", bbb.apiUrl, "--secret", SECRET, "--scalelite"]);
    expect(code).toBe(1);
    expect(lines.filter((l) => l.startsWith("FAIL"))).toEqual([
        "FAIL Scalelite server bbb-2.example.org: cordoned (not enabled)",
        "FAIL Scalelite server bbb-3.example.org: offline",
    ]);
});

test("pool: no server configured fails; without the admin API, getMeetings through Scalelite and the per-server check skipped", async () => {
    const none = await fakeBbb({ scalelite: [] });
    const a = await run(["--url", none.apiUrl, "--secret", SECRET, "--scalelite"]);
    expect(a.code).toBe(1);
    expect(a.lines).toContain("FAIL Scalelite servers: no server is configured in Scalelite");

    const old = await fakeBbb({ scalelite: "no-admin-api" });
    const b = await run(["--url", old.apiUrl, "--secret", SECRET, "--scalelite"]);
    expect(b.code).toBe(0);
    expect(b.lines[b.lines.length - 1]).toBe(
        "PASS Scalelite pool: getMeetings through Scalelite: SUCCESS, 0 meetings running (per-server check skipped: no admin API at /scalelite/api/getServers)",
    );
});

test("TURN with a certificate for another name fails", async () => {
    const bbb = await fakeBbb();
    const turn = await turnServer(otherName);
    const { code, lines } = await run(["--url", bbb.apiUrl, "--secret", SECRET, "--turn", "localhost", "--turn-port", String(turn)]);
    expect(code).toBe(1);
    expect(lines.filter((l) => l.startsWith("FAIL"))).toEqual([
        expect.stringMatching(new RegExp(`^FAIL TURN localhost:${turn} over TLS: Hostname/IP does not match certificate's altnames.*turn\\.example\\.org`)),
    ]);
});

test("--stack reads the outputs through the pulumi CLI: pool from hosts, TURN from turnHost, unregistered hosts fail", async () => {
    const bbb = await fakeBbb({ scalelite: [server("bbb-1.example.org")] });
    const turn = await turnServer(good);
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin, { recursive: true });
    const outputs = {
        bbbApiUrl: bbb.apiUrl,
        bbbSecret: SECRET,
        consumerSecrets: { default: SECRET, moodle: "consumer-secret-moodle" },
        turnHost: "localhost",
        hosts: [
            { name: "turn", role: "turn", fqdn: "localhost", ipv4: "127.0.0.1" },
            { name: "scalelite", role: "scalelite", fqdn: "localhost", ipv4: "127.0.0.1" },
            { name: "bbb-1", role: "bbb", fqdn: "bbb-1.example.org", ipv4: "192.0.2.1" },
            { name: "bbb-2", role: "bbb", fqdn: "bbb-2.example.org", ipv4: "192.0.2.2" },
        ],
    };
    fs.writeFileSync(path.join(dir, "outputs.json"), JSON.stringify(outputs));
    fs.writeFileSync(path.join(bin, "pulumi"), `#!/bin/sh\necho "$@" > "${dir}/pulumi-args"\n/bin/cat "${dir}/outputs.json"\n`, { mode: 0o755 });

    const { code, lines } = await run(["--stack", "dev", "--turn-port", String(turn)], { PATH: bin });
    expect(fs.readFileSync(path.join(dir, "pulumi-args"), "utf8").trim()).toBe("stack output --json --show-secrets --stack dev");
    expect(code).toBe(1);
    expect(lines).toContain("PASS Scalelite server bbb-1.example.org: enabled, online, load 2");
    expect(lines.filter((l) => l.startsWith("FAIL"))).toEqual(["FAIL Scalelite server for bbb-2: bbb-2.example.org is not registered in Scalelite"]);
    expect(lines.find((l) => l.startsWith(`PASS TURN localhost:${turn}`))).toBeDefined();
});

test("usage errors exit 2: --url without --secret, neither --url nor --stack, --stack without the pulumi CLI", async () => {
    const a = await run(["--url", "https://bbb.example.org/bigbluebutton/api"]);
    expect(a.code).toBe(2);
    expect(a.err).toContain("--url needs --secret");
    expect(a.lines).toEqual([]);

    expect((await run([])).code).toBe(2);
    expect((await run(["--url", "not a url", "--secret", "x"])).code).toBe(2);

    const empty = fs.mkdtempSync(path.join(dir, "empty-"));
    const c = await run(["--stack", "dev"], { PATH: empty });
    expect(c.code).toBe(2);
    expect(c.err).toContain("the pulumi CLI is not installed");
});
