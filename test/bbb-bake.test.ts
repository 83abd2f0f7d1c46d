// scripts/remote/bbb-bake.sh on a builder, and bbb-installer.sh finalising a server booted from a clone of its
// disk, run for real against the stubs of ./stubs: a bbb-install.sh that installs BigBlueButton's packages only
// where dpkg says they are not installed, the packages' postinsts, bbb-conf --setip, cloud-init clean.
import * as fs from "fs";
import * as path from "path";
import { Sandbox } from "./sandbox";
import { bootedFromClone, installStubs } from "./stubs";
import { secretsOnCommandLines, Trace } from "./trace";
import { BASE_CONFIG, byName, evaluate, stepInputs } from "./harness";

const KEY = "1a2b3c4d".repeat(8);
const BAKE_NAME = "bbb-bake-jammy-300-1a2b3c4d";
const URL = "https://raw.githubusercontent.com/bigbluebutton/bbb-install/26ce2d16c2a82ef962d685525b0c20bb89d4d151/bbb-install.sh";
/** The builder: behind a floating IP; its private address is the one the packages' postinsts find (the stubs' 10.0.0.11). */
const BAKE = { BAKE_NAME, BAKE_KEY: KEY, VERSION: "jammy-300", INSTALLER_URL: URL, PUBLIC_IPV4: "203.0.113.11", PRIVATE_IPV4: "10.0.0.11", TIMEOUT_SECONDS: "60" };
const SECRET = "ServerSecret0123456789abcdefghijklmnopq";
const TURN_SECRET = "fedcba9876543210".repeat(4);
const PROPERTIES = "disableRecordingDefault=true\nallowStartStopRecording=false\nallowRevealOfBBBVersion=false";
/** A pool server booted from the bake, behind NAT (its floating IP is not its own address). */
const SERVER = {
    FQDN: "bbb-7.example.org", EMAIL: "ops@example.org", VERSION: "jammy-300", INSTALLER_URL: URL, TURN_HOST: "turn.example.org", TURN_SECRET,
    GREENLIGHT: "false", FORCE_REINSTALL: "false", UPGRADE_IN_PLACE: "false", TIMEOUT_SECONDS: "60", PUBLIC_IPV4: "203.0.113.27", PRIVATE_IPV4: "10.0.0.27",
    BAKE_KEY: KEY,
};
/** What the bbb-seed step gives the finalise, once, before the installer step. */
const SEED = { SECRET, PROPERTIES };
const CONFIGURE = { FQDN: SERVER.FQDN, SECRET, PROPERTIES, API_WAIT_SECONDS: "0", INSTALL_ID: "0".repeat(64), FORCE_RESTART: "false" };

/** What identifies the builder before the bake: cloud-init's instance, the machine id, SSH's keys, its name, logs. */
function builderHost(box: Sandbox): void {
    box.write("root/etc/machine-id", "0f1e2d3c4b5a69788796a5b4c3d2e1f0\n");
    box.write("root/etc/ssh/ssh_host_ed25519_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nbuilder\n");
    box.write("root/etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAAbuilder root@builder\n");
    box.write("root/root/.ssh/authorized_keys", "ssh-ed25519 AAAAoperator ops\n");
    box.write("root/home/ubuntu/.ssh/authorized_keys", "ssh-ed25519 AAAAoperator ops\n");
    box.write("root/etc/hostname", `${BAKE_NAME}-builder\n`);
    box.write("root/etc/hosts", `127.0.0.1 localhost\n127.0.1.1 ${BAKE_NAME}-builder\n::1 ip6-localhost\n`);
    box.write("root/var/lib/cloud/instance/obj.pkl", "builder instance\n");
    box.write("root/var/lib/cloud/seed/nocloud/meta-data", "");
    box.write("root/var/log/cloud-init.log", `${BAKE_NAME}-builder\n`);
    box.write("root/var/log/journal/0f1e2d3c/system.journal", "journal\n");
    box.write("root/var/log/bigbluebutton/bbb-web.log", "log\n");
    box.write("root/tmp/carriage-return.abc123", "");
}

const read = (box: Sandbox, file: string) => fs.readFileSync(path.join(box.root, file), "utf8");
const exists = (box: Sandbox, file: string) => fs.existsSync(path.join(box.root, file));
const mode = (box: Sandbox, file: string) => (fs.statSync(path.join(box.root, file)).mode & 0o777).toString(8);
/** Every file under the root whose text holds `text`. */
const filesHolding = (box: Sandbox, text: string) => box.files().filter((f) => !fs.lstatSync(path.join(box.root, f)).isSymbolicLink() && read(box, f).includes(text));
/** A copy of a sandbox (the same host at this moment). */
function copyOf(box: Sandbox): Sandbox {
    const dir = `${box.dir}-copy-${Math.random().toString(36).slice(2, 8)}`;
    fs.cpSync(box.dir, dir, { recursive: true, verbatimSymlinks: true });
    return Sandbox.at(dir);
}
const restarts = (box: Sandbox) => box.calls("bbb-conf").filter((c) => /^bbb-conf --(setip|restart|start)\b/.test(c));

let baked: Sandbox;
let bake: ReturnType<Sandbox["run"]>;
/** The -c secret the bake made (the stub bbb-install.sh records its arguments outside the host's root). */
let placeholderSecret: string;
const trace = new Trace();
const boxes: Sandbox[] = [];
const track = (box: Sandbox) => (boxes.push(box), box);

beforeAll(() => {
    baked = track(new Sandbox());
    installStubs(baked);
    builderHost(baked);
    bake = baked.run("bbb-bake", BAKE, trace.env);
    placeholderSecret = /-c turn\.[^:]+:([0-9a-f]+)/.exec(baked.calls("bbb-install.sh")[0] ?? "")?.[1] ?? "";
});
afterAll(() => {
    for (const box of boxes) box.cleanup();
    trace.remove();
});

describe("bbb-bake", () => {
    test("installs BigBlueButton's packages for a placeholder host: no -e (no certificate), -c a throwaway TURN server, no -g", () => {
        expect(bake.stderr).toBe("");
        expect(bake.status).toBe(0);
        expect(bake.stdout).toContain(`baked ${BAKE_NAME} (BigBlueButton jammy-300, key ${KEY}): nothing of this host left; powering off in 5 s`);
        expect(baked.calls("bbb-install.sh")).toEqual([`bbb-install.sh -v jammy-300 -s ${BAKE_NAME}.invalid -c turn.${BAKE_NAME}.invalid:${placeholderSecret}`]);
        expect(placeholderSecret).toMatch(/^[0-9a-f]{64}$/);
        expect(baked.calls("apt-get")).toEqual(["apt-get install -yq bigbluebutton"]);
        expect(baked.calls("certbot")).toEqual([]);
        // The package's site, on port 80 only: install_ssl did not run.
        expect(read(baked, "etc/nginx/sites-available/bigbluebutton")).not.toContain("443");
        // No NAT set-up in the image: no address on lo, no dummy-nic.service.
        expect(exists(baked, "lib/systemd/system/dummy-nic.service")).toBe(false);
    });

    test("leaves nothing that identifies the builder, file by file", () => {
        const web = read(baked, "etc/bigbluebutton/bbb-web.properties");
        const checks: [string, unknown, unknown][] = [
            ["machine id (cloud-init clean --machine-id: systemd makes one at boot)", read(baked, "etc/machine-id"), "uninitialized\n"],
            ["cloud-init's instance state", fs.readdirSync(path.join(baked.root, "var/lib/cloud")), ["seed"]],
            ["cloud-init's log", exists(baked, "var/log/cloud-init.log"), false],
            ["SSH host keys", fs.readdirSync(path.join(baked.root, "etc/ssh")), []],
            ["root's authorized_keys", exists(baked, "root/.ssh/authorized_keys"), false],
            ["ubuntu's authorized_keys", exists(baked, "home/ubuntu/.ssh/authorized_keys"), false],
            ["host name", read(baked, "etc/hostname"), ""],
            ["its /etc/hosts line", read(baked, "etc/hosts"), "127.0.0.1 localhost\n::1 ip6-localhost\n"],
            ["TURN servers", exists(baked, "etc/bigbluebutton/turn-stun-servers.xml"), false],
            ["API secret", /securitySalt/.test(web), false],
            ["placeholder's URL", web.includes(BAKE_NAME), false],
            ["bbb-apps-akka's copy of the secret", /sharedSecret=""/.test(read(baked, "etc/bigbluebutton/bbb-apps-akka.conf")), true],
            ["ESL password (event_socket.conf.xml)", read(baked, "opt/freeswitch/etc/freeswitch/autoload_configs/event_socket.conf.xml"), expect.stringContaining('name="password" value="ClueCon"')],
            ["ESL password (bbb-fsesl-akka.conf)", read(baked, "etc/bigbluebutton/bbb-fsesl-akka.conf"), expect.stringContaining('password="ClueCon"')],
            ["ESL password (production.yml)", read(baked, "etc/bigbluebutton/bbb-webrtc-sfu/production.yml"), "freeswitch:\n  esl_password: ClueCon\n"],
            ["Hasura's admin secret", read(baked, "etc/default/bbb-graphql-server"), expect.stringContaining("HASURA_GRAPHQL_ADMIN_SECRET=bigbluebutton\n")],
            ["Hasura's admin secret (config.yaml)", read(baked, "usr/share/bbb-graphql-server/config.yaml"), expect.stringContaining("admin_secret: bigbluebutton\n")],
            ["Etherpad's API key", exists(baked, "usr/share/etherpad-lite/APIKEY.txt"), false],
            ["FreeSWITCH's local_ip_v4", read(baked, "opt/freeswitch/etc/freeswitch/vars.xml").includes("local_ip_v4"), false],
            ["this program's records (only the marker)", fs.readdirSync(path.join(baked.root, "var/lib/bbb-deploy")), ["baked"]],
            ["this program's logs", exists(baked, "var/log/bbb-deploy"), false],
            ["BigBlueButton's logs", fs.readdirSync(path.join(baked.root, "var/log/bigbluebutton")), []],
            ["the journal", fs.readdirSync(path.join(baked.root, "var/log/journal")), []],
            ["/tmp", fs.readdirSync(path.join(baked.root, "tmp")), []],
            ["certificate lineages", exists(baked, "etc/letsencrypt"), false],
        ];
        for (const [what, actual, wanted] of checks) expect([what, actual]).toEqual([what, wanted]);
        // BigBlueButton and nginx stopped before the disk is cloned.
        expect(baked.calls("bbb-conf")).toContain("bbb-conf --stop");
        expect(baked.calls("systemctl")).toContain("systemctl stop nginx");
    });

    test("the placeholder TURN secret is in no file of the disk", () => {
        expect(placeholderSecret).not.toBe("");
        expect(filesHolding(baked, placeholderSecret)).toEqual([]);
    });

    test("writes the marker root-only, syncs, and schedules the power-off so that the SSH session returns first", () => {
        expect(read(baked, "var/lib/bbb-deploy/baked")).toBe(`BAKE_KEY=${KEY}\nBAKE_NAME=${BAKE_NAME}\nPUBLIC_IPV4=203.0.113.11\nPRIVATE_IPV4=10.0.0.11\n`);
        expect(mode(baked, "var/lib/bbb-deploy/baked")).toBe("600");
        expect(baked.calls("sync")).toHaveLength(1);
        expect(baked.calls("systemd-run").filter((c) => c.includes("poweroff"))).toEqual(["systemd-run --on-active=5 --quiet systemctl poweroff"]);
        expect(baked.calls("systemctl").filter((c) => c.includes("poweroff"))).toEqual([]);
    });

    test("run again with the same key, it does not install again: it redoes the scrub and schedules the power-off again", () => {
        const again = track(copyOf(baked));
        // Booted again meanwhile: cloud-init made a new instance and host keys.
        again.write("root/etc/ssh/ssh_host_ed25519_key", "new\n");
        again.write("root/var/lib/cloud/instance/obj.pkl", "new\n");
        const r = again.run("bbb-bake", BAKE);
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(r.stdout).toContain(`${BAKE_NAME} is baked already`);
        expect(again.calls("bbb-install.sh")).toHaveLength(1);
        expect(exists(again, "etc/ssh/ssh_host_ed25519_key")).toBe(false);
        expect(exists(again, "var/lib/cloud/instance")).toBe(false);
        expect(again.calls("systemd-run").filter((c) => c.includes("poweroff"))).toHaveLength(2);
    });

    test("a bake whose installer dies midway fails, leaves no marker, and the next run finishes it", () => {
        const box = track(new Sandbox());
        installStubs(box);
        const failed = box.run("bbb-bake", BAKE, { INSTALLER_DIES: "1" });
        expect(failed.status).toBe(1);
        expect(failed.stderr).toContain("bbb-bake: error: bbb-install.sh failed with exit code 100");
        expect(exists(box, "var/lib/bbb-deploy/baked")).toBe(false);
        expect(box.calls("systemd-run").filter((c) => c.includes("poweroff"))).toEqual([]);
        const r = box.run("bbb-bake", BAKE);
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(exists(box, "var/lib/bbb-deploy/baked")).toBe(true);
        expect(box.calls("bbb-install.sh")).toHaveLength(2);
    });

    test("refuses a name that is no DNS label or a key that is not 64 hex digits, before anything runs", () => {
        const box = track(new Sandbox());
        installStubs(box);
        for (const [inputs, said] of [
            [{ ...BAKE, BAKE_NAME: "Bake_1" }, "BAKE_NAME 'Bake_1' is not a DNS label"],
            [{ ...BAKE, BAKE_KEY: "abc" }, "BAKE_KEY must be 64 lower-case hex digits"],
        ] as const) {
            const r = box.run("bbb-bake", inputs);
            expect([r.status, r.stderr]).toEqual([1, expect.stringContaining(said)]);
        }
        expect(box.calls()).toEqual([]);
    });
});

describe("bbb-installer on a server booted from a clone of the bake (finalise)", () => {
    let server: Sandbox;
    let finalise: ReturnType<Sandbox["run"]>;
    let seeded: ReturnType<Sandbox["run"]>;
    let seedModes: string[];
    beforeAll(() => {
        server = track(bootedFromClone(baked));
        seeded = server.run("bbb-seed", SEED, trace.env);
        seedModes = ["secret", "properties"].map((f) => (fs.statSync(server.file(`root/var/lib/bbb-deploy/seed/${f}`)).mode & 0o777).toString(8));
        finalise = server.run("bbb-installer", SERVER, trace.env);
    });

    test("the seed step leaves the secret and properties root-only, and the finalise takes them away", () => {
        expect(seeded.status).toBe(0);
        expect(seedModes).toEqual(["600", "600"]);
        expect(exists(server, "var/lib/bbb-deploy/seed")).toBe(false);
    });

    test("installs no package, restarts BigBlueButton once, and the server's name, addresses and secret are where they belong", () => {
        expect(finalise.stderr).toBe("");
        expect(finalise.status).toBe(0);
        expect(finalise.stdout).toContain(`finalised: bbb-7.example.org holds nothing of the bake ${BAKE_NAME}`);
        expect(server.calls("apt-get")).toEqual([]);
        expect(restarts(server)).toEqual(["bbb-conf --setip bbb-7.example.org"]);
        expect(server.calls("bbb-install.sh")).toEqual([`bbb-install.sh -v jammy-300 -s bbb-7.example.org -e ops@example.org -c turn.example.org:${TURN_SECRET}`]);
        const web = read(server, "etc/bigbluebutton/bbb-web.properties");
        expect(web).toContain("bigbluebutton.web.serverURL=https://bbb-7.example.org\n");
        expect(web).toContain(`securitySalt=${SECRET}\n`);
        for (const line of PROPERTIES.split("\n")) expect(web).toContain(`${line}\n`);
        expect(read(server, "etc/bigbluebutton/bbb-apps-akka.conf")).toContain(`bbbWebAPI="https://bbb-7.example.org/bigbluebutton/api"\n  sharedSecret="${SECRET}"`);
        expect(read(server, "usr/local/bigbluebutton/core/scripts/bigbluebutton.yml")).toContain("playback_host: bbb-7.example.org\n");
        expect(read(server, "etc/nginx/sites-available/bigbluebutton")).toContain("server_name bbb-7.example.org;");
        expect(exists(server, "etc/letsencrypt/live/bbb-7.example.org/fullchain.pem")).toBe(true);
        const vars = read(server, "opt/freeswitch/etc/freeswitch/vars.xml");
        expect(vars).toContain('data="local_ip_v4=10.0.0.27"');
        expect(vars).toContain('data="external_rtp_ip=203.0.113.27"');
        expect(read(server, "etc/bigbluebutton/bbb-webrtc-sfu/production.yml")).toContain("announcedIp: 203.0.113.27");
        expect(read(server, "usr/share/bigbluebutton/nginx/sip.nginx")).toContain("proxy_pass http://203.0.113.27:5066;");
        expect(read(server, "etc/bigbluebutton/turn-stun-servers.xml")).toContain("turn:turn.example.org:3478");
        expect(fs.readFileSync(server.file("lo-addrs"), "utf8")).toBe("203.0.113.27/32\n");
        // The API answers with the server's secret.
        expect(fs.readFileSync(server.file("running-salt"), "utf8")).toBe(`${SECRET}\n`);
        expect(exists(server, "var/lib/bbb-deploy/baked")).toBe(false);
    });

    test("the server's own ESL password, Hasura admin secret and Etherpad key, none the bake's", () => {
        const esl = /name="password" value="([^"]*)"/.exec(read(server, "opt/freeswitch/etc/freeswitch/autoload_configs/event_socket.conf.xml"))![1];
        expect(esl).not.toBe("ClueCon");
        expect(read(server, "etc/bigbluebutton/bbb-fsesl-akka.conf")).toContain(`password="${esl}"`);
        expect(read(server, "etc/bigbluebutton/bbb-webrtc-sfu/production.yml")).toContain(`esl_password: ${esl}`);
        const hasura = /HASURA_GRAPHQL_ADMIN_SECRET=(.*)/.exec(read(server, "etc/default/bbb-graphql-server"))![1];
        expect(hasura).toMatch(/^[0-9a-f]{64}$/);
        expect(read(server, "usr/share/bbb-graphql-server/config.yaml")).toContain(`admin_secret: ${hasura}\n`);
        expect(read(server, "usr/share/etherpad-lite/APIKEY.txt")).toMatch(/^[0-9a-f]{64}\n$/);
        // The bake's: ClueCon, Hasura's package default, no Etherpad key.
        expect(read(baked, "etc/default/bbb-graphql-server")).toContain("HASURA_GRAPHQL_ADMIN_SECRET=bigbluebutton");
        expect(exists(baked, "usr/share/etherpad-lite/APIKEY.txt")).toBe(false);
    });

    test("then bbb-configure with the same secret and properties finds nothing to change and does not restart BigBlueButton; the installer run again does nothing", () => {
        const box = track(copyOf(server));
        const before = restarts(box).length;
        const r = box.run("bbb-configure", CONFIGURE);
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("the secret and properties are as wanted");
        expect(restarts(box)).toHaveLength(before);
        const again = box.run("bbb-installer", SERVER);
        expect(again.status).toBe(0);
        expect(again.stdout).toContain("bbb-install.sh already ran with these inputs; nothing to do");
        expect(box.calls("bbb-install.sh")).toHaveLength(1);
    });

    test("no secret on any command line: the bake's TURN secret, the API secret, Hasura's and Etherpad's", () => {
        const secrets = [
            placeholderSecret,
            SECRET,
            TURN_SECRET,
            /HASURA_GRAPHQL_ADMIN_SECRET=(.*)/.exec(read(server, "etc/default/bbb-graphql-server"))![1],
            read(server, "usr/share/etherpad-lite/APIKEY.txt").trim(),
        ];
        const execs = trace.execs();
        expect(execs.map((e) => e.argv[0])).toEqual(expect.arrayContaining(["systemd-run", "cloud-init", "sed"]));
        // (The stubs' own records: the stub bbb-install.sh is started by bash with the -c value inserted, never on a command line.)
        expect(secretsOnCommandLines(execs, secrets)).toEqual([]);
    });

    test("without a seed, the finalise leaves the secret and properties to bbb-configure, which restarts BigBlueButton once more", () => {
        const box = track(bootedFromClone(baked));
        const r = box.run("bbb-installer", SERVER);
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("no seed (bbb-seed step): the API secret and properties are left to bbb-configure");
        expect(read(box, "etc/bigbluebutton/bbb-web.properties")).not.toContain(SECRET);
        const before = restarts(box).length;
        expect(box.run("bbb-configure", CONFIGURE).status).toBe(0);
        expect(restarts(box)).toHaveLength(before + 1);
        expect(fs.readFileSync(box.file("running-salt"), "utf8")).toBe(`${SECRET}\n`);
    });

    test("the seed step on a server that is not baked (or finalised already) writes nothing", () => {
        const r = server.run("bbb-seed", SEED);
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("not booted from a bake (or finalised already): nothing to seed");
        expect(exists(server, "var/lib/bbb-deploy/seed")).toBe(false);
    });

    test("a clone of another bake (BAKE_KEY not the marker's) is refused before anything changes", () => {
        const box = track(bootedFromClone(baked));
        const r = box.run("bbb-installer", { ...SERVER, BAKE_KEY: "9".repeat(64) });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`bbb-7.example.org was booted from the bake ${BAKE_NAME} (key ${KEY}), not from ${"9".repeat(64)} as this program says (BAKE_KEY)`);
        expect(box.calls("bbb-install.sh")).toEqual([]);
        expect(exists(box, "var/lib/bbb-deploy/baked")).toBe(true);
    });

    test("a finalise whose installer dies midway keeps the marker; the next run finalises", () => {
        const box = track(bootedFromClone(baked));
        expect(box.run("bbb-seed", SEED).status).toBe(0);
        const failed = box.run("bbb-installer", SERVER, { INSTALLER_DIES: "1" });
        expect(failed.status).toBe(1);
        expect(exists(box, "var/lib/bbb-deploy/baked")).toBe(true);
        const r = box.run("bbb-installer", SERVER);
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("finalised: bbb-7.example.org holds nothing of the bake");
        expect(exists(box, "var/lib/bbb-deploy/baked")).toBe(false);
    });

    test("a finalise that finds the bake's name left over fails naming the file, and keeps the marker", () => {
        const box = track(bootedFromClone(baked));
        // A file nothing rewrites (bbb-html5's overrides: neither setip nor bbb-install.sh writes its wssUrl).
        box.write("root/etc/bigbluebutton/bbb-html5.yml", `public:\n  media:\n    wssUrl: wss://${BAKE_NAME}.invalid/ws\n`);
        const r = box.run("bbb-installer", SERVER);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`/etc/bigbluebutton/bbb-html5.yml still holds the bake's name (${BAKE_NAME}) or the builder's address`);
        expect(exists(box, "var/lib/bbb-deploy/baked")).toBe(true);
        expect(exists(box, "var/lib/bbb-deploy/installer.sha256")).toBe(false);
    });
});

describe("the steps as the program gives them (a pool's first deploy, evaluated under mocks)", () => {
    test("the builder bakes with the bake step's inputs, and a server booted from the clone is finalised with its seed, installer and configure steps' inputs", async () => {
        const run = await evaluate({ ...BASE_CONFIG, scalelite: true, poolSize: 1, network: { mode: "floating", name: "private", floatingIpPool: "public" } });
        expect(run.error).toBeUndefined();
        const inputsOf = (name: string) => {
            const { STEP: _step, ...inputs } = stepInputs(byName(run, name).inputs.stdin);
            return inputs;
        };
        const bakeStep = run.resources.find((r) => /^bake-[0-9a-f]{12}-builder-bake$/.test(r.name))!.name;
        const builder = track(new Sandbox());
        installStubs(builder);
        builderHost(builder);
        // The stubs' packages find the builder's address as its own (the program's mock gives the builder 10.0.0.5).
        builder.write("private-ip", `${inputsOf(bakeStep).PRIVATE_IPV4}\n`);
        const baking = builder.run("bbb-bake", { ...inputsOf(bakeStep), TIMEOUT_SECONDS: "60" });
        expect(baking.stderr).toBe("");
        expect(baking.status).toBe(0);
        const server = track(bootedFromClone(builder));
        server.write("private-ip", `${inputsOf("bbb-1-install").PRIVATE_IPV4}\n`);
        expect(server.run("bbb-seed", inputsOf("bbb-1-seed")).status).toBe(0);
        const finalise = server.run("bbb-installer", { ...inputsOf("bbb-1-install"), TIMEOUT_SECONDS: "60" });
        expect(finalise.stderr).toBe("");
        expect(finalise.status).toBe(0);
        expect(finalise.stdout).toContain(`finalised: bbb-1.example.org holds nothing of the bake ${inputsOf(bakeStep).BAKE_NAME}`);
        const before = restarts(server).length;
        const configure = server.run("bbb-configure", { ...inputsOf("bbb-1-configure"), API_WAIT_SECONDS: "0" });
        expect(configure.status).toBe(0);
        expect(restarts(server)).toHaveLength(before);
    }, 60000);
});
