// The remote steps as the program declares them (command line and stdin), run through a real OpenSSH
// server on loopback the way @pulumi/command runs them: one exec per command, stdin attached, no
// environment passed (no AcceptEnv), as a non-root user with passwordless sudo. The commands then run
// against the stubs, whose directory is the sudo secure_path of the test user. Needs root (CI is root).
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { BASE_CONFIG, evaluate, ofType, Run, stepInputs } from "./harness";
import { Sandbox } from "./sandbox";
import { installStubs } from "./stubs";

const USER = "bbbdeploy";
const SUDOERS = "/etc/sudoers.d/bbb-ssh-test";

function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.listen(0, "127.0.0.1", () => {
            const port = (server.address() as net.AddressInfo).port;
            server.close(() => resolve(port));
        });
        server.on("error", reject);
    });
}

function sh(command: string, args: string[]): string {
    const r = spawnSync(command, args, { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`${command} ${args.join(" ")} failed: ${r.stderr}`);
    return r.stdout;
}

async function waitForPort(port: number, deadlineMs: number): Promise<void> {
    while (Date.now() < deadlineMs) {
        const open = await new Promise<boolean>((resolve) => {
            const socket = net.connect(port, "127.0.0.1", () => {
                socket.destroy();
                resolve(true);
            });
            socket.on("error", () => resolve(false));
        });
        if (open) return;
        await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`sshd did not listen on 127.0.0.1:${port}`);
}

let run: Run;
let box: Sandbox;
let keys: string;
let sshd: ChildProcess | undefined;
let port: number;
let userCreated = false;

beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error("this test runs sshd and sudo as root (as CI does)");
    run = await evaluate({ ...BASE_CONFIG, greenlight: true }, { ipv6: true });
    if (run.error) throw run.error;

    box = new Sandbox();
    installStubs(box);
    box.stub("cloud-init");
    box.stub("dig", `grep "^$5 $4 " "$SANDBOX/dns" | cut -d' ' -f3`);
    // What the public resolver answers: the records the program says the hosts need.
    const records = run.outputs.dnsRecords as { type: string; name: string; content: string }[];
    box.write("dns", records.map((r) => `${r.name} ${r.type} ${r.content}\n`).join(""));
    // The stubs and their files must be reachable for sudo's root and readable on the way.
    fs.chmodSync(box.dir, 0o755);

    keys = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-ssh-"));
    sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(keys, "host")]);
    sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(keys, "client")]);

    if (spawnSync("id", [USER]).status !== 0) {
        sh("useradd", ["-m", "-s", "/bin/bash", USER]);
        userCreated = true;
    }
    sh("usermod", ["-p", "*", USER]);
    const home = sh("getent", ["passwd", USER]).split(":")[5];
    fs.mkdirSync(path.join(home, ".ssh"), { recursive: true, mode: 0o700 });
    fs.copyFileSync(path.join(keys, "client.pub"), path.join(home, ".ssh", "authorized_keys"));
    sh("chown", ["-R", `${USER}:`, path.join(home, ".ssh")]);
    fs.writeFileSync(SUDOERS, `Defaults:${USER} secure_path="${box.bin}"\n${USER} ALL=(root) NOPASSWD: ALL\n`, { mode: 0o440 });

    port = await freePort();
    const config = path.join(keys, "sshd_config");
    fs.writeFileSync(
        config,
        [
            `Port ${port}`,
            "ListenAddress 127.0.0.1",
            `HostKey ${path.join(keys, "host")}`,
            `PidFile ${path.join(keys, "sshd.pid")}`,
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "StrictModes no",
            "UsePAM no",
            `AllowUsers ${USER}`,
            "",
        ].join("\n"),
    );
    fs.mkdirSync("/run/sshd", { recursive: true });
    sshd = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", config], { stdio: "ignore" });
    await waitForPort(port, Date.now() + 10000);
}, 30000);

afterAll(() => {
    sshd?.kill();
    fs.rmSync(SUDOERS, { force: true });
    if (userCreated) spawnSync("userdel", ["-r", USER]);
    if (keys) fs.rmSync(keys, { recursive: true, force: true });
    box?.cleanup();
});

/** Runs one declared command over SSH, as @pulumi/command would, with the sandbox's ROOT ahead of stdin. */
function overSsh(name: string): { status: number | null; output: string } {
    const step = ofType(run, "command:remote:Command").find((r) => r.name === name)!;
    const r = spawnSync(
        "ssh",
        [
            "-p", String(port), "-i", path.join(keys, "client"),
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            `${USER}@127.0.0.1`,
            step.inputs.create,
        ],
        { input: `ROOT=${JSON.stringify(box.root)}\n${step.inputs.stdin}`, encoding: "utf8", timeout: 30000 },
    );
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** The last word each step says when it did its work. */
const DONE: Record<string, string> = {
    "turn-ready": "wait-ready: turn.example.org resolves to 203.0.113.2",
    "bbb-1-ready": "wait-ready: bbb-1.example.org resolves to 203.0.113.11",
    "turn-coturn": "turn-coturn: coturn is running on turn.example.org, relaying to 1 BBB server(s)",
    "bbb-1-install": "bbb-installer: bbb-install.sh finished",
    "bbb-1-configure": "bbb-configure: the API answers with the stack's secret",
    "bbb-1-data-policy": "bbb-data-policy: privacy strict applied",
};

test("the readiness, TURN, installer, configuration and data-policy steps run through ssh + sudo and do their work", () => {
    for (const [name, said] of Object.entries(DONE)) {
        const r = overSsh(name);
        expect([name, r.status, r.output]).toEqual([name, 0, expect.stringContaining(said)]);
    }
});

test("the steps got their inputs: exact installer flags, the stack's secret set, coturn configured", () => {
    const turnSecret = stepInputs(ofType(run, "command:remote:Command").find((r) => r.name === "turn-coturn")!.inputs.stdin).SECRET;
    expect(box.calls("bbb-install.sh")).toEqual([
        `bbb-install.sh -v jammy-300 -s bbb-1.example.org -e ops@example.org -c turn.example.org:${turnSecret} -g`,
    ]);
    const props = fs.readFileSync(box.file("root/etc/bigbluebutton/bbb-web.properties"), "utf8");
    expect(props).toContain(`securitySalt=${run.outputs.bbbSecret}`);
    expect(props).toContain("disableRecordingDefault=true");
    const conf = fs.readFileSync(box.file("root/etc/turnserver.conf"), "utf8");
    expect(conf).toContain(`static-auth-secret=${turnSecret}`);
    expect(conf).toContain("allowed-peer-ip=203.0.113.11");
    // Strict privacy reached the host: access logs off, logs kept one day.
    expect(fs.readFileSync(box.file("root/etc/nginx/sites-available/bigbluebutton"), "utf8")).toContain("access_log off;");
    expect(fs.readFileSync(box.file("root/etc/default/bigbluebutton-cron-config"), "utf8")).toContain("log_history=1");
});

test("they ran as root through sudo, with no environment from the client", () => {
    const r = spawnSync(
        "ssh",
        ["-p", String(port), "-i", path.join(keys, "client"), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "SendEnv=FQDN", `${USER}@127.0.0.1`, "sudo -n bash -s"],
        { input: 'echo "uid=$EUID fqdn=${FQDN:-unset}"\n', encoding: "utf8", env: { ...process.env, FQDN: "leak.example.org" } },
    );
    expect(r.stdout.trim()).toBe("uid=0 fqdn=unset");
});

test("a second run of every step succeeds and changes nothing that matters", () => {
    const conf = fs.readFileSync(box.file("root/etc/turnserver.conf"), "utf8");
    fs.writeFileSync(box.file("calls.log"), "");
    const again: Record<string, string> = {
        "turn-coturn": DONE["turn-coturn"],
        "bbb-1-install": "bbb-installer: bbb-install.sh already ran with these inputs; nothing to do",
        "bbb-1-configure": "bbb-configure: the secret and properties are as wanted",
        "bbb-1-data-policy": DONE["bbb-1-data-policy"],
    };
    for (const [name, said] of Object.entries(again)) {
        const r = overSsh(name);
        expect([name, r.status, r.output]).toEqual([name, 0, expect.stringContaining(said)]);
    }
    expect(fs.readFileSync(box.file("root/etc/turnserver.conf"), "utf8")).toBe(conf);
    expect(box.calls("bbb-install.sh")).toEqual([]);
    expect(box.calls("bbb-conf").filter((c) => /setsecret|restart/.test(c))).toEqual([]);
});
