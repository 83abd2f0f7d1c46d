// npm run smoke -- --stack <name> | --url <api url> --secret <secret> [--turn <host>] [--scalelite]
//   [--ca <file>] [--turn-port <port>] [--timeout <s>] [--wait <s>] [--verbose]
// An end-to-end acceptance test of a deployed platform, through its public API only:
//  1. the API answers (GET <api url>, no checksum) and reports its version;
//  2. a signed getMeetings succeeds (a checksumError means the secret is wrong);
//  3. a test meeting: create, join URLs for a moderator and an attendee, join (redirect=false) as both,
//     isMeetingRunning, getMeetingInfo, end (always tried once created), then getMeetingInfo says notFound;
//  4. pool topology: every Scalelite server enabled and online (Scalelite's admin API getServers), and, with
//     --stack, every BBB host registered; without the admin API, a signed getMeetings through Scalelite;
//  5. TURN answers TLS on 443 with a valid certificate for its name.
// Each check prints `PASS <what>` or `FAIL <what>: <why>`; secrets are never printed. Exit 0: all passed;
// 1: a check failed; 2: usage error (or the stack's outputs could not be read).
// With --stack, the API URL, secret, TURN host and hosts come from `pulumi stack output --show-secrets`.
// The secret may also come from the BBB_SECRET environment variable instead of --secret.
// --ca replaces the trusted certificate authorities (PEM file) for the API and TURN checks.
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as net from "net";
import * as tls from "tls";
import { URL } from "url";
import { checksum, Io, mask, reason, signedUrl, stackOutputs, UsageError, xmlTag } from "./bbb-api";

const USAGE = `usage: npm run smoke -- --stack <name> [options]
       npm run smoke -- --url <https://host/bigbluebutton/api> --secret <secret> [--turn <host>] [--scalelite] [options]
options: --ca <pem file>  --turn-port <port> (default 443)  --timeout <seconds per request> (default 15)
         --wait <seconds for the meeting to go after end> (default 30)  --verbose`;

export interface HostSummary {
    name: string;
    role: string;
    fqdn: string;
    ipv4?: string;
    ipv6?: string;
}

interface Target {
    apiUrl: string;
    secret: string;
    /** Every secret that must never be printed. */
    secrets: string[];
    turn?: { host: string; port: number };
    pool: boolean;
    hosts?: HostSummary[];
    ca?: Buffer;
    timeoutMs: number;
    waitMs: number;
    verbose: boolean;
}

// ---------------------------------------------------------------------------------------------- HTTP

interface Answer {
    status: number;
    contentType: string;
    location?: string;
    body: string;
    url: string;
}

function get(url: string, t: Target): Promise<Answer> {
    const u = new URL(url);
    const headers = { "user-agent": "bbb-smoke", accept: "*/*" };
    return new Promise<Answer>((resolve, reject) => {
        const onAnswer = (res: http.IncomingMessage) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("error", reject);
            res.on("end", () =>
                resolve({
                    status: res.statusCode ?? 0,
                    contentType: String(res.headers["content-type"] ?? ""),
                    location: res.headers.location,
                    body: Buffer.concat(chunks).toString("utf8"),
                    url,
                }),
            );
        };
        const req =
            u.protocol === "https:"
                ? https.request(u, { method: "GET", headers, agent: false, ca: t.ca, timeout: t.timeoutMs }, onAnswer)
                : u.protocol === "http:"
                  ? http.request(u, { method: "GET", headers, agent: false, timeout: t.timeoutMs }, onAnswer)
                  : undefined;
        if (!req) return reject(new Error(`unsupported protocol ${u.protocol}`));
        req.on("timeout", () => req.destroy(new Error(`no answer within ${t.timeoutMs / 1000} s`)));
        req.on("error", reject);
        req.end();
    });
}

/** GET, following redirects (Scalelite answers join with a redirect to the BBB server of the meeting). */
async function getFollowing(url: string, t: Target, hops = 5): Promise<Answer> {
    let answer = await get(url, t);
    for (let i = 0; i < hops && [301, 302, 303, 307, 308].includes(answer.status) && answer.location; i++) {
        answer = await get(new URL(answer.location, answer.url).toString(), t);
    }
    return answer;
}

// ---------------------------------------------------------------------------------------------- BBB API

interface ApiAnswer {
    ok: boolean;
    returncode?: string;
    messageKey?: string;
    message?: string;
    body: string;
    /** Why the call did not succeed, for a FAIL line. */
    why: string;
}

function apiAnswer(a: Answer): ApiAnswer {
    const returncode = xmlTag(a.body, "returncode");
    const messageKey = xmlTag(a.body, "messageKey");
    const message = xmlTag(a.body, "message");
    const base = { returncode, messageKey, message, body: a.body };
    if (returncode === "SUCCESS") return { ...base, ok: true, why: "" };
    if (returncode === undefined) {
        const type = a.contentType.split(";")[0] || "no content type";
        return { ...base, ok: false, why: `HTTP ${a.status} (${type}) without a BBB <returncode>` };
    }
    let why = `${returncode}${messageKey ? ` ${messageKey}` : ""}${message ? `: ${message}` : ""}`;
    if (messageKey === "checksumError") why = `checksumError: the secret is wrong (the server rejected the checksum)`;
    return { ...base, ok: false, why };
}

async function call(t: Target, name: string, params: Record<string, string>, follow = false): Promise<ApiAnswer> {
    const url = signedUrl(t.apiUrl, name, params, t.secret);
    try {
        return apiAnswer(follow ? await getFollowing(url, t) : await get(url, t));
    } catch (err) {
        return { ok: false, body: "", why: reason(err) };
    }
}

// ---------------------------------------------------------------------------------------------- checks

class Report {
    failures = 0;
    constructor(
        private readonly io: Io,
        private readonly secrets: string[],
    ) {}
    pass(what: string): void {
        this.io.out(mask(`PASS ${what}`, this.secrets));
    }
    fail(what: string, why: string): void {
        this.failures++;
        this.io.out(mask(`FAIL ${what}: ${why}`, this.secrets));
    }
    info(text: string): void {
        this.io.out(mask(text, this.secrets));
    }
    /** A secret learnt on the way (a Scalelite server's), never to be printed either. */
    hide(secret: string): void {
        this.secrets.push(secret);
    }
}

async function checkReachable(t: Target, r: Report): Promise<void> {
    const what = `API reachable at ${t.apiUrl}`;
    try {
        const a = apiAnswer(await get(t.apiUrl, t));
        if (!a.ok) return r.fail(what, a.why);
        const version = xmlTag(a.body, "version");
        if (!version) return r.fail(what, "SUCCESS but no <version> in the answer");
        const bbb = xmlTag(a.body, "bbbVersion");
        r.pass(`${what}: API version ${version}${bbb ? `, BigBlueButton ${bbb}` : ""}`);
    } catch (err) {
        r.fail(what, reason(err));
    }
}

/** false when the secret is wrong. */
async function checkSigned(t: Target, r: Report, what = "signed getMeetings", note = ""): Promise<boolean> {
    const a = await call(t, "getMeetings", {});
    if (!a.ok) {
        r.fail(what, `${a.why}${note}`);
        return a.messageKey !== "checksumError";
    }
    const count = (a.body.match(/<meeting>/g) ?? []).length;
    r.pass(`${what}: SUCCESS, ${count} meeting${count === 1 ? "" : "s"} running${note}`);
    return true;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function checkMeeting(t: Target, r: Report): Promise<void> {
    const meetingID = `bbb-smoke-${crypto.randomBytes(6).toString("hex")}`;
    const create = await call(t, "create", { meetingID, name: "bbb smoke test", record: "false" });
    if (!create.ok) {
        r.fail(`create meeting ${meetingID}`, create.why);
        // An answer lost on the way may still have created it.
        if (!create.returncode) await call(t, "end", { meetingID });
        return;
    }
    r.pass(`create meeting ${meetingID}`);

    let ended: ApiAnswer | undefined;
    try {
        const joins = [
            { who: "moderator", role: "MODERATOR", fullName: "Smoke Moderator" },
            { who: "attendee", role: "VIEWER", fullName: "Smoke Attendee" },
        ].map((j) => ({ ...j, url: signedUrl(t.apiUrl, "join", { fullName: j.fullName, meetingID, role: j.role, redirect: "false" }, t.secret) }));
        r.pass("join URLs produced for a moderator and an attendee");
        if (t.verbose) for (const j of joins) r.info(`  ${j.who} join URL: ${j.url}`);

        for (const j of joins) {
            const a = await call(t, "join", { fullName: j.fullName, meetingID, role: j.role, redirect: "false" }, true);
            if (a.ok) r.pass(`join as ${j.who} (redirect=false): SUCCESS`);
            else r.fail(`join as ${j.who} (redirect=false)`, a.why);
        }

        const running = await call(t, "isMeetingRunning", { meetingID });
        if (running.ok) r.pass(`isMeetingRunning: SUCCESS (running: ${xmlTag(running.body, "running") ?? "not said"})`);
        else r.fail("isMeetingRunning", running.why);

        const info = await call(t, "getMeetingInfo", { meetingID });
        const found = xmlTag(info.body, "meetingID");
        if (info.ok && found === meetingID) r.pass(`getMeetingInfo: meeting ${meetingID} found`);
        else if (info.ok) r.fail("getMeetingInfo", `SUCCESS but for meeting ${found ?? "(none)"}, not ${meetingID}`);
        else r.fail("getMeetingInfo", info.messageKey === "notFound" ? `the meeting just created is not found (${info.why})` : info.why);
    } finally {
        ended = await call(t, "end", { meetingID });
    }

    if (!ended.ok) return r.fail(`end meeting ${meetingID}`, ended.why);
    r.pass(`end meeting ${meetingID}: SUCCESS`);

    // BBB forgets an ended meeting a moment after end answers.
    const deadline = Date.now() + t.waitMs;
    for (;;) {
        const info = await call(t, "getMeetingInfo", { meetingID });
        if (info.messageKey === "notFound") return r.pass("getMeetingInfo after end: notFound");
        if (Date.now() >= deadline) {
            const now = info.ok ? "the meeting is still there" : info.why;
            return r.fail("getMeetingInfo after end", `expected notFound within ${t.waitMs / 1000} s, ${now}`);
        }
        await sleep(Math.min(1000, Math.max(0, deadline - Date.now())));
    }
}

interface ScaleliteServer {
    id?: unknown;
    url?: unknown;
    state?: unknown;
    enabled?: unknown;
    load?: unknown;
    online?: unknown;
    secret?: unknown;
}

/** Scalelite's base URL: the API URL without /bigbluebutton/api. */
export function scaleliteBase(apiUrl: string): string {
    const u = new URL(apiUrl);
    const path = u.pathname.replace(/\/+$/, "");
    return `${u.origin}${path.endsWith("/bigbluebutton/api") ? path.slice(0, -"/bigbluebutton/api".length) : ""}`;
}

async function checkPool(t: Target, r: Report): Promise<void> {
    const url = `${scaleliteBase(t.apiUrl)}/scalelite/api/getServers?checksum=${checksum("getServers", "", t.secret)}`;
    let a: Answer;
    try {
        a = await get(url, t);
    } catch (err) {
        return r.fail("Scalelite servers", reason(err));
    }
    let json: unknown;
    try {
        json = JSON.parse(a.body);
    } catch {
        json = undefined;
    }
    if (a.status === 404 && json && (json as { error?: unknown }).error === "No servers are configured") {
        return r.fail("Scalelite servers", "no server is configured in Scalelite");
    }
    const xml = apiAnswer(a);
    // Without the admin API: a plain 404, or Rails' catch-all (unsupportedRequest) in Scalelite before 1.5.1.
    if ((a.status === 404 && !Array.isArray(json)) || xml.messageKey === "unsupportedRequest") {
        await checkSigned(t, r, "Scalelite pool: getMeetings through Scalelite", " (per-server check skipped: no admin API at /scalelite/api/getServers)");
        return;
    }
    if (xml.returncode !== undefined) return r.fail("Scalelite servers", xml.why.replace("the server rejected", "Scalelite rejected"));
    if (a.status !== 200 || !Array.isArray(json)) {
        return r.fail("Scalelite servers", `getServers answered HTTP ${a.status} without a list of servers`);
    }
    const servers = (json as unknown[]).filter((s): s is ScaleliteServer => typeof s === "object" && s !== null);
    // Never print a server's secret.
    for (const s of servers) if (typeof s.secret === "string") r.hide(s.secret);
    if (servers.length === 0) return r.fail("Scalelite servers", "no server is configured in Scalelite");
    const hostsOfServers = new Set<string>();
    for (const s of servers) {
        const id = String(s.id ?? "?");
        let host = "";
        try {
            host = new URL(String(s.url)).hostname;
            hostsOfServers.add(host);
        } catch {
            // a url Scalelite could not call either; reported below through its state
        }
        const what = `Scalelite server ${id}${host && host !== id ? ` (${host})` : ""}`;
        const state = typeof s.state === "string" && s.state ? s.state : s.enabled === true ? "enabled" : s.enabled === false ? "disabled" : "unknown";
        const online = s.online === true || s.online === "online" || s.online === "true";
        const load = s.load === undefined || s.load === null ? "unavailable" : String(s.load);
        const problems = [...(state === "enabled" ? [] : [`${state} (not enabled)`]), ...(online ? [] : ["offline"])];
        if (problems.length === 0) r.pass(`${what}: enabled, online, load ${load}`);
        else r.fail(what, problems.join(", "));
    }
    for (const h of (t.hosts ?? []).filter((h) => h.role === "bbb")) {
        if (!hostsOfServers.has(h.fqdn)) r.fail(`Scalelite server for ${h.name}`, `${h.fqdn} is not registered in Scalelite`);
    }
}

function probeTls(host: string, port: number, t: Target): Promise<tls.PeerCertificate> {
    return new Promise((resolve, reject) => {
        const socket = tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, ca: t.ca, rejectUnauthorized: true });
        socket.setTimeout(t.timeoutMs, () => socket.destroy(new Error(`no TLS handshake within ${t.timeoutMs / 1000} s`)));
        socket.once("secureConnect", () => {
            const cert = socket.getPeerCertificate();
            socket.end();
            socket.destroy();
            resolve(cert);
        });
        socket.once("error", reject);
    });
}

async function checkTurn(t: Target, r: Report): Promise<void> {
    const { host, port } = t.turn!;
    const what = `TURN ${host}:${port} over TLS`;
    try {
        const cert = await probeTls(host, port, t);
        const expires = new Date(cert.valid_to);
        const days = Math.floor((expires.getTime() - Date.now()) / 86400000);
        r.pass(`${what}: valid certificate for ${host}, expires ${expires.toISOString().slice(0, 10)} (in ${days} days)`);
    } catch (err) {
        r.fail(what, reason(err));
    }
}

export async function runChecks(t: Target, io: Io): Promise<number> {
    const r = new Report(io, t.secrets);
    await checkReachable(t, r);
    const secretOk = await checkSigned(t, r);
    if (secretOk) await checkMeeting(t, r);
    else r.fail("test meeting", "not tried: the secret is wrong");
    if (t.pool) await checkPool(t, r);
    if (t.turn) await checkTurn(t, r);
    return r.failures === 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------- CLI

const VALUED = ["--stack", "--url", "--secret", "--turn", "--turn-port", "--ca", "--timeout", "--wait"];
const FLAGS = ["--scalelite", "--verbose", "--help"];

export function parseArgs(args: string[]): Record<string, string | true> {
    const out: Record<string, string | true> = {};
    for (let i = 0; i < args.length; i++) {
        const a = args[i];
        if (FLAGS.includes(a)) out[a] = true;
        else if (VALUED.includes(a)) {
            const v = args[i + 1];
            if (v === undefined || v.startsWith("--")) throw new UsageError(`${a} needs a value`);
            out[a] = v;
            i++;
        } else throw new UsageError(`unknown argument ${a.startsWith("--") ? a : "(a value without an option)"}`);
    }
    return out;
}

function seconds(value: string | true | undefined, name: string, fallback: number): number {
    if (value === undefined) return fallback * 1000;
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0) throw new UsageError(`${name} takes a number of seconds`);
    return n * 1000;
}

function port(value: string, name: string): number {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`${name} takes a port number (1-65535)`);
    return n;
}

function apiUrlOf(value: string): string {
    let u: URL;
    try {
        u = new URL(value);
    } catch {
        throw new UsageError(`--url is not a URL: ${value}`);
    }
    if (u.protocol !== "https:" && u.protocol !== "http:") throw new UsageError(`--url must be an https:// URL: ${value}`);
    return value.replace(/\/+$/, "");
}

function target(opts: Record<string, string | true>, env: NodeJS.ProcessEnv): Target {
    const str = (k: string) => (typeof opts[k] === "string" ? (opts[k] as string) : undefined);
    const stack = str("--stack");
    const url = str("--url");
    if (stack && url) throw new UsageError("give either --stack or --url, not both");
    if (!stack && !url) throw new UsageError("give --stack <name>, or --url <api url> with --secret <secret>");

    let apiUrl: string;
    let secret: string | undefined;
    let secrets: string[] = [];
    let turnHost = str("--turn");
    let hosts: HostSummary[] | undefined;
    if (stack) {
        const outputs = stackOutputs(stack, env);
        const consumers = outputs.consumerSecrets && typeof outputs.consumerSecrets === "object" ? Object.values(outputs.consumerSecrets) : [];
        secrets = consumers.filter((s): s is string => typeof s === "string");
        if (typeof outputs.bbbApiUrl !== "string" || typeof outputs.bbbSecret !== "string") {
            throw new UsageError(`stack ${stack} has no bbbApiUrl and bbbSecret outputs: has it been deployed?`);
        }
        apiUrl = apiUrlOf(outputs.bbbApiUrl);
        secret = outputs.bbbSecret;
        if (str("--secret")) throw new UsageError("--secret comes from the stack with --stack");
        if (!turnHost && typeof outputs.turnHost === "string") turnHost = outputs.turnHost;
        hosts = Array.isArray(outputs.hosts) ? (outputs.hosts as HostSummary[]) : undefined;
    } else {
        apiUrl = apiUrlOf(url!);
        secret = str("--secret") ?? env.BBB_SECRET;
        if (!secret) throw new UsageError("--url needs --secret <secret> (or BBB_SECRET in the environment)");
    }

    let turn: Target["turn"];
    if (turnHost) {
        const m = /^([^:]+):(\d+)$/.exec(turnHost);
        turn = m ? { host: m[1], port: port(m[2], "--turn") } : { host: turnHost, port: 443 };
        if (str("--turn-port")) turn.port = port(str("--turn-port")!, "--turn-port");
    } else if (str("--turn-port")) throw new UsageError("--turn-port needs a TURN host (--turn, or the stack's turnHost)");

    let ca: Buffer | undefined;
    if (str("--ca")) {
        try {
            ca = fs.readFileSync(str("--ca")!);
        } catch (err) {
            throw new UsageError(`--ca: cannot read ${str("--ca")}: ${reason(err)}`);
        }
    }
    return {
        apiUrl,
        secret,
        secrets: [secret, ...secrets],
        turn,
        pool: opts["--scalelite"] === true || (hosts ?? []).some((h) => h.role === "scalelite"),
        hosts,
        ca,
        timeoutMs: seconds(opts["--timeout"], "--timeout", 15),
        waitMs: seconds(opts["--wait"], "--wait", 30),
        verbose: opts["--verbose"] === true,
    };
}

const defaultIo: Io = { out: (l) => console.log(l), err: (l) => console.error(l), env: process.env };

export async function main(args: string[], io: Io = defaultIo): Promise<number> {
    let t: Target;
    try {
        const opts = parseArgs(args);
        if (opts["--help"]) {
            io.out(USAGE);
            return 0;
        }
        t = target(opts, io.env);
    } catch (err) {
        if (!(err instanceof UsageError)) throw err;
        io.err(`smoke: ${err.message}`);
        io.err(USAGE);
        return 2;
    }
    return runChecks(t, io);
}

if (require.main === module) {
    main(process.argv.slice(2)).then(
        (code) => (process.exitCode = code),
        (err) => {
            console.error(`smoke: ${reason(err)}`);
            process.exitCode = 2;
        },
    );
}
