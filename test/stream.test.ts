// npm run stream (scripts/stream.ts) against stand-ins on 127.0.0.1: BBB's API (getMeetingInfo, checksums checked
// as bbb-web checks them) and the streaming host's API (nginx's Basic authentication in front of
// BBB-Streaming-Server's controller, modelled on THM-Health/BBB-Streaming-Server v1.1.1 src/controller/app.ts:
// POST / validates joinUrl and rtmpUrl (422), keys the job on sha256(meetingID@host) and answers 201 with
// { id, progress }; GET /:jobId answers { id, progress, state } or 404; POST /:jobId/stop answers 202, 404 for no
// job, 400 when the job is neither running nor waiting). The stack's outputs come from a stand-in `pulumi`.
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { checksum, Io, query } from "../scripts/bbb-api";
import { joinUrl, jobId, main, streamName } from "../scripts/stream";
import { checksumValid } from "./bbb-checksum";

const SECRET = "a3f1c0de5b7e4d2f9c8b7a6e5d4c3b2a1f0e9d8c";
const PASSWORD = "Zq8vJ3kR1mT6yW0pX4bN7cL2hF5dS9gA";
const CREATE_TIME = "1795935873000";

const xml = (fields: Record<string, string>) => `<?xml version="1.0"?>\n<response>${Object.entries(fields).map(([k, v]) => `<${k}>${v}</${k}>`).join("")}</response>`;

interface Job {
    id: string;
    data: { joinUrl: string; rtmpUrl: string };
    status: string;
}

/** BBB's API (getMeetingInfo) and the streaming API on one port, as two origins would answer. */
class Stand {
    readonly meetings = new Set<string>(["webinar-1"]);
    readonly jobs = new Map<string, Job>();
    readonly requests: { method: string; url: string; authorization?: string; body: string }[] = [];
    bbbSecret = SECRET;
    /** getMeetingInfo answers without a createTime (as no BBB does). */
    noCreateTime = false;
    /** The streaming API echoes what it was sent: in 201's id and status ("201"), or in 422's errors ("422"). */
    echo?: "201" | "422";
    private server!: http.Server;
    port = 0;

    async start(): Promise<this> {
        this.server = http.createServer((req, res) => {
            let body = "";
            req.on("data", (d) => (body += d));
            req.on("end", () => {
                this.requests.push({ method: req.method ?? "", url: req.url ?? "", authorization: req.headers.authorization, body });
                const [pathname, rawQuery = ""] = (req.url ?? "/").split(/\?(.*)/s);
                const send = (status: number, text: string, type = "application/json") => {
                    res.writeHead(status, { "content-type": type });
                    res.end(text);
                };
                if (pathname === "/bigbluebutton/api/getMeetingInfo") {
                    if (!checksumValid("getMeetingInfo", rawQuery, this.bbbSecret)) return send(200, xml({ returncode: "FAILED", messageKey: "checksumError", message: "Checksums do not match" }), "text/xml");
                    const id = new URLSearchParams(rawQuery).get("meetingID") ?? "";
                    if (!this.meetings.has(id)) return send(200, xml({ returncode: "FAILED", messageKey: "notFound", message: "We could not find a meeting with that meeting ID" }), "text/xml");
                    return send(200, xml({ returncode: "SUCCESS", meetingID: id, ...(this.noCreateTime ? {} : { createTime: CREATE_TIME }), running: "true" }), "text/xml");
                }
                if (!pathname.startsWith("/api/")) return send(404, "not found", "text/plain");
                // nginx: auth_basic in front of the controller, the /api prefix stripped.
                if (req.headers.authorization !== `Basic ${Buffer.from(`bbb-streaming:${PASSWORD}`).toString("base64")}`) return send(401, "<html>401 Authorization Required</html>", "text/html");
                this.controller(req.method ?? "GET", pathname.slice("/api".length), body, send);
            });
        });
        await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
        this.port = (this.server.address() as net.AddressInfo).port;
        return this;
    }

    private controller(method: string, route: string, body: string, send: (status: number, text: string) => void): void {
        const m = /^\/([0-9a-f]{64})(\/stop)?$/.exec(route);
        if (method === "POST" && route === "/") {
            const data = JSON.parse(body || "{}") as Job["data"];
            if (this.echo === "201") return send(201, JSON.stringify({ id: data.joinUrl, progress: { status: data.joinUrl } }));
            if (this.echo === "422") return send(422, JSON.stringify({ errors: [{ type: "field", value: data.joinUrl, msg: "Invalid value", path: "joinUrl", location: "body" }] }));
            const errors = (["joinUrl", "rtmpUrl"] as const).filter((k) => !data[k]).map((k) => ({ type: "field", value: data[k], msg: "Invalid value", path: k, location: "body" }));
            if (errors.length) return send(422, JSON.stringify({ errors }));
            const url = new URL(data.joinUrl);
            const meeting = url.searchParams.get("meetingID");
            if (meeting === null) return send(422, JSON.stringify({ errors: [{ type: "field", msg: "Meeting ID not found in join url", path: "joinUrl", location: "body" }] }));
            const id = crypto.createHash("sha256").update(`${meeting}@${url.host}`).digest("hex");
            // A failed job is retried as it was first given (job.retry()); another is added anew.
            const failed = this.jobs.get(id)?.status === "failed";
            this.jobs.set(id, { id, data: failed ? this.jobs.get(id)!.data : data, status: "queued" });
            return send(201, JSON.stringify({ id, progress: { status: "queued", fps: 0, bitrate: 0 } }));
        }
        const job = m ? this.jobs.get(m[1]) : undefined;
        if (!m || !job) return send(404, m?.[2] ? "No stream running for this meeting" : "Job not found");
        const state = job.status === "queued" ? "waiting" : job.status === "failed" ? "failed" : "active";
        if (method === "GET" && !m[2]) return send(200, JSON.stringify({ id: job.id, progress: { status: job.status, fps: 30, bitrate: 3980 }, state }));
        if (method === "POST" && m[2]) {
            if (job.status === "queued") {
                this.jobs.delete(job.id);
                return send(202, JSON.stringify({ id: job.id, progress: { status: "stopped", fps: 0, bitrate: 0 } }));
            }
            if (!["running", "paused", "resuming", "pausing"].includes(job.status)) return send(400, JSON.stringify({ id: job.id, progress: { status: job.status } }));
            job.status = "stopping";
            return send(202, JSON.stringify({ id: job.id, progress: { status: "stopping", fps: 0, bitrate: 0 } }));
        }
        send(404, "not found");
    }

    stop(): Promise<void> {
        this.server.closeAllConnections();
        return new Promise((resolve) => this.server.close(() => resolve()));
    }
}

let dir: string;
let stand: Stand;
let bin: string;

beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "stream-"));
    stand = await new Stand().start();
    bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, "pulumi"), `#!/bin/sh\necho "$@" > "${dir}/pulumi-args"\n/bin/cat "${dir}/outputs.json"\n`, { mode: 0o755 });
});
afterAll(async () => {
    await stand.stop();
    fs.rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
    stand.jobs.clear();
    stand.requests.length = 0;
    stand.bbbSecret = SECRET;
    stand.noCreateTime = false;
    stand.echo = undefined;
    outputs({});
});

function outputs(extra: Record<string, unknown>): void {
    const base = `http://127.0.0.1:${stand.port}`;
    const all = {
        bbbApiUrl: `${base}/bigbluebutton/api`,
        bbbSecret: SECRET,
        streamingUrl: "https://streaming.example.org/",
        streamingApiUrl: `${base}/api/`,
        streamingApiPassword: PASSWORD,
        ...extra,
    };
    fs.writeFileSync(path.join(dir, "outputs.json"), JSON.stringify(Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined))));
}

async function run(args: string[], env: NodeJS.ProcessEnv = { PATH: bin }): Promise<{ code: number; out: string[]; err: string[] }> {
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (l) => out.push(l), err: (l) => err.push(l), env };
    return { code: await main(args, io), out, err };
}

const printed = (r: { out: string[]; err: string[] }) => [...r.out, ...r.err].join("\n");

test("the signer: BBB's own test vector (api.md, API Security Model), through the same query builder the join URL uses", () => {
    const vector = { name: "Test Meeting", meetingID: "abc123", attendeePW: "111222", moderatorPW: "333444" };
    expect(query(vector)).toBe("name=Test+Meeting&meetingID=abc123&attendeePW=111222&moderatorPW=333444");
    expect(checksum("create", query(vector), "639259d4-9dd8-4b25-bf01-95f9567eaf4b")).toBe("1fcbb0c4fc1f039f73aa6d697d2db9ba7f803f17");
    // The join URL's checksum is the same function over `join` and its own query string, as it is sent.
    const url = joinUrl("https://bbb.example.org/bigbluebutton/api", "639259d4-9dd8-4b25-bf01-95f9567eaf4b", "abc123", CREATE_TIME, "Live stream");
    const [, rawQuery] = url.split("?");
    expect(url.startsWith("https://bbb.example.org/bigbluebutton/api/join?fullName=Live+stream&meetingID=abc123&role=VIEWER&")).toBe(true);
    expect(checksumValid("join", rawQuery, "639259d4-9dd8-4b25-bf01-95f9567eaf4b")).toBe(true);
    expect(checksumValid("join", rawQuery, SECRET)).toBe(false);
});

test("start: checks the meeting, hands a join URL signed with the stack's secret to the authenticated API, shows the viewer URL and nothing secret", async () => {
    const r = await run(["start", "--stack", "prod", "--meeting", "webinar-1"]);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(fs.readFileSync(path.join(dir, "pulumi-args"), "utf8").trim()).toBe("stack output --json --show-secrets --stack prod");
    const name = streamName(PASSWORD, "webinar-1", CREATE_TIME);
    expect(r.out).toContain(`viewers: https://streaming.example.org/watch/${name}`);
    const [job] = [...stand.jobs.values()];
    expect(job.id).toBe(jobId(`http://127.0.0.1:${stand.port}/bigbluebutton/api`, "webinar-1"));
    expect(job.data.rtmpUrl).toBe(`rtmp://127.0.0.1:1935/live/${name}`);
    const join = new URL(job.data.joinUrl);
    expect(join.pathname).toBe("/bigbluebutton/api/join");
    expect(Object.fromEntries(join.searchParams)).toMatchObject({ meetingID: "webinar-1", role: "VIEWER", createTime: CREATE_TIME, excludeFromDashboard: "true", "userdata-bbb_hide_actions_bar": "true" });
    // Valid for the API the worker opens it on: the stack's secret, over the query as sent.
    expect(checksumValid("join", job.data.joinUrl.split("?")[1], SECRET)).toBe(true);
    const text = printed(r);
    for (const secret of [SECRET, PASSWORD, join.searchParams.get("checksum")!, job.data.joinUrl, "639259d4"]) expect(text).not.toContain(secret);
});

test("start on a stream under way asks, and posts nothing (a post would reset its progress)", async () => {
    expect((await run(["start", "--stack", "prod", "--meeting", "webinar-1"])).code).toBe(0);
    [...stand.jobs.values()][0].status = "running";
    stand.requests.length = 0;
    const again = await run(["start", "--stack", "prod", "--meeting", "webinar-1"]);
    expect(again.code).toBe(0);
    expect(again.out[0]).toBe(`stream of meeting webinar-1: already running (job ${jobId(`http://127.0.0.1:${stand.port}/bigbluebutton/api`, "webinar-1")})`);
    expect(again.out[1]).toBe(`viewers: https://streaming.example.org/watch/${streamName(PASSWORD, "webinar-1", CREATE_TIME)}`);
    expect(stand.requests.filter((q) => q.method === "POST")).toEqual([]);
});

test("start on a failed stream says that BBB-Streaming-Server retries it as it was first given", async () => {
    expect((await run(["start", "--stack", "prod", "--meeting", "webinar-1"])).code).toBe(0);
    [...stand.jobs.values()][0].status = "failed";
    const again = await run(["start", "--stack", "prod", "--meeting", "webinar-1"]);
    expect(again.code).toBe(0);
    expect(again.err.join("\n")).toContain("the last stream of this meeting failed; BBB-Streaming-Server retries it as it was first given");
    expect(again.out[0]).toMatch(/^stream of meeting webinar-1: queued \(job [0-9a-f]{64}\)$/);
});

test.each(["201", "422"] as const)("an API that echoes the join URL (in its %s answer) gets it masked: no join URL, checksum or secret printed", async (echo) => {
    stand.echo = echo;
    const r = await run(["start", "--stack", "prod", "--meeting", "webinar-1"]);
    expect(r.code).toBe(echo === "201" ? 0 : 1);
    const sent = JSON.parse(stand.requests.find((q) => q.method === "POST")!.body) as Job["data"];
    const text = printed(r);
    for (const secret of [sent.joinUrl, new URL(sent.joinUrl).searchParams.get("checksum")!, SECRET, PASSWORD]) expect(text).not.toContain(secret);
    if (echo === "422") expect(r.err.join("\n")).toContain("start: the streaming API answered HTTP 422");
});

test("a getMeetingInfo without a createTime is refused: the join URL could not be tied to this run of the meeting", async () => {
    stand.noCreateTime = true;
    const r = await run(["start", "--stack", "prod", "--meeting", "webinar-1"]);
    expect(r.code).toBe(1);
    expect(r.err.join("\n")).toContain("answered getMeetingInfo without a createTime");
    expect(stand.requests.filter((q) => q.method === "POST")).toEqual([]);
});

test("the stream's name: another for the meeting's next run, unguessable without the password", () => {
    const a = streamName(PASSWORD, "webinar-1", CREATE_TIME);
    expect(a).toMatch(/^[0-9a-f]{32}$/);
    expect(streamName(PASSWORD, "webinar-1", "1795935999000")).not.toBe(a);
    expect(streamName("another password", "webinar-1", CREATE_TIME)).not.toBe(a);
});

test("pool: the worker joins through the API name (Scalelite), the job is keyed on that host", async () => {
    outputs({ bbbApiUrl: `http://localhost:${stand.port}/bigbluebutton/api` });
    const r = await run(["start", "--stack", "prod", "--meeting", "webinar-1"]);
    expect(r.code).toBe(0);
    const [job] = [...stand.jobs.values()];
    expect(new URL(job.data.joinUrl).host).toBe(`localhost:${stand.port}`);
    expect(job.id).toBe(crypto.createHash("sha256").update(`webinar-1@localhost:${stand.port}`).digest("hex"));
});

test("start refuses a meeting that is not running, and a secret the API does not answer to; nothing reaches the streaming API", async () => {
    const missing = await run(["start", "--stack", "prod", "--meeting", "nobody-here"]);
    expect(missing.code).toBe(1);
    expect(missing.err.join("\n")).toMatch(/meeting nobody-here is not running on .*: start it first/);
    stand.bbbSecret = "the server's other secret";
    const wrong = await run(["start", "--stack", "prod", "--meeting", "webinar-1"]);
    expect(wrong.code).toBe(1);
    expect(wrong.err.join("\n")).toContain("refused the checksum");
    expect(stand.requests.filter((q) => q.url.startsWith("/api/"))).toEqual([]);
    expect(printed(wrong)).not.toContain(SECRET);
});

test("a wrong streaming password: HTTP 401 told as such, the password not printed", async () => {
    outputs({ streamingApiPassword: "not-the-password" });
    const r = await run(["start", "--stack", "prod", "--meeting", "webinar-1"]);
    expect(r.code).toBe(1);
    expect(r.err.join("\n")).toContain("refused the password (HTTP 401)");
    expect(printed(r)).not.toContain("not-the-password");
});

test("status and stop: the job's state, the viewer URL while the meeting runs; stop of a waiting stream removes it, of nothing says so", async () => {
    expect((await run(["start", "--stack", "prod", "--meeting", "webinar-1"])).code).toBe(0);
    const status = await run(["status", "--stack", "prod", "--meeting", "webinar-1"]);
    expect(status.code).toBe(0);
    expect(status.out[0]).toBe("stream of meeting webinar-1: queued (queue state waiting)");
    expect(status.out[1]).toBe(`viewers: https://streaming.example.org/watch/${streamName(PASSWORD, "webinar-1", CREATE_TIME)}`);

    [...stand.jobs.values()][0].status = "running";
    const running = await run(["status", "--stack", "prod", "--meeting", "webinar-1"]);
    expect(running.out[0]).toBe("stream of meeting webinar-1: running (queue state active) at 30 fps, 3980 kbit/s");

    const stop = await run(["stop", "--stack", "prod", "--meeting", "webinar-1"]);
    expect(stop.code).toBe(0);
    expect(stop.out).toEqual(["stream of meeting webinar-1: stopping"]);
    const again = await run(["stop", "--stack", "prod", "--meeting", "webinar-1"]);
    expect(again.code).toBe(1);
    expect(again.err.join("\n")).toContain("the stream is stopping, so it cannot be stopped now");

    const none = await run(["stop", "--stack", "prod", "--meeting", "other"]);
    expect(none.code).toBe(1);
    expect(none.err.join("\n")).toContain("stop: no stream for this meeting");
});

test("usage errors exit 2: no action, no meeting, a stack without streaming", async () => {
    expect((await run([])).code).toBe(2);
    expect((await run(["begin", "--stack", "prod", "--meeting", "x"])).err[0]).toContain('unknown action "begin"');
    expect((await run(["start", "--stack", "prod"])).err[0]).toContain("give --meeting");
    outputs({ streamingUrl: undefined, streamingApiUrl: undefined, streamingApiPassword: undefined });
    const off = await run(["start", "--stack", "dev", "--meeting", "webinar-1"]);
    expect(off.code).toBe(2);
    expect(off.err[0]).toContain("stack dev has no streamingUrl output: turn streaming on");
});
