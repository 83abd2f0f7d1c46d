// npm run stream -- start|stop|status --stack <name> --meeting <meeting id> [--name <shown name>] [--timeout <s>]
// Starts, stops or shows the live stream of a meeting (README "Live streams"), through the streaming host's API
// (BBB-Streaming-Server's, behind nginx's Basic authentication) with the stack's outputs:
//   start:  asks the API name (bbbApiUrl: bbb-1, or Scalelite in a pool) for the meeting (getMeetingInfo), signs
//           a join URL for a viewer that hides its own panels, and hands it to the streaming host with the RTMP
//           URL of a stream named after the meeting's run (unless the meeting's stream is under way already: then it
//           only shows it); prints the viewer URL.
//   stop:   stops the meeting's stream; the recording is finished on the streaming host.
//   status: the stream's state (queued, running, paused, stopped, failed), and its viewer URL while the meeting runs.
// The join URL (its checksum), the API secret and the streaming password are never printed.
// Exit 0: done; 1: refused or failed (the meeting is not running, the API said no); 2: usage (or the outputs could not be read).
import * as crypto from "crypto";
import * as http from "http";
import * as https from "https";
import { URL } from "url";
import { publishUrl, STREAMING_API_USER, watchPath } from "../components/streaming-config";
import { Io, mask, reason, signedUrl, stackOutputs, UsageError, xmlTag } from "./bbb-api";

const USAGE = `usage: npm run stream -- start|stop|status --stack <name> --meeting <meeting id> [options]
options: --name <the name the stream joins with> (default "Live stream")  --timeout <seconds per request> (default 15)`;

const ACTIONS = ["start", "stop", "status"] as const;
type Action = (typeof ACTIONS)[number];

interface Target {
    action: Action;
    meetingId: string;
    fullName: string;
    /** bbbApiUrl: the API the worker joins through. */
    apiUrl: string;
    secret: string;
    /** The viewer page's origin, with a final slash. */
    viewerUrl: string;
    streamingApiUrl: string;
    streamingPassword: string;
    timeoutMs: number;
    /** Every text never printed: the API secret, the streaming password, and once made the join URL and its checksum. */
    secrets: string[];
}

/**
 * The join parameters of the stream's viewer (docs/streaming.md 1.3): a VIEWER, not shown in the Learning Dashboard,
 * whose own panels and notifications are hidden (BBB's userdata-bbb_* parameters, docs customize.md "Passing user
 * metadata to the client on join"), the ones BBB-Streaming-Server asks its callers for (src/controller/app.ts v1.1.1,
 * the comment in POST /) among them. `createTime` ties the URL to this run of the meeting (join.tsx: a join whose
 * createTime differs is refused), so it cannot join a later meeting with the same id. No audio parameter: the worker
 * clicks "listen only" itself and fails when the dialog does not come (BBBLiveStream.ts).
 */
export function joinParams(meetingId: string, createTime: string, fullName: string): Record<string, string> {
    return {
        fullName,
        meetingID: meetingId,
        role: "VIEWER",
        createTime,
        userID: "bbb-livestream",
        excludeFromDashboard: "true",
        redirect: "true",
        "userdata-bbb_hide_nav_bar": "true",
        "userdata-bbb_hide_actions_bar": "true",
        "userdata-bbb_show_public_chat_on_login": "false",
        "userdata-bbb_show_participants_on_login": "false",
        "userdata-bbb_hide_notifications": "true",
        "userdata-bbb_show_session_details_on_join": "false",
        "userdata-bbb_ask_for_feedback_on_logout": "false",
    };
}

/** The signed join URL the worker opens: BBB's checksum over `join` and this exact query string. */
export function joinUrl(apiUrl: string, secret: string, meetingId: string, createTime: string, fullName: string): string {
    return signedUrl(apiUrl, "join", joinParams(meetingId, createTime, fullName), secret);
}

/**
 * The stream's name: unguessable without the streaming password, the same for one run of a meeting (start again,
 * status), another for its next run (the viewer URL of last week's webinar shows nothing of this week's).
 */
export function streamName(password: string, meetingId: string, createTime: string): string {
    return crypto.createHmac("sha256", password).update(`${meetingId}\n${createTime}`).digest("hex").slice(0, 32);
}

/** BBB-Streaming-Server's job id for a meeting: sha256(meetingID + "@" + the join URL's host) (src/controller/app.ts v1.1.1, POST /). */
export function jobId(apiUrl: string, meetingId: string): string {
    return crypto.createHash("sha256").update(`${meetingId}@${new URL(apiUrl).host}`).digest("hex");
}

// ---------------------------------------------------------------------------------------------- HTTP

interface Answer {
    status: number;
    body: string;
}

function request(url: string, t: Target, method: "GET" | "POST", body?: unknown, auth?: boolean): Promise<Answer> {
    const u = new URL(url);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { accept: "application/json" };
    if (payload !== undefined) headers["content-type"] = "application/json";
    if (auth) headers.authorization = `Basic ${Buffer.from(`${STREAMING_API_USER}:${t.streamingPassword}`).toString("base64")}`;
    const lib = u.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
        const req = lib.request(u, { method, headers, timeout: t.timeoutMs }, (res) => {
            let data = "";
            res.setEncoding("utf8");
            res.on("data", (d) => (data += d));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: data }));
        });
        req.on("timeout", () => req.destroy(new Error(`no answer within ${t.timeoutMs / 1000} s`)));
        req.on("error", reject);
        req.end(payload);
    });
}

class Refused extends Error {}

/** The meeting as the API name knows it: its createTime, or Refused saying why not. */
async function meeting(t: Target): Promise<{ createTime: string }> {
    const url = signedUrl(t.apiUrl, "getMeetingInfo", { meetingID: t.meetingId }, t.secret);
    let a: Answer;
    try {
        a = await request(url, t, "GET");
    } catch (err) {
        throw new Refused(`${t.apiUrl} did not answer getMeetingInfo: ${reason(err)}`);
    }
    const returncode = xmlTag(a.body, "returncode");
    const messageKey = xmlTag(a.body, "messageKey");
    if (returncode === "SUCCESS") {
        const createTime = xmlTag(a.body, "createTime");
        if (!createTime || !/^[0-9]+$/.test(createTime)) throw new Refused(`${t.apiUrl} answered getMeetingInfo without a createTime`);
        return { createTime };
    }
    if (messageKey === "notFound") throw new Refused(`meeting ${t.meetingId} is not running on ${t.apiUrl}: start it first (the stream joins it as a viewer)`);
    if (messageKey === "checksumError") throw new Refused(`${t.apiUrl} refused the checksum: the stack's bbbSecret is not the one it answers to`);
    throw new Refused(`${t.apiUrl} answered getMeetingInfo with HTTP ${a.status}${returncode ? ` ${returncode}` : ""}${messageKey ? ` ${messageKey}` : ""}`);
}

interface Job {
    id?: string;
    state?: string;
    progress?: { status?: string; fps?: number; bitrate?: number };
}

/** The streaming API's answer as a Job, or Refused naming the status (its body is not printed: a 422 repeats the join URL). */
function job(a: Answer, what: string, expected: number[]): Job {
    if (a.status === 401) throw new Refused(`${what}: the streaming API refused the password (HTTP 401): is the stack's streamingApiPassword the one the host has? (pulumi up sets it)`);
    if (a.status === 404) throw new Refused(`${what}: no stream for this meeting`);
    let parsed: Job = {};
    try {
        parsed = JSON.parse(a.body) as Job;
    } catch {
        // Not JSON: only the status is told.
    }
    if (a.status === 400) throw new Refused(`${what}: the stream is ${progressOf(parsed)}, so it cannot be stopped now`);
    if (!expected.includes(a.status)) throw new Refused(`${what}: the streaming API answered HTTP ${a.status}`);
    return parsed;
}

/** A word the API answered (a state or status), printed only when it is one: never a text it echoes. */
const word = (value: unknown) => (typeof value === "string" && /^[a-z][a-z-]{0,19}$/.test(value) ? value : "unknown");
const progressOf = (j: Job) => word(j.progress?.status ?? j.state);
/** BullMQ's states of a job that has a worker, or waits for one (bullmq's JobState). */
const UNDER_WAY = ["active", "waiting", "delayed", "prioritized", "waiting-children"];

async function start(t: Target, io: Io): Promise<void> {
    const { createTime } = await meeting(t);
    const name = streamName(t.streamingPassword, t.meetingId, createTime);
    const id = jobId(t.apiUrl, t.meetingId);
    // Asked first: a POST for a job under way would only reset its progress to "queued" (app.ts, POST /), and one for
    // a failed job retries it with the join URL it was first given (job.retry()).
    const known = await request(`${t.streamingApiUrl}${id}`, t, "GET", undefined, true);
    const before = known.status === 404 ? undefined : job(known, "start", [200]);
    if (before && UNDER_WAY.includes(word(before.state))) {
        io.out(`stream of meeting ${t.meetingId}: already ${progressOf(before)} (job ${id})`);
    } else {
        const url = joinUrl(t.apiUrl, t.secret, t.meetingId, createTime, t.fullName);
        // Whatever the API answers, the join URL and its checksum are not printed.
        t.secrets.push(url, new URL(url).searchParams.get("checksum")!);
        const j = job(await request(t.streamingApiUrl, t, "POST", { joinUrl: url, rtmpUrl: publishUrl(name) }, true), "start", [201]);
        if (before && word(before.state) === "failed") {
            io.err(`stream start: the last stream of this meeting failed; BBB-Streaming-Server retries it as it was first given (if the meeting was restarted since, the retry fails too: README "Live streams", limits)`);
        }
        io.out(`stream of meeting ${t.meetingId}: ${progressOf(j)} (job ${id})`);
    }
    io.out(`viewers: ${t.viewerUrl}${watchPath(name).slice(1)}`);
}

async function stop(t: Target, io: Io): Promise<void> {
    const j = job(await request(`${t.streamingApiUrl}${jobId(t.apiUrl, t.meetingId)}/stop`, t, "POST", undefined, true), "stop", [202]);
    io.out(`stream of meeting ${t.meetingId}: ${progressOf(j)}`);
}

async function status(t: Target, io: Io): Promise<void> {
    const j = job(await request(`${t.streamingApiUrl}${jobId(t.apiUrl, t.meetingId)}`, t, "GET", undefined, true), "status", [200]);
    const p = j.progress ?? {};
    const figures = p.status === "running" && typeof p.fps === "number" ? ` at ${p.fps} fps, ${typeof p.bitrate === "number" ? p.bitrate : 0} kbit/s` : "";
    io.out(`stream of meeting ${t.meetingId}: ${progressOf(j)} (queue state ${word(j.state)})${figures}`);
    try {
        const { createTime } = await meeting(t);
        io.out(`viewers: ${t.viewerUrl}${watchPath(streamName(t.streamingPassword, t.meetingId, createTime)).slice(1)}`);
    } catch (err) {
        if (!(err instanceof Refused)) throw err;
        io.out(`viewers: none (${err.message})`);
    }
}

// ---------------------------------------------------------------------------------------------- arguments

function parseArgs(args: string[]): { action: Action; opts: Record<string, string> } {
    const [action, ...rest] = args;
    if (!ACTIONS.includes(action as Action)) throw new UsageError(action === undefined ? "give start, stop or status" : `unknown action ${action.startsWith("--") ? action : JSON.stringify(action)}: start, stop or status`);
    const opts: Record<string, string> = {};
    for (let i = 0; i < rest.length; i += 2) {
        const [key, value] = [rest[i], rest[i + 1]];
        if (!["--stack", "--meeting", "--name", "--timeout"].includes(key)) throw new UsageError(`unknown argument ${key.startsWith("--") ? key : "(a value without an option)"}`);
        if (value === undefined || value.startsWith("--")) throw new UsageError(`${key} needs a value`);
        opts[key] = value;
    }
    return { action: action as Action, opts };
}

const text = (outputs: Record<string, unknown>, key: string, stack: string, hint: string): string => {
    const v = outputs[key];
    if (typeof v !== "string" || v === "") throw new UsageError(`stack ${stack} has no ${key} output: ${hint}`);
    return v;
};

function target(action: Action, opts: Record<string, string>, env: NodeJS.ProcessEnv): Target {
    if (!opts["--stack"]) throw new UsageError("give --stack <name>");
    if (!opts["--meeting"]) throw new UsageError("give --meeting <meeting id> (as the API knows it: Greenlight shows it in the room's settings, Moodle and Pod in their logs)");
    const timeout = Number(opts["--timeout"] ?? 15);
    if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError("--timeout takes a number of seconds");
    const stack = opts["--stack"];
    const outputs = stackOutputs(stack, env);
    const deployed = "has it been deployed?";
    const streaming = "turn streaming on (pulumi config set --path streaming.enabled true) and run pulumi up";
    return {
        action,
        meetingId: opts["--meeting"],
        fullName: opts["--name"] ?? "Live stream",
        apiUrl: text(outputs, "bbbApiUrl", stack, deployed),
        secret: text(outputs, "bbbSecret", stack, deployed),
        viewerUrl: text(outputs, "streamingUrl", stack, streaming),
        streamingApiUrl: text(outputs, "streamingApiUrl", stack, streaming),
        streamingPassword: text(outputs, "streamingApiPassword", stack, streaming),
        timeoutMs: timeout * 1000,
        secrets: [],
    };
}

const defaultIo: Io = { out: (l) => console.log(l), err: (l) => console.error(l), env: process.env };

export async function main(args: string[], io: Io = defaultIo): Promise<number> {
    if (args.includes("--help") || args.includes("-h")) {
        io.out(USAGE);
        return 0;
    }
    let t: Target;
    try {
        const { action, opts } = parseArgs(args);
        t = target(action, opts, io.env);
    } catch (err) {
        if (!(err instanceof UsageError)) throw err;
        io.err(`stream: ${err.message}`);
        io.err(USAGE);
        return 2;
    }
    // Whatever an error says (a library's message may quote a URL), the secrets are masked.
    t.secrets.push(t.secret, t.streamingPassword);
    const safe: Io = { ...io, out: (l) => io.out(mask(l, t.secrets)), err: (l) => io.err(mask(l, t.secrets)) };
    try {
        await { start, stop, status }[t.action](t, safe);
        return 0;
    } catch (err) {
        safe.err(`stream ${t.action}: ${err instanceof Refused ? err.message : reason(err)}`);
        return 1;
    }
}

if (require.main === module) {
    main(process.argv.slice(2)).then(
        (code) => (process.exitCode = code),
        (err) => {
            console.error(`stream: ${reason(err)}`);
            process.exitCode = 2;
        },
    );
}
