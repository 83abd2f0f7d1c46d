// components/guard.ts: the meetings check that runs where `pulumi up` runs, for real (node, as the local
// command runs it) against an HTTPS stand-in for a BBB server's API on 127.0.0.1 (checksums verified as
// bbb-web does for getMeetings), and its place in the program.
import { execFile, execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as https from "https";
import * as os from "os";
import * as path from "path";
import { MEETINGS_CHECK } from "../components/guard";
import { BASE_CONFIG, byName, evaluate, ofType, Run, waitsFor } from "./harness";

const SECRET = "Secret0123456789abcdefghijklmnopqrstuvwxyz";
let dir: string;
let server: https.Server;
let port: number;
let meetings: string[];
let answering: boolean;

beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-guard-"));
    execFileSync("openssl", [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
        "-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`, "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
    ], { stdio: "pipe" });
    server = https.createServer({ key: fs.readFileSync(`${dir}/key.pem`), cert: fs.readFileSync(`${dir}/cert.pem`) }, (req, res) => {
        const url = new URL(req.url!, "https://localhost");
        const valid = url.pathname === "/bigbluebutton/api/getMeetings" &&
            url.searchParams.get("checksum") === crypto.createHash("sha1").update(`getMeetings${SECRET}`).digest("hex");
        if (!answering) {
            res.writeHead(502).end("<html>502 Bad Gateway</html>");
            return;
        }
        res.end(valid
            ? `<response><returncode>SUCCESS</returncode><meetings>${meetings.map((m) => `<meeting><meetingID>${m}</meetingID></meeting>`).join("")}</meetings></response>`
            : "<response><returncode>FAILED</returncode><messageKey>checksumError</messageKey></response>");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as { port: number }).port;
});
afterAll(() => {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
    meetings = [];
    answering = true;
});

/** Runs the check as the local command does (`node -e <code>`, the JSON on stdin). */
function check(input: Record<string, unknown>, env: Record<string, string> = {}): Promise<{ status: number; stdout: string; stderr: string }> {
    const stdin = JSON.stringify({ fqdn: `localhost:${port}`, secret: SECRET, what: "resizing its VM", force: false, forceKey: "forceReinstall", stack: "prod", ...input });
    return new Promise((resolve) => {
        const child = execFile(process.execPath, ["-e", MEETINGS_CHECK], { env: { ...process.env, NODE_EXTRA_CA_CERTS: `${dir}/cert.pem`, ...env } }, (err, stdout, stderr) =>
            resolve({ status: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr }),
        );
        child.stdin!.end(stdin);
    });
}

describe("the check", () => {
    test("goes ahead when the server hosts no meeting", async () => {
        const r = await check({});
        expect(r.status).toBe(0);
        expect(r.stderr).toContain(`localhost:${port} hosts no meeting: resizing its VM`);
    });

    test("refuses while meetings run, naming how many and the force setting; never prints the secret", async () => {
        meetings = ["lecture", "seminar"];
        const r = await check({});
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`2 meeting(s) running on localhost:${port}; resizing its VM would end them. Nothing was changed.`);
        expect(r.stderr).toContain("set forceReinstall: true");
        expect(`${r.stdout}${r.stderr}`).not.toContain(SECRET);
    });

    test("cannot tell is not 'no meetings': a refused checksum, an error page or no server at all refuse too", async () => {
        expect((await check({ secret: "Wrong0123456789abcdefghijklmnopqrstuvwxyz" })).stderr).toContain("cannot tell whether meetings run");
        answering = false;
        expect((await check({})).status).toBe(1);
        const nobody = await check({ fqdn: "localhost:1" });
        expect(nobody.status).toBe(1);
        expect(nobody.stderr).toContain("cannot tell whether meetings run on localhost:1 (connect ECONNREFUSED");
    });

    test("the force setting goes ahead and says so", async () => {
        meetings = ["lecture"];
        const r = await check({ force: true, forceKey: "forceRemove", what: "deleting or replacing its VM" });
        expect(r.status).toBe(0);
        expect(r.stderr).toContain(`forceRemove is set: deleting or replacing its VM although 1 meeting(s) running on localhost:${port}`);
    });
});

test("the force setting is the stack's as it is now (pulumi config get), not as the step last ran", async () => {
    meetings = ["lecture"];
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin, { recursive: true });
    // The Pulumi CLI: `pulumi config get forceRemove --stack prod` prints the value.
    fs.writeFileSync(path.join(bin, "pulumi"), `#!/bin/sh\necho "$*" >> "${dir}/pulumi.log"\necho true\n`, { mode: 0o755 });
    const env = { PATH: `${bin}:${process.env.PATH}` };
    const r = await check({ force: false, forceKey: "forceRemove", what: "deleting or replacing its VM" }, env);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("forceRemove is set: deleting or replacing its VM although 1 meeting(s) running");
    expect(fs.readFileSync(path.join(dir, "pulumi.log"), "utf8")).toBe("config get forceRemove --stack prod\n");
    fs.writeFileSync(path.join(bin, "pulumi"), "#!/bin/sh\necho false\n", { mode: 0o755 });
    expect((await check({ force: true, forceKey: "forceRemove" }, env)).status).toBe(1);
    // A key removed since (the CLI: "configuration key 'forceRemove' not found", exit 255) is false too.
    fs.writeFileSync(path.join(bin, "pulumi"), "#!/bin/sh\necho \"error: configuration key 'forceRemove' not found for stack 'prod'\" >&2; exit 255\n", { mode: 0o755 });
    expect((await check({ force: true, forceKey: "forceRemove" }, env)).status).toBe(1);
});

describe("with watched values (before a resize)", () => {
    const watched = { flavor: "m1.xlarge", volumeSize: 80 };

    test("on creation it checks nothing (no server yet) and keeps the values as its output", async () => {
        const r = await check({ fqdn: "localhost:1", watched });
        expect(r.status).toBe(0);
        expect(r.stdout.trim()).toBe(JSON.stringify(watched));
    });

    test("an update that changes other inputs only (a new secret) checks nothing", async () => {
        meetings = ["lecture"];
        const r = await check({ secret: "NotYetAnswered0123456789abcdefghijklmnop", watched }, { PULUMI_COMMAND_STDOUT: `${JSON.stringify(watched)}\n` });
        expect(r.status).toBe(0);
    });

    test("a new flavor is checked: refused while meetings run; once idle, the new values are its output", async () => {
        meetings = ["lecture"];
        const previous = { PULUMI_COMMAND_STDOUT: JSON.stringify(watched) };
        const bigger = { ...watched, flavor: "m1.2xlarge" };
        expect((await check({ watched: bigger }, previous)).status).toBe(1);
        meetings = [];
        const r = await check({ watched: bigger }, previous);
        expect(r.status).toBe(0);
        expect(r.stdout.trim()).toBe(JSON.stringify(bigger));
    });
});

describe("in the program", () => {
    let single: Run;
    let pool: Run;
    beforeAll(async () => {
        single = await evaluate(BASE_CONFIG);
        pool = await evaluate({ ...BASE_CONFIG, scalelite: true, poolSize: 2 });
    });
    const LOCAL = "command:local:Command";

    test("every BBB server's VM is deleted or replaced only after the check (it follows the VM's id, so Pulumi deletes it first)", () => {
        for (const run of [single, pool]) {
            for (const name of ofType(run, LOCAL).map((c) => c.name).filter((n) => n.endsWith("-vm-guard"))) {
                const guard = byName(run, name);
                expect([...waitsFor(run, name)]).toContain(name.replace(/-guard$/, ""));
                expect(guard.inputs.delete).toBe(MEETINGS_CHECK);
                expect(guard.inputs.create).toBe("0");
                expect(guard.secretInputs).toContain("stdin");
                // Replaced with the VM (a new id), so that Pulumi deletes it, running the check, before the VM.
                expect(guard.inputs.triggers).toEqual([`${name.replace(/-guard$/, "")}-id`]);
            }
        }
        expect(ofType(pool, LOCAL).map((c) => c.name).filter((n) => n.endsWith("-vm-guard")).sort()).toEqual(["bbb-1-vm-guard", "bbb-2-vm-guard"]);
        // On deletion the removal from Scalelite (which ends the meetings under forceRemove) comes first.
        expect([...waitsFor(pool, "bbb-2-registration")]).toContain("bbb-2-vm-guard");
    });

    test("a single server's VM waits for the check of a new flavor or boot volume size; a pool's servers take those only when new", () => {
        const resize = byName(single, "bbb-1-resize-check");
        expect([resize.inputs.create, resize.inputs.update]).toEqual([MEETINGS_CHECK, MEETINGS_CHECK]);
        expect([...waitsFor(single, "bbb-1-vm")]).toContain("bbb-1-resize-check");
        expect(JSON.parse(resize.inputs.stdin)).toMatchObject({ fqdn: "bbb-1.example.org", watched: { flavor: "m1.xlarge", volumeSize: 80 }, forceKey: "forceReinstall" });
        expect(ofType(pool, LOCAL).map((c) => c.name)).not.toContain("bbb-1-resize-check");
    });
});
