// scripts/remote/bbb-installer.sh and bbb-configure.sh, run for real against a stub bbb-install.sh,
// bbb-conf and a curl that answers like BigBlueButton's API (checksums checked).
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Sandbox } from "./sandbox";
import { installedBbb, installStubs } from "./stubs";
import { secretsOnCommandLines, Trace } from "./trace";

const TURN_SECRET = "fedcba9876543210".repeat(4);
const OLD_SECRET = "OldSecret0123456789abcdefghijklmnopqrstuv";
const NEW_SECRET = "NewSecret0123456789abcdefghijklmnopqrstuv";
const URL = "https://raw.githubusercontent.com/bigbluebutton/bbb-install/v3.0.x-release/bbb-install.sh";
const INSTALL = {
    FQDN: "bbb-1.example.org",
    EMAIL: "ops@example.org",
    VERSION: "jammy-300",
    INSTALLER_URL: URL,
    TURN_HOST: "turn.example.org",
    TURN_SECRET,
    GREENLIGHT: "true",
    GREENLIGHT_VERSION: "v3.8.2.4",
    FORCE_REINSTALL: "false",
    UPGRADE_IN_PLACE: "true",
    TIMEOUT_SECONDS: "60",
    PUBLIC_IPV4: "10.0.0.11",
    PRIVATE_IPV4: "10.0.0.11",
};
const CONFIGURE = {
    FQDN: "bbb-1.example.org",
    SECRET: NEW_SECRET,
    PROPERTIES: "disableRecordingDefault=true\nallowStartStopRecording=false\nallowRevealOfBBBVersion=false",
    API_WAIT_SECONDS: "0",
    INSTALL_ID: "0".repeat(64),
    FORCE_RESTART: "false",
};

let box: Sandbox;
beforeEach(() => {
    box = new Sandbox();
    installStubs(box);
});
afterEach(() => box.cleanup());

const installerRuns = () => box.calls("bbb-install.sh");
const props = () => fs.readFileSync(box.file("root/etc/bigbluebutton/bbb-web.properties"), "utf8");

describe("bbb-installer", () => {
    test("downloads the pinned installer and runs it with the exact flags", () => {
        const r = box.run("bbb-installer", INSTALL);
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(box.calls("curl")).toEqual([`curl -fsSL --retry 5 --max-time 120 -o ${box.root}/var/lib/bbb-deploy/bbb-install.sh.new ${URL}`]);
        expect(installerRuns()).toEqual([`bbb-install.sh -v jammy-300 -s bbb-1.example.org -e ops@example.org -c turn.example.org:${TURN_SECRET} -g`]);
    });

    describe("behind a floating IP (1:1 NAT: the VM has only its private address)", () => {
        const NAT = { ...INSTALL, PUBLIC_IPV4: "203.0.113.11", PRIVATE_IPV4: "10.0.0.11" };
        const vars = () => fs.readFileSync(box.file("root/opt/freeswitch/etc/freeswitch/vars.xml"), "utf8");
        const sfu = () => fs.readFileSync(box.file("root/etc/bigbluebutton/bbb-webrtc-sfu/production.yml"), "utf8");
        const lo = () => fs.readFileSync(box.file("lo-addrs"), "utf8");
        beforeEach(() => {
            box.write("private-ip", "10.0.0.11\n");
            box.write("public-ip", "203.0.113.11\n");
        });

        test("where the router does not hairpin, FreeSWITCH and the media server announce the public address all the same", () => {
            const r = box.run("bbb-installer", NAT);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(vars()).toContain('data="external_rtp_ip=203.0.113.11"');
            expect(vars()).toContain('data="external_sip_ip=203.0.113.11"');
            expect(sfu()).toContain("announcedIp: 203.0.113.11");
            expect(sfu()).not.toContain("10.0.0.11");
            // bbb-install.sh's NAT set-up: the public address on lo, again at boot (dummy-nic.service).
            expect(lo()).toBe("203.0.113.11/32\n");
            expect(fs.readFileSync(box.file("root/lib/systemd/system/dummy-nic.service"), "utf8")).toContain("ip addr add 203.0.113.11 dev lo");
        });

        test("the installer runs again (a new version) although its NAT set-up put the address on lo (its `ip addr add` fails when it is there)", () => {
            expect(box.run("bbb-installer", NAT, { HAIRPIN: "1" }).status).toBe(0);
            installedBbb(box, OLD_SECRET);
            const r = box.run("bbb-installer", { ...NAT, VERSION: "jammy-301" }, { HAIRPIN: "1" });
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(installerRuns()).toHaveLength(2);
            expect(lo()).toBe("203.0.113.11/32\n");
        });

        test("a server that announces its private address (installed without hairpin by an earlier version of this program) is installed again once idle", () => {
            expect(box.run("bbb-installer", NAT).status).toBe(0);
            installedBbb(box, OLD_SECRET);
            fs.writeFileSync(box.file("root/etc/bigbluebutton/bbb-webrtc-sfu/production.yml"), sfu().replaceAll("203.0.113.11", "10.0.0.11"));
            const r = box.run("bbb-installer", NAT);
            expect(r.status).toBe(0);
            expect(r.stdout).toContain("the media server (bbb-webrtc-sfu) announces 10.0.0.11, not 203.0.113.11");
            expect(installerRuns()).toHaveLength(2);
            expect(sfu()).not.toContain("10.0.0.11");
            // While meetings run it waits, as for any other reason to run the installer.
            fs.writeFileSync(box.file("root/etc/bigbluebutton/bbb-webrtc-sfu/production.yml"), sfu().replaceAll("203.0.113.11", "10.0.0.11"));
            box.write("meetings", "lecture-7\n");
            const busy = box.run("bbb-installer", NAT);
            expect(busy.status).toBe(1);
            expect(busy.stderr).toContain("1 meeting(s) running on bbb-1.example.org");
            expect(installerRuns()).toHaveLength(2);
        });

        test.each([
            ["bbb-webrtc-sfu's plain RTP", (sfu: string) => sfu.replace(/(plainRtp:\n\s+listenIp:\n\s+announcedIp:) 203\.0\.113\.11/, "$1 10.0.0.11"), "bbb-webrtc-sfu's RTP with FreeSWITCH (plainRtp) announces 10.0.0.11, not 203.0.113.11"],
            ["no media server address at all", () => "log:\n  level: warn\n", "the media server (bbb-webrtc-sfu) announces nothing, not 203.0.113.11"],
        ])("a server whose %s is wrong is installed again", (_, edit, said) => {
            expect(box.run("bbb-installer", NAT).status).toBe(0);
            installedBbb(box, OLD_SECRET);
            fs.writeFileSync(box.file("root/etc/bigbluebutton/bbb-webrtc-sfu/production.yml"), edit(sfu()));
            const r = box.run("bbb-installer", NAT);
            expect(r.stdout).toContain(said);
            expect(installerRuns()).toHaveLength(2);
        });

        test.each([
            ["the public address is not on lo", () => fs.writeFileSync(box.file("lo-addrs"), ""), "203.0.113.11 is not on lo (bbb-install.sh's NAT set-up)"],
            ["nothing puts it on lo at boot", () => fs.rmSync(box.file("root/lib/systemd/system/dummy-nic.service")), "dummy-nic.service does not put 203.0.113.11 on lo at boot"],
        ])("behind NAT, where %s, the server is installed again", (_, edit, said) => {
            expect(box.run("bbb-installer", NAT).status).toBe(0);
            installedBbb(box, OLD_SECRET);
            edit();
            const r = box.run("bbb-installer", NAT);
            expect(r.stdout).toContain(said);
            expect(installerRuns()).toHaveLength(2);
            expect(lo()).toBe("203.0.113.11/32\n");
        });

        test("in a pool, a server to install again for its address waits until it hosts no meeting, forceReinstall or not (nothing takes it out of service for this)", () => {
            const POOL = { ...NAT, UPGRADE_IN_PLACE: "false" };
            expect(box.run("bbb-installer", POOL).status).toBe(0);
            installedBbb(box, OLD_SECRET);
            fs.writeFileSync(box.file("lo-addrs"), "");
            box.write("meetings", "lecture-7\n");
            for (const force of ["false", "true"]) {
                const r = box.run("bbb-installer", { ...POOL, FORCE_REINSTALL: force });
                expect(r.status).toBe(0);
                expect(r.stdout).toContain("bbb-1.example.org hosts meetings (or does not say): bbb-install.sh runs again once it hosts none");
            }
            expect(installerRuns()).toHaveLength(1);
            expect(fs.readFileSync(box.file("meetings"), "utf8")).toBe("lecture-7\n");
            box.write("meetings", "");
            expect(box.run("bbb-installer", POOL).status).toBe(0);
            expect(installerRuns()).toHaveLength(2);
            expect(lo()).toBe("203.0.113.11/32\n");
        });

        test.each([
            ["fails", { INSTALLER_RC: "3" }],
            ["dies midway", { INSTALLER_DIES: "1" }],
            ["is killed with its unit", { INSTALLER_KILLED: "1" }],
        ])("an installer that %s after the address left lo puts it back (FreeSWITCH's websockets and nginx use it)", (_, env) => {
            expect(box.run("bbb-installer", NAT).status).toBe(0);
            installedBbb(box, OLD_SECRET);
            expect(box.run("bbb-installer", { ...NAT, VERSION: "jammy-301" }, env).status).toBe(1);
            expect(lo()).toBe("203.0.113.11/32\n");
        });

        test("an installer that systemd-run does not start leaves the address on lo (it is taken off right before the installer)", () => {
            expect(box.run("bbb-installer", NAT).status).toBe(0);
            installedBbb(box, OLD_SECRET);
            box.write("root/etc/systemd/system/bbb-deploy-install.service", "[Service]\nExecStart=/root/bbb-install.sh\n");
            expect(box.run("bbb-installer", { ...NAT, VERSION: "jammy-301" }).status).toBe(1);
            expect(lo()).toBe("203.0.113.11/32\n");
        });

        test("an installer that announces another address all the same (another bbbInstallerRef) fails the step, naming what announces what", () => {
            const r = box.run("bbb-installer", NAT, { INSTALLER_IGNORES_IP: "1" });
            expect(r.status).toBe(1);
            expect(r.stderr).toContain("FreeSWITCH (external_rtp_ip in vars.xml) announces 10.0.0.11, not 203.0.113.11");
            expect(r.stderr).toContain("the media server (bbb-webrtc-sfu) announces 10.0.0.11, not 203.0.113.11");
        });

        test("without NAT (a provider network: the public address is the VM's own) nothing goes on lo", () => {
            box.write("public-ip", "10.0.0.11\n");
            expect(box.run("bbb-installer", INSTALL).status).toBe(0);
            expect(vars()).toContain('data="external_rtp_ip=10.0.0.11"');
            expect(fs.existsSync(box.file("lo-addrs")) ? lo() : "").toBe("");
        });

        test("an address on lo that cannot be taken off (a root without CAP_NET_ADMIN) stops the step before the installer runs again", () => {
            expect(box.run("bbb-installer", NAT).status).toBe(0);
            installedBbb(box, OLD_SECRET);
            const r = box.run("bbb-installer", { ...NAT, VERSION: "jammy-301" }, { IP_FAIL: "del" });
            expect(r.status).toBe(1);
            expect(r.stderr).toContain("RTNETLINK answers: Operation not permitted\nbbb-installer: error: cannot take 203.0.113.11 off lo for bbb-install.sh's NAT set-up (see: journalctl -u bbb-deploy-install)");
            expect(installerRuns()).toHaveLength(1);
            expect(lo()).toBe("203.0.113.11/32\n");
            expect(box.files().filter((f) => f.includes("pending"))).toEqual([]);
        });

        test("addresses that are not IPv4 addresses are refused before anything runs", () => {
            const r = box.run("bbb-installer", { ...NAT, PUBLIC_IPV4: "203.0.113" });
            expect(r.status).toBe(1);
            expect(r.stderr).toContain("PUBLIC_IPV4 '203.0.113' is not an IPv4 address");
            expect(installerRuns()).toEqual([]);
        });
    });

    describe("with -g (Greenlight on this host)", () => {
        const COMPOSE = "root/root/greenlight-v3/docker-compose.yml";
        const running = () => fs.readFileSync(box.file("docker/compose/greenlight-v3"), "utf8").trim();

        test("Greenlight runs, from the pinned image: bbb-install.sh's docker-compose 1.24.0 would refuse Greenlight 3.8's compose file", () => {
            const r = box.run("bbb-installer", INSTALL);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(running()).toBe("bigbluebutton/greenlight:v3.8.2.4");
            expect(fs.readFileSync(box.file(COMPOSE), "utf8")).toContain("    image: bigbluebutton/greenlight:v3.8.2.4\n");
            expect(fs.readFileSync(box.file("docker/compose/postgres"), "utf8").trim()).toBe("postgres:14-alpine3.20");
        });

        test("a docker-compose 1.24.0 left by an earlier bbb-install.sh run is replaced before the installer runs again", () => {
            box.write("root/usr/local/bin/docker-compose", fs.readFileSync(box.file("compose-1.24.stub"), "utf8"));
            fs.chmodSync(box.file("root/usr/local/bin/docker-compose"), 0o755);
            expect(box.run("bbb-installer", INSTALL).status).toBe(0);
            expect(running()).toBe("bigbluebutton/greenlight:v3.8.2.4");
        });

        test("Docker Compose v2 missing (docker-ce-cli only recommends it; an image may install no recommends) is installed", () => {
            box.write("no-compose-plugin", "");
            expect(box.run("bbb-installer", INSTALL).status).toBe(0);
            // BigBlueButton's packages (bbb-install.sh, on a new host), then the plugin (the Compose shim, when Greenlight is installed).
            expect(box.calls("apt-get")).toEqual(["apt-get install -yq bigbluebutton", "apt-get install -y -q docker-compose-plugin"]);
            expect(running()).toBe("bigbluebutton/greenlight:v3.8.2.4");
        });

        test("Docker Compose v2 that cannot be installed fails the installer, naming the package", () => {
            // On a host where BigBlueButton's packages are installed (else their install would fail first).
            expect(box.run("bbb-installer", INSTALL).status).toBe(0);
            box.write("no-compose-plugin", "");
            const r = box.run("bbb-installer", { ...INSTALL, VERSION: "jammy-301" }, { APT_FAIL: "1" });
            expect(r.status).toBe(1);
            expect(r.stderr).toContain("Docker Compose v2 is missing (apt-get install docker-compose-plugin)");
            expect(r.stderr).toContain("bbb-installer: error: bbb-install.sh failed with exit code 1");
        });

        test("refuses a Greenlight version that is not an image tag, before anything runs", () => {
            const r = box.run("bbb-installer", { ...INSTALL, GREENLIGHT_VERSION: "v3;reboot" });
            expect(r.status).toBe(1);
            expect(r.stderr).toContain("GREENLIGHT_VERSION 'v3;reboot' is not an image tag");
            expect(installerRuns()).toEqual([]);
        });
    });

    test("bbb-install.sh takes -c TURN_HOST:TURN_SECRET as its own argument, and the secret is on no command line", () => {
        const trace = new Trace();
        try {
            const r = box.run("bbb-installer", INSTALL, trace.env);
            expect([r.status, r.stderr]).toEqual([0, ""]);
            // configure_coturn's bbb-web TURN servers: the TURN host with the stack's secret; no TURN server of its own.
            const xml = fs.readFileSync(box.file("root/etc/bigbluebutton/turn-stun-servers.xml"), "utf8");
            expect(xml.match(/value="[^"]*"/g)).toEqual([`value="${TURN_SECRET}"`, 'value="turn:turn.example.org:3478"', `value="${TURN_SECRET}"`, 'value="turns:turn.example.org:443?transport=tcp"']);
            expect((fs.statSync(box.file("root/etc/bigbluebutton/turn-stun-servers.xml")).mode & 0o777).toString(8)).toBe("640");
            expect(fs.existsSync(box.file("units/haproxy"))).toBe(false);
            const execs = trace.execs();
            expect(execs.some((e) => e.argv.includes(`${box.root}/var/lib/bbb-deploy/bbb-install.sh`))).toBe(true);
            expect(secretsOnCommandLines(execs, [TURN_SECRET])).toEqual([]);
        } finally {
            trace.remove();
        }
    });

    test("an installer that does not take the TURN server of -c fails the step, and the next run installs again", () => {
        const r = box.run("bbb-installer", INSTALL, { INSTALLER_LOCAL_TURN: "1" });
        expect([r.status, r.stderr]).toEqual([
            1,
            expect.stringContaining("bbb-installer: error: bbb-install.sh ran, but bbb-web's TURN servers (/etc/bigbluebutton/turn-stun-servers.xml) are not turn.example.org with the stack's TURN secret"),
        ]);
        expect(`${r.stdout}${r.stderr}`).not.toContain(TURN_SECRET);
        expect(box.run("bbb-installer", INSTALL).status).toBe(0);
        expect(installerRuns()).toHaveLength(2);
    });

    test("a server installed before the TURN secret left the command line keeps its record: the installer does not run again", () => {
        // The record as every version of this program wrote it: a hash of the inputs, and the installer's URL.
        const inputs = [INSTALL.VERSION, INSTALL.FQDN, INSTALL.EMAIL, INSTALL.TURN_HOST, TURN_SECRET, INSTALL.GREENLIGHT].join("\n") + "\n";
        expect(box.run("bbb-installer", INSTALL).status).toBe(0);
        expect(fs.readFileSync(box.file("root/var/lib/bbb-deploy/installer.sha256"), "utf8")).toBe(`${createHash("sha256").update(inputs).digest("hex")}\n`);
        const r = box.run("bbb-installer", INSTALL);
        expect(r.stdout).toContain("bbb-install.sh already ran with these inputs; nothing to do");
        expect(installerRuns()).toHaveLength(1);
    });

    test("a new TURN secret (or host) runs the installer again, once idle, and bbb-web gets it", () => {
        expect(box.run("bbb-installer", INSTALL).status).toBe(0);
        const rotated = "0123456789abcdef".repeat(4);
        box.write("meetings", "lecture-7\n");
        const busy = box.run("bbb-installer", { ...INSTALL, TURN_SECRET: rotated });
        expect([busy.status, busy.stderr]).toEqual([1, expect.stringContaining("1 meeting(s) running on bbb-1.example.org")]);
        box.write("meetings", "");
        expect(box.run("bbb-installer", { ...INSTALL, TURN_SECRET: rotated, TURN_HOST: "turn2.example.org" }).status).toBe(0);
        expect(installerRuns()).toHaveLength(2);
        const xml = fs.readFileSync(box.file("root/etc/bigbluebutton/turn-stun-servers.xml"), "utf8");
        expect(xml).toContain(`value="${rotated}"`);
        expect(xml).toContain('value="turn:turn2.example.org:3478"');
        expect(xml).not.toContain(TURN_SECRET);
    });

    test("without Greenlight there is no -g", () => {
        expect(box.run("bbb-installer", { ...INSTALL, GREENLIGHT: "false" }).status).toBe(0);
        expect(installerRuns()[0]).toMatch(/:[0-9a-f]+$/);
    });

    test("the installer's output goes to a root-only log, with the TURN secret masked", () => {
        const r = box.run("bbb-installer", INSTALL);
        const log = box.file("root/var/log/bbb-deploy/bbb-install.log");
        expect(fs.readFileSync(log, "utf8")).toContain("Installing with -v jammy-300 -s bbb-1.example.org -e ops@example.org -c turn.example.org:[secret] -g");
        expect((fs.statSync(log).mode & 0o777).toString(8)).toBe("600");
        expect(r.stdout).not.toContain("Installing with");
        expect(`${r.stdout}${r.stderr}${fs.readFileSync(log, "utf8")}`).not.toContain(TURN_SECRET);
    });

    test("a failing installer shows the last lines of its log, masked", () => {
        const r = box.run("bbb-installer", INSTALL, { INSTALLER_RC: "3" });
        expect(r.stderr).toContain("Installing with -v jammy-300 -s bbb-1.example.org -e ops@example.org -c turn.example.org:[secret] -g");
        expect(r.stderr).not.toContain(TURN_SECRET);
    });

    test("a second run with the same inputs does not run the installer again", () => {
        expect(box.run("bbb-installer", INSTALL).status).toBe(0);
        const r = box.run("bbb-installer", INSTALL);
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("already ran with these inputs");
        expect(installerRuns()).toHaveLength(1);
        const state = (fs.statSync(box.file("root/var/lib/bbb-deploy/installer.sha256")).mode & 0o777).toString(8);
        expect(state).toBe("600");
        expect(fs.readFileSync(box.file("root/var/lib/bbb-deploy/installer.sha256"), "utf8")).not.toContain(TURN_SECRET);
    });

    describe("another installer ref (bbbInstallerRef, or this program's pin)", () => {
        const PINNED = "https://raw.githubusercontent.com/bigbluebutton/bbb-install/26ce2d16c2a82ef962d685525b0c20bb89d4d151/bbb-install.sh";

        test("alone, it does not run the installer again (it would restart BigBlueButton for the same packages); it says when it applies", () => {
            expect(box.run("bbb-installer", INSTALL).status).toBe(0);
            const r = box.run("bbb-installer", { ...INSTALL, INSTALLER_URL: PINNED });
            expect(r.status).toBe(0);
            expect(r.stdout).toContain(`bbb-install.sh last ran from ${URL}; ${PINNED} runs the next time it runs (a new bbbVersion, a new server)`);
            expect(installerRuns()).toHaveLength(1);
        });

        test("forceReinstall does not run it either (it is set to restart through meetings; in a pool every server would reinstall at once)", () => {
            expect(box.run("bbb-installer", INSTALL).status).toBe(0);
            installedBbb(box, OLD_SECRET);
            box.write("meetings", "lecture-7\n");
            const r = box.run("bbb-installer", { ...INSTALL, INSTALLER_URL: PINNED, FORCE_REINSTALL: "true", UPGRADE_IN_PLACE: "false" });
            expect(r.status).toBe(0);
            expect(installerRuns()).toHaveLength(1);
            expect(fs.readFileSync(box.file("meetings"), "utf8")).toBe("lecture-7\n");
        });

        test("with a new version, it runs the installer from the new ref", () => {
            expect(box.run("bbb-installer", INSTALL).status).toBe(0);
            installedBbb(box, OLD_SECRET);
            expect(box.run("bbb-installer", { ...INSTALL, INSTALLER_URL: PINNED, VERSION: "jammy-301" }).status).toBe(0);
            expect(box.calls("curl").pop()).toContain(PINNED);
            expect(installerRuns()).toHaveLength(2);
            expect(box.run("bbb-installer", { ...INSTALL, INSTALLER_URL: PINNED, VERSION: "jammy-301" }).stdout).toContain("already ran with these inputs");
        });

        // What an earlier version of this program recorded: one hash over the URL (the release branch, its
        // default then) and the other inputs.
        const legacyRecord = (url: string, fqdn = INSTALL.FQDN) => {
            // The host as the installer left it, then the record in the earlier form.
            expect(box.run("bbb-installer", INSTALL).status).toBe(0);
            fs.rmSync(box.file("root/var/lib/bbb-deploy/installer-url"));
            fs.writeFileSync(box.callLog, "");
            const inputs = [url, INSTALL.VERSION, fqdn, INSTALL.EMAIL, INSTALL.TURN_HOST, TURN_SECRET, INSTALL.GREENLIGHT].join("\n") + "\n";
            box.write("root/var/lib/bbb-deploy/installer.sha256", `${createHash("sha256").update(inputs).digest("hex")}\n`);
            box.write("root/var/lib/bbb-deploy/installed-version", `${INSTALL.VERSION}\n`);
            installedBbb(box, OLD_SECRET);
        };

        test("a server installed from the release branch by an earlier version of this program is not installed again for the pin", () => {
            legacyRecord(URL);
            const r = box.run("bbb-installer", { ...INSTALL, INSTALLER_URL: PINNED });
            expect(r.status).toBe(0);
            expect(r.stdout).toContain(`bbb-install.sh last ran from ${URL}`);
            expect(installerRuns()).toEqual([]);
        });

        test("... unless another of its inputs changed too", () => {
            legacyRecord(URL, "bbb-old.example.org");
            expect(box.run("bbb-installer", { ...INSTALL, INSTALLER_URL: PINNED }).status).toBe(0);
            expect(installerRuns()).toHaveLength(1);
        });
    });

    test("toggling forceReinstall alone does not run the installer", () => {
        expect(box.run("bbb-installer", INSTALL).status).toBe(0);
        expect(box.run("bbb-installer", { ...INSTALL, FORCE_REINSTALL: "true" }).status).toBe(0);
        expect(installerRuns()).toHaveLength(1);
    });

    test("refuses to re-run on a host with running meetings, naming how many and what to do", () => {
        expect(box.run("bbb-installer", INSTALL).status).toBe(0);
        installedBbb(box, OLD_SECRET);
        box.write("meetings", "standup\nlecture-7\n");
        const r = box.run("bbb-installer", { ...INSTALL, VERSION: "jammy-301" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-installer: error: 2 meeting(s) running on bbb-1.example.org");
        expect(r.stderr).toContain("forceReinstall: true");
        expect(installerRuns()).toHaveLength(1);
    });

    test("forceReinstall lets it re-run on a busy host", () => {
        installedBbb(box, OLD_SECRET);
        box.write("meetings", "standup\n");
        const r = box.run("bbb-installer", { ...INSTALL, FORCE_REINSTALL: "true" });
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("forceReinstall is set: re-running bbb-install.sh (it restarts every BigBlueButton service) although 1 meeting(s) running");
        expect(installerRuns()).toHaveLength(1);
    });

    test("an idle installed host is upgraded without asking", () => {
        installedBbb(box, OLD_SECRET);
        expect(box.run("bbb-installer", { ...INSTALL, VERSION: "jammy-301" }).status).toBe(0);
        expect(installerRuns()[0]).toContain("-v jammy-301");
    });

    test("in a pool, a new version on an installed server is refused before anything runs: pools upgrade by new servers", () => {
        const pool = { ...INSTALL, UPGRADE_IN_PLACE: "false" };
        expect(box.run("bbb-installer", pool).status).toBe(0);
        const r = box.run("bbb-installer", { ...pool, VERSION: "jammy-301" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-installer: error: bbb-1.example.org runs jammy-300: in a pool, jammy-301 comes with new servers");
        expect(r.stderr).toContain("Raise bbbRelease and roll it out with upgrade");
        expect(installerRuns()).toHaveLength(1);
        // Other changes (a new installer ref, e-mail, TURN) still re-run it in place; forceReinstall upgrades in place.
        expect(box.run("bbb-installer", { ...pool, EMAIL: "noc@example.org" }).status).toBe(0);
        expect(box.run("bbb-installer", { ...pool, VERSION: "jammy-301", FORCE_REINSTALL: "true" }).status).toBe(0);
        expect(installerRuns()).toHaveLength(3);
        expect(fs.readFileSync(box.file("root/var/lib/bbb-deploy/installed-version"), "utf8")).toBe("jammy-301\n");
    });

    test("the guard asks the API with the host's current secret, signed", () => {
        installedBbb(box, OLD_SECRET);
        box.write("meetings", "standup\n");
        box.run("bbb-installer", INSTALL);
        const call = box.calls("curl").find((c) => c.includes("/api/getMeetings"));
        const checksum = require("crypto").createHash("sha1").update(`getMeetings${OLD_SECRET}`).digest("hex");
        expect(call).toBe(`curl -sS --max-time 20 --resolve bbb-1.example.org:443:127.0.0.1 https://bbb-1.example.org/bigbluebutton/api/getMeetings?checksum=${checksum}`);
    });

    test("an installed server whose API does not answer is not taken for an idle one", () => {
        expect(box.run("bbb-installer", INSTALL).status).toBe(0);
        const r = box.run("bbb-installer", { ...INSTALL, EMAIL: "noc@example.org" }, { API_DOWN: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("cannot tell whether meetings run on bbb-1.example.org");
        expect(installerRuns()).toHaveLength(1);
        expect(box.run("bbb-installer", { ...INSTALL, EMAIL: "noc@example.org", FORCE_REINSTALL: "true" }, { API_DOWN: "1" }).status).toBe(0);
        expect(installerRuns()).toHaveLength(2);
    });

    test("a run that did not finish is finished by the next one, while the half-installed BigBlueButton is down", () => {
        expect(box.run("bbb-installer", INSTALL).status).toBe(0);
        box.write("meetings", "lecture\n");
        // The upgrade is forced; bbb-install.sh dies midway, with BigBlueButton stopped (the meeting ended).
        expect(box.run("bbb-installer", { ...INSTALL, VERSION: "jammy-301", FORCE_REINSTALL: "true" }, { INSTALLER_DIES: "1" }).status).toBe(1);
        const r = box.run("bbb-installer", { ...INSTALL, VERSION: "jammy-301" }, { API_DOWN: "1" });
        expect(r.stdout).toContain("an earlier bbb-install.sh run did not finish and BigBlueButton is down; running it again");
        expect(r.status).toBe(0);
        expect(installerRuns()).toHaveLength(3);
        expect(box.files().filter((f) => f.includes("pending"))).toEqual([]);
    });

    test("an installer that failed early, with BigBlueButton still up, is not resumed when the API merely does not answer", () => {
        expect(box.run("bbb-installer", INSTALL).status).toBe(0);
        box.write("meetings", "lecture\nseminar\n");
        expect(box.run("bbb-installer", { ...INSTALL, VERSION: "jammy-301", FORCE_REINSTALL: "true" }, { INSTALLER_RC: "1" }).status).toBe(1);
        box.write("meetings", "lecture\nseminar\n");
        const r = box.run("bbb-installer", { ...INSTALL, VERSION: "jammy-301" }, { API_DOWN: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("cannot tell whether meetings run on bbb-1.example.org");
        expect(installerRuns()).toHaveLength(2);
    });

    test("a download that failed leaves nothing unfinished: the next run asks the meetings check as usual", () => {
        expect(box.run("bbb-installer", INSTALL).status).toBe(0);
        expect(box.run("bbb-installer", { ...INSTALL, EMAIL: "noc@example.org" }, { DOWNLOAD_FAIL: "1" }).status).toBe(1);
        expect(box.files().filter((f) => f.includes("pending"))).toEqual([]);
    });

    test("a run that did not finish is not resumed over meetings its server hosts again", () => {
        expect(box.run("bbb-installer", INSTALL, { INSTALLER_RC: "1" }).status).toBe(1);
        installedBbb(box, OLD_SECRET);
        box.write("meetings", "lecture\n");
        const r = box.run("bbb-installer", INSTALL);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("1 meeting(s) running on bbb-1.example.org");
        expect(installerRuns()).toHaveLength(1);
    });

    test("a step killed midway (the SSH session dropped) leaves the installer running; the next run waits for it, starts no second one", () => {
        const killed = box.run("bbb-installer", INSTALL, { INSTALLER_SECONDS: "2" }, [], 700);
        expect(killed.status).toBeNull();
        const r = box.run("bbb-installer", INSTALL);
        expect(r.stdout).toContain("bbb-install.sh runs already (started by an earlier, interrupted run of this step); waiting for it");
        expect(r.stdout).toContain("already ran with these inputs; nothing to do");
        expect(r.status).toBe(0);
        expect(installerRuns()).toHaveLength(1);
        expect(box.calls("systemd-run")).toEqual([`systemd-run --unit=bbb-deploy-install --collect --quiet ${box.root}/var/lib/bbb-deploy/bbb-install-run.sh`]);
        expect(box.files().filter((f) => f.includes("pending"))).toEqual([]);
    });

    test("after a run that did not finish, dpkg's unfinished work is done before the installer runs again", () => {
        expect(box.run("bbb-installer", INSTALL, { INSTALLER_RC: "100" }).status).toBe(1);
        expect(box.calls("dpkg")).toEqual([]);
        fs.writeFileSync(box.callLog, "");
        expect(box.run("bbb-installer", INSTALL).status).toBe(0);
        // (bbb-install.sh's own need_pkg asks dpkg -s whether BigBlueButton's packages are installed.)
        expect(box.calls().filter((c) => /^(dpkg --configure|bbb-install\.sh) /.test(c)).map((c) => c.split(" ")[0])).toEqual(["dpkg", "bbb-install.sh"]);
        expect(box.calls("dpkg").filter((c) => !c.startsWith("dpkg -s "))).toEqual(["dpkg --configure -a"]);
    });

    test("the TURN secret is in root-only files while the installer runs, never in the runner nor on the unit's command line", () => {
        box.run("bbb-installer", INSTALL, { INSTALLER_SECONDS: "2" }, [], 700);
        const file = (f: string) => box.file(`root/var/lib/bbb-deploy/${f}`);
        const mode = (f: string) => (fs.statSync(file(f)).mode & 0o777).toString(8);
        expect([mode("bbb-install-run.sh"), mode("bbb-install-mask.sed"), mode("bbb-install-coturn")]).toEqual(["700", "600", "600"]);
        expect(fs.readFileSync(file("bbb-install-coturn"), "utf8")).toBe(`turn.example.org:${TURN_SECRET}\n`);
        expect(fs.readFileSync(file("bbb-install-run.sh"), "utf8")).not.toContain(TURN_SECRET);
        expect(box.calls("systemd-run").join("\n")).not.toContain(TURN_SECRET);
        expect(box.run("bbb-installer", INSTALL).status).toBe(0);
        expect(box.files().filter((f) => /bbb-install-(run|mask|coturn)/.test(f))).toEqual([]);
        expect(fs.readFileSync(box.file("root/var/log/bbb-deploy/bbb-install.log"), "utf8")).toContain("-c turn.example.org:[secret]");
    });

    test("dpkg's unfinished work failing stops the step before the installer runs again; the run stays owed", () => {
        expect(box.run("bbb-installer", INSTALL, { INSTALLER_RC: "100" }).status).toBe(1);
        fs.writeFileSync(box.callLog, "");
        const r = box.run("bbb-installer", INSTALL, { DPKG_FAIL: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-installer: error: dpkg --configure -a failed; the package database needs a hand (log: /var/log/bbb-deploy/bbb-install.log)");
        expect(fs.readFileSync(box.file("root/var/log/bbb-deploy/bbb-install.log"), "utf8")).toContain("Errors were encountered while processing:\n bbb-html5\n");
        expect(box.calls("curl")).toEqual([]);
        expect(installerRuns()).toEqual([]);
        expect(box.files().filter((f) => f.includes("pending"))).toEqual(["var/lib/bbb-deploy/pending/bbb-installer.install"]);
    });

    test("a unit file named bbb-deploy-install (e.g. from running the installer by hand) keeps systemd-run from starting it: the step says so, leaves no secret behind and owes no run", () => {
        box.write("root/etc/systemd/system/bbb-deploy-install.service", "[Service]\nExecStart=/root/bbb-install.sh\n");
        const r = box.run("bbb-installer", INSTALL);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(
            "Failed to start transient service unit: Unit bbb-deploy-install.service was already loaded or has a fragment file.\n" +
                "bbb-installer: error: cannot start bbb-install.sh as the systemd unit bbb-deploy-install",
        );
        expect(installerRuns()).toEqual([]);
        // The runner and its masking script hold the TURN secret: only while the installer runs.
        expect(box.files().filter((f) => /bbb-install-(run|mask)/.test(f))).toEqual([]);
        expect(box.files().filter((f) => f.includes("pending"))).toEqual([]);
    });

    test("an installer that does not finish within TIMEOUT_SECONDS is stopped and the step says so; the run stays owed", () => {
        const r = box.run("bbb-installer", { ...INSTALL, TIMEOUT_SECONDS: "1" }, { INSTALLER_SECONDS: "2" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-installer: error: bbb-install.sh did not finish within 1s (log: /var/log/bbb-deploy/bbb-install.log)");
        expect(fs.existsSync(box.file("root/var/lib/bbb-deploy/installer.sha256"))).toBe(false);
        expect(box.files().filter((f) => f.includes("pending"))).toEqual(["var/lib/bbb-deploy/pending/bbb-installer.install"]);
    });

    test("an installer killed with its unit (the OOM killer, systemctl kill) leaves no exit code: the step says so; the run stays owed", () => {
        const r = box.run("bbb-installer", INSTALL, { INSTALLER_KILLED: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-installer: error: bbb-install.sh ended without an exit code (killed? see: journalctl -u bbb-deploy-install)");
        expect(fs.existsSync(box.file("root/var/lib/bbb-deploy/installer.sha256"))).toBe(false);
        expect(box.files().filter((f) => f.includes("pending"))).toEqual(["var/lib/bbb-deploy/pending/bbb-installer.install"]);
        expect(box.files().filter((f) => /bbb-install-(run|mask)/.test(f))).toEqual([]);
    });

    test("a failing installer fails the step with its exit code", () => {
        const r = box.run("bbb-installer", INSTALL, { INSTALLER_RC: "3" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-installer: error: bbb-install.sh failed with exit code 3 (last lines above");
        expect(fs.existsSync(box.file("root/var/lib/bbb-deploy/installer.sha256"))).toBe(false);
    });

    test("a failed download fails the step and runs nothing", () => {
        const r = box.run("bbb-installer", INSTALL, { DOWNLOAD_FAIL: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`bbb-installer: error: cannot download ${URL}`);
        expect(installerRuns()).toEqual([]);
    });

    test("a download that is not a bash script is refused", () => {
        box.write("installer.sh", "<html>404</html>\n");
        const r = box.run("bbb-installer", INSTALL);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("is not a bash script");
    });

    describe("FreeSWITCH's local_ip_v4 (vars.xml), which neither bbb-install.sh nor bbb-conf writes", () => {
        const vars = () => fs.readFileSync(box.file("root/opt/freeswitch/etc/freeswitch/vars.xml"), "utf8");
        const setVars = (text: string) => fs.writeFileSync(box.file("root/opt/freeswitch/etc/freeswitch/vars.xml"), text);

        test("a server whose vars.xml has no local_ip_v4 line (FreeSWITCH finds its address) is not installed again", () => {
            expect(box.run("bbb-installer", INSTALL).status).toBe(0);
            installedBbb(box, OLD_SECRET);
            setVars(vars().replace(/.*local_ip_v4=.*\n/, ""));
            const r = box.run("bbb-installer", INSTALL);
            expect(r.status).toBe(0);
            expect(r.stdout).toContain("bbb-install.sh already ran with these inputs; nothing to do");
            expect(installerRuns()).toHaveLength(1);
            expect(vars()).not.toContain("local_ip_v4");
        });

        test("a local_ip_v4 of another address (a package's postinst ran on another host) gets this host's, and the installer runs again once idle", () => {
            expect(box.run("bbb-installer", INSTALL).status).toBe(0);
            installedBbb(box, OLD_SECRET);
            setVars(vars().replace(/local_ip_v4=[0-9.]+/, "local_ip_v4=10.9.9.9"));
            const r = box.run("bbb-installer", INSTALL);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(r.stdout).toContain("FreeSWITCH binds 10.9.9.9 (local_ip_v4 in vars.xml), not 10.0.0.11");
            expect(r.stdout).toContain("FreeSWITCH binds 10.0.0.11 (local_ip_v4 in vars.xml)");
            expect(installerRuns()).toHaveLength(2);
            expect(vars()).toContain('data="local_ip_v4=10.0.0.11"');
            expect(vars()).not.toContain("10.9.9.9");
        });
    });

    test("BAKE_KEY on a server that holds no bake marker and no installer record (not booted from that bake) is refused before anything runs", () => {
        const r = box.run("bbb-installer", { ...INSTALL, BAKE_KEY: "1a2b3c4d".repeat(8), SECRET: NEW_SECRET, PROPERTIES: CONFIGURE.PROPERTIES });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("BAKE_KEY is given, but bbb-1.example.org holds no bake marker (/var/lib/bbb-deploy/baked) and no record of an installer run");
        expect(installerRuns()).toEqual([]);
    });

    test("a TURN secret that is not lower-case hex is refused before anything runs (bbb-install.sh splits -c on ':')", () => {
        const r = box.run("bbb-installer", { ...INSTALL, TURN_SECRET: "abc:DEF" });
        expect([r.status, r.stderr]).toEqual([1, expect.stringContaining("bbb-installer: error: the TURN secret must be lower-case hex")]);
        expect(r.stderr).not.toContain("abc:DEF");
        expect(box.calls()).toEqual([]);
    });
});

describe("bbb-configure", () => {
    beforeEach(() => installedBbb(box, OLD_SECRET));

    test("sets the secret and the properties, restarts, and checks the API with the new secret", () => {
        const r = box.run("bbb-configure", CONFIGURE);
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(props()).toContain(`securitySalt=${NEW_SECRET}`);
        expect(props()).toContain("disableRecordingDefault=true\nallowStartStopRecording=false\nallowRevealOfBBBVersion=false\n");
        expect(box.calls("bbb-conf")).toEqual(["bbb-conf --secret", "bbb-conf --restart"]);
        expect(r.stdout).toContain("the API answers with the stack's secret");
        expect(`${r.stdout}${r.stderr}`).not.toContain(NEW_SECRET);
        expect(`${r.stdout}${r.stderr}`).not.toContain(OLD_SECRET);
    });

    describe("Greenlight on this host (single topology, bbb-install.sh -g)", () => {
        const ENV = "root/root/greenlight-v3/.env";
        const COMPOSE_FILE = "root/root/greenlight-v3/docker-compose.yml";
        const env = () => fs.readFileSync(box.file(ENV), "utf8");
        const ups = () => box.calls("docker").filter((c) => c.endsWith(" up -d"));
        const running = () => fs.readFileSync(box.file("docker/compose/greenlight-v3"), "utf8").trim();
        const WITH_GREENLIGHT = { ...CONFIGURE, GREENLIGHT_VERSION: "v3.8.2.4", GREENLIGHT_LOG_LEVEL: "warn" };
        beforeEach(() => {
            // What bbb-install.sh -g leaves: Greenlight's .env with the secret BBB had then.
            expect(box.run("bbb-installer", INSTALL).status).toBe(0);
            expect(env()).toContain(`BIGBLUEBUTTON_SECRET=${OLD_SECRET}\n`);
            fs.writeFileSync(box.file("calls.log"), "");
        });

        test("a new secret reaches Greenlight's .env (root-only) and Greenlight is recreated; the secret is on no command line", () => {
            const r = box.run("bbb-configure", WITH_GREENLIGHT);
            expect(r.status).toBe(0);
            expect(env()).toBe(
                `SECRET_KEY_BASE=\nBIGBLUEBUTTON_ENDPOINT=https://bbb-1.example.org/bigbluebutton/\nBIGBLUEBUTTON_SECRET=${NEW_SECRET}\nDATABASE_URL=\nREDIS_URL=\nLOG_LEVEL=warn\n`,
            );
            expect((fs.statSync(box.file(ENV)).mode & 0o777).toString(8)).toBe("600");
            expect(ups()).toEqual([`docker compose -f ${box.root}/root/greenlight-v3/docker-compose.yml up -d`]);
            expect(box.calls().join("\n")).not.toContain(NEW_SECRET);
        });

        test("a Greenlight that has the secret and the image already is left alone", () => {
            expect(box.run("bbb-configure", WITH_GREENLIGHT).status).toBe(0);
            expect(env()).toContain(`BIGBLUEBUTTON_SECRET=${NEW_SECRET}\n`);
            fs.writeFileSync(box.file("calls.log"), "");
            expect(box.run("bbb-configure", WITH_GREENLIGHT).status).toBe(0);
            expect(ups()).toEqual([]);
        });

        test("a new greenlightVersion recreates Greenlight from that image, and a later bbb-install.sh run keeps it", () => {
            expect(box.run("bbb-configure", WITH_GREENLIGHT).status).toBe(0);
            const r = box.run("bbb-configure", { ...WITH_GREENLIGHT, GREENLIGHT_VERSION: "v3.8.3" });
            expect(r.status).toBe(0);
            expect(r.stdout).toContain("Greenlight: bigbluebutton/greenlight:v3.8.2.4 -> bigbluebutton/greenlight:v3.8.3");
            expect(running()).toBe("bigbluebutton/greenlight:v3.8.3");
            // bbb-install.sh again (a new BBB version), as the installer step runs it: the compose file is kept.
            expect(box.run("bbb-installer", { ...INSTALL, VERSION: "jammy-301", GREENLIGHT_VERSION: "v3.8.3" }).status).toBe(0);
            expect(running()).toBe("bigbluebutton/greenlight:v3.8.3");
            expect(fs.readFileSync(box.file(COMPOSE_FILE), "utf8")).not.toContain("greenlight:v3\n");
        });

        test("Greenlight's log level follows privacy (strict: warn; its sample.env says info): a new one recreates Greenlight", () => {
            expect(box.run("bbb-configure", WITH_GREENLIGHT).status).toBe(0);
            expect(env()).toMatch(/\nLOG_LEVEL=warn\n$/);
            fs.writeFileSync(box.file("calls.log"), "");
            expect(box.run("bbb-configure", { ...WITH_GREENLIGHT, GREENLIGHT_LOG_LEVEL: "info" }).status).toBe(0);
            expect(env()).toMatch(/\nLOG_LEVEL=info\n$/);
            expect(env().match(/LOG_LEVEL=/g)).toHaveLength(1);
            expect(ups()).toHaveLength(1);
        });

        test("a recreation that failed is redone by the next run, though the .env holds the secret by then", () => {
            const failed = box.run("bbb-configure", WITH_GREENLIGHT, { COMPOSE_FAIL: "1" });
            expect(failed.status).toBe(1);
            expect(failed.stderr).toContain("bbb-configure: error: Docker Compose could not recreate Greenlight");
            fs.writeFileSync(box.file("calls.log"), "");
            expect(box.run("bbb-configure", WITH_GREENLIGHT).status).toBe(0);
            expect(ups()).toHaveLength(1);
        });

        test("a Greenlight log level or version that is not one is refused: Greenlight is neither touched nor recreated", () => {
            const before = env();
            for (const [inputs, message] of [
                [{ GREENLIGHT_LOG_LEVEL: "verbose" }, "GREENLIGHT_LOG_LEVEL must be debug, info, warn or error, not 'verbose'"],
                [{ GREENLIGHT_VERSION: "v3;reboot" }, "GREENLIGHT_VERSION 'v3;reboot' is not an image tag"],
            ] as [Record<string, string>, string][]) {
                const r = box.run("bbb-configure", { ...WITH_GREENLIGHT, ...inputs });
                expect([r.status, r.stderr]).toEqual([1, expect.stringContaining(`bbb-configure: error: ${message}`)]);
            }
            expect(env()).toBe(before);
            expect(ups()).toEqual([]);
            expect(fs.readFileSync(box.file(COMPOSE_FILE), "utf8")).toContain("image: bigbluebutton/greenlight:v3.8.2.4\n");
        });

        test("a Greenlight that is not this server's any more (a pool grown from it) is left as it is", () => {
            const r = box.run("bbb-configure", CONFIGURE);
            expect(r.status).toBe(0);
            expect(props()).toContain(`securitySalt=${NEW_SECRET}\n`);
            expect(env()).toContain(`BIGBLUEBUTTON_SECRET=${OLD_SECRET}\n`);
            expect(ups()).toEqual([]);
        });
    });

    test("/var/bigbluebutton on the data volume (a link) is given to bigbluebutton through the link, as the packages do for a real directory", () => {
        fs.mkdirSync(box.file("root/mnt/bbb-recordings/bigbluebutton"), { recursive: true });
        fs.mkdirSync(box.file("root/var"), { recursive: true });
        fs.symlinkSync(box.file("root/mnt/bbb-recordings/bigbluebutton"), box.file("root/var/bigbluebutton"));
        expect(box.run("bbb-configure", CONFIGURE).status).toBe(0);
        expect(box.calls("chown")).toContain(`chown -R bigbluebutton:bigbluebutton ${box.root}/var/bigbluebutton/`);
    });

    test("/var/bigbluebutton on the data volume that cannot be given to bigbluebutton (no such user yet) fails the step before the API check", () => {
        fs.mkdirSync(box.file("root/mnt/bbb-recordings/bigbluebutton"), { recursive: true });
        fs.mkdirSync(box.file("root/var"), { recursive: true });
        fs.symlinkSync(box.file("root/mnt/bbb-recordings/bigbluebutton"), box.file("root/var/bigbluebutton"));
        const r = box.run("bbb-configure", CONFIGURE, { CHOWN_FAIL: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("chown: invalid user: \u2018bigbluebutton:bigbluebutton\u2019\nbbb-configure: error: cannot give /var/bigbluebutton (on the data volume) to bigbluebutton");
        expect(r.stdout).not.toContain("checking the API");
    });

    test("a bbb-conf that refuses to run (BigBlueButton's release file gone) fails the restart; the next run restarts", () => {
        expect(box.run("bbb-configure", CONFIGURE).status).toBe(0);
        const changed = { ...CONFIGURE, PROPERTIES: "disableRecordingDefault=false\nallowRevealOfBBBVersion=false" };
        fs.writeFileSync(box.file("calls.log"), "");
        // Its secret unreadable, bbb-conf cannot tell whether meetings run: only forceReinstall goes ahead.
        const r = box.run("bbb-configure", { ...changed, FORCE_RESTART: "true" }, { BBB_RELEASE_GONE: "1" });
        expect(r.status).toBe(1);
        expect(r.stdout).toContain("# BigBlueButton does not appear to be installed.");
        expect(r.stderr).toContain("bbb-configure: error: bbb-conf --restart failed (see: bbb-conf --check)");
        expect(box.calls("curl").filter((c) => c.includes("getMeetings"))).toEqual([]);
        fs.writeFileSync(box.file("calls.log"), "");
        const again = box.run("bbb-configure", changed);
        expect(again.status).toBe(0);
        expect(box.calls("bbb-conf")).toContain("bbb-conf --restart");
        expect(again.stdout).toContain("the API answers with the stack's secret");
    });

    test("a real /var/bigbluebutton is the packages' business", () => {
        fs.mkdirSync(box.file("root/var/bigbluebutton"), { recursive: true });
        const r = box.run("bbb-configure", CONFIGURE);
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("the API answers with the stack's secret");
        expect(box.calls("chown").filter((c) => c.includes("bigbluebutton:bigbluebutton"))).toEqual([]);
    });

    test("an existing property is replaced, not duplicated", () => {
        fs.appendFileSync(box.file("root/etc/bigbluebutton/bbb-web.properties"), "allowStartStopRecording=true\n");
        expect(box.run("bbb-configure", CONFIGURE).status).toBe(0);
        expect(props().match(/allowStartStopRecording=/g)).toHaveLength(1);
        expect(props()).toContain("allowStartStopRecording=false");
    });

    test("a second run changes nothing and restarts nothing", () => {
        expect(box.run("bbb-configure", CONFIGURE).status).toBe(0);
        const before = props();
        expect(before).toContain(`securitySalt=${NEW_SECRET}`);
        fs.writeFileSync(box.file("calls.log"), "");
        const again = box.run("bbb-configure", CONFIGURE);
        expect(again.status).toBe(0);
        expect(again.stdout).toContain("the secret and properties are as wanted");
        expect(props()).toBe(before);
        expect(box.calls("bbb-conf")).toEqual([]);
    });

    test("an API that refuses the stack's secret fails the step and says so", () => {
        // bbb-web comes back answering another secret than the one written (e.g. another file that sets securitySalt).
        box.stub("bbb-conf", 'r=0; "$SANDBOX/bbb-conf.stub" "$@" || r=$?; [ "$1" != --restart ] || echo Other0123456789abcdefghijklmnopqrstuvw > "$SANDBOX/running-salt"; exit $r');
        const r = box.run("bbb-configure", CONFIGURE);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("refuses the stack's secret (checksumError)");
    });

    test("an API that does not answer in time fails the step", () => {
        expect(box.run("bbb-configure", CONFIGURE).status).toBe(0);
        const r = box.run("bbb-configure", CONFIGURE, { API_DOWN: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("did not answer within 0s");
    });

    test("a new secret is refused while meetings are running (the restart would end them), naming how many", () => {
        box.write("meetings", "standup\nlecture\n");
        const r = box.run("bbb-configure", CONFIGURE);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-configure: error: 2 meeting(s) running on bbb-1.example.org; restarting BigBlueButton for the new secret would end them");
        expect(props()).toContain(`securitySalt=${OLD_SECRET}`);
        expect(box.calls("bbb-conf").filter((c) => c !== "bbb-conf --secret")).toEqual([]);
    });

    test("a changed property is not applied while meetings run: the file stays as it was and nothing restarts", () => {
        expect(box.run("bbb-configure", CONFIGURE).status).toBe(0);
        box.write("meetings", "lecture\n");
        const before = props();
        const r = box.run("bbb-configure", { ...CONFIGURE, PROPERTIES: "disableRecordingDefault=false\nallowRevealOfBBBVersion=false" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("1 meeting(s) running on bbb-1.example.org; restarting BigBlueButton for the changed properties would end them");
        expect(props()).toBe(before);
        expect(box.calls("bbb-conf").filter((c) => c !== "bbb-conf --secret")).toEqual(["bbb-conf --restart"]);
        expect(fs.existsSync(box.file("ended-meetings"))).toBe(false);
    });

    test("a server whose API does not answer is not taken for an idle one", () => {
        const r = box.run("bbb-configure", CONFIGURE, { API_DOWN: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("cannot tell whether meetings run on bbb-1.example.org (its API does not answer)");
        expect(props()).toContain(`securitySalt=${OLD_SECRET}`);
    });

    test("a restart that did not bring BigBlueButton back (bbb-conf still exits 0) is redone by the next run", () => {
        const first = box.run("bbb-configure", CONFIGURE, { BBB_CONF_FAIL: "--restart" });
        expect(first.status).toBe(1);
        expect(first.stderr).toContain("did not answer within 0s");
        expect(props()).toContain(`securitySalt=${NEW_SECRET}`);
        const r = box.run("bbb-configure", CONFIGURE);
        expect(r.stdout).toContain("BigBlueButton is down since an earlier restart that did not finish");
        expect(r.status).toBe(0);
        expect(box.calls("bbb-conf").filter((c) => c === "bbb-conf --restart")).toHaveLength(2);
        expect(r.stdout).toContain("the API answers with the stack's secret");
        expect(box.files().filter((f) => f.includes("pending"))).toEqual([]);
    });

    test("a run cut short after the new secret was written still counts the meetings of the secret BigBlueButton runs with", () => {
        // As an interrupted run leaves it: the new secret in the file, the restart owed, bbb-web on the old secret.
        box.write("root/etc/bigbluebutton/bbb-web.properties", `securitySalt=${NEW_SECRET}\n`);
        box.write("root/var/lib/bbb-deploy/pending/bbb-configure.restart", OLD_SECRET);
        box.write("meetings", "lecture\n");
        const busy = box.run("bbb-configure", CONFIGURE);
        expect(busy.status).toBe(1);
        expect(busy.stderr).toContain("1 meeting(s) running on bbb-1.example.org; restarting BigBlueButton for the changed properties would end them");
        expect(`${busy.stdout}${busy.stderr}`).not.toContain(OLD_SECRET);
        box.write("meetings", "");
        expect(box.run("bbb-configure", CONFIGURE).status).toBe(0);
        expect(box.files().filter((f) => f.includes("pending"))).toEqual([]);
    });

    test("forceReinstall lets the new secret through on a busy server", () => {
        box.write("meetings", "standup\n");
        expect(box.run("bbb-configure", { ...CONFIGURE, FORCE_RESTART: "true" }).status).toBe(0);
        expect(props()).toContain(`securitySalt=${NEW_SECRET}`);
    });

    test("before the installer has run there is nothing to configure", () => {
        box.remove("bbb-conf");
        const r = box.run("bbb-configure", CONFIGURE);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-configure: error: bbb-conf is missing");
    });

    test("a secret too short or not alphanumeric, or no bbb-web.properties, is refused before anything changes", () => {
        const short = box.run("bbb-configure", { ...CONFIGURE, SECRET: "short" });
        expect([short.status, short.stderr]).toEqual([1, expect.stringContaining("bbb-configure: error: the API secret must be at least 32 letters and digits")]);
        expect(short.stderr).not.toContain("short\n");
        fs.rmSync(box.file("root/etc/bigbluebutton/bbb-web.properties"));
        const missing = box.run("bbb-configure", CONFIGURE);
        expect([missing.status, missing.stderr]).toEqual([1, expect.stringContaining("bbb-web.properties is missing: bbb-install.sh has not completed on this host")]);
        expect(box.calls("bbb-conf")).toEqual([]);
    });

    test("a secret that cannot be written fails the step before the restart; the next run writes it and restarts", () => {
        // GNU sed -i on a filesystem remounted read-only (ext4's errors=remount-ro): sed/execute.c, exit 4.
        const sed = fs.readlinkSync(path.join(box.bin, "sed"));
        box.stub("sed", `[ "$1 $2" = "-i -f" ] && [ -n "\${SED_READONLY:-}" ] && { echo "sed: couldn't open temporary file $(dirname "$4")/sedAb12Cd: Read-only file system" >&2; exit 4; }; exec ${sed} "$@"`);
        const r = box.run("bbb-configure", CONFIGURE, { SED_READONLY: "1" });
        expect([r.status, r.stderr]).toEqual([
            1,
            `sed: couldn't open temporary file ${box.root}/etc/bigbluebutton/sedAb12Cd: Read-only file system\n` +
                "bbb-configure: error: cannot write the API secret (bbb-web.properties, bbb-webhooks, bbb-apps-akka.conf); the restart is owed to the next run\n",
        ]);
        expect(props()).toContain(`securitySalt=${OLD_SECRET}`);
        expect(box.calls("bbb-conf").filter((c) => c !== "bbb-conf --secret")).toEqual([]);
        expect(box.files().filter((f) => f.includes("setsecret"))).toEqual([]);
        const again = box.run("bbb-configure", CONFIGURE);
        expect(again.status).toBe(0);
        expect(props()).toContain(`securitySalt=${NEW_SECRET}`);
        expect(box.calls("bbb-conf").filter((c) => c === "bbb-conf --restart")).toHaveLength(1);
    });

    describe("the secret where bbb-conf --setsecret puts it, but on no command line", () => {
        const AKKA = "root/etc/bigbluebutton/bbb-apps-akka.conf";
        const HOOKS = "root/usr/local/bigbluebutton/bbb-webhooks/config/default.yml";
        const CATCHER = "root/usr/local/bigbluebutton/bbb-webhooks/extra/post_catcher.js";
        const read = (f: string) => fs.readFileSync(box.file(f), "utf8");
        const mode = (f: string) => (fs.statSync(box.file(f)).mode & 0o777).toString(8);
        beforeEach(() => {
            // Their shapes as the packages install them (assumed; bbb-conf's expressions were read, bigbluebutton-config/bin/bbb-conf).
            box.write(AKKA, `include "/usr/share/bbb-apps-akka/conf/application.conf"\nservices {\n  bbbWebAPI = "https://bbb-1.example.org/bigbluebutton/api"\n  sharedSecret = "${OLD_SECRET}"\n}\n`);
            box.write(HOOKS, `bbb:\n  serverDomain: bbb-1.example.org\n  sharedSecret: ${OLD_SECRET}\n  auth2_0: true\n`);
            box.write(CATCHER, `var express = require("express");\nvar shared_secret = "${OLD_SECRET}";\n`);
            fs.chmodSync(box.file(AKKA), 0o640);
            fs.chmodSync(box.file(HOOKS), 0o644);
            fs.chmodSync(box.file("root/etc/bigbluebutton/bbb-web.properties"), 0o640);
        });

        test("a write that fails after others: the next run writes every file again (bbb-web.properties, which says whether the secret is new, last)", () => {
            const sed = fs.readlinkSync(path.join(box.bin, "sed"));
            box.stub("sed", `[ "$1 $2" = "-i -f" ] && [ -n "\${SED_FAIL_ON:-}" ] && [[ $4 == *"$SED_FAIL_ON" ]] && { echo "sed: couldn't open temporary file $(dirname "$4")/sedAb12Cd: Read-only file system" >&2; exit 4; }; exec ${sed} "$@"`);
            const r = box.run("bbb-configure", CONFIGURE, { SED_FAIL_ON: "post_catcher.js" });
            expect(r.status).toBe(1);
            expect(props()).toContain(`securitySalt=${OLD_SECRET}`);
            const again = box.run("bbb-configure", CONFIGURE);
            expect([again.status, again.stderr]).toEqual([0, ""]);
            for (const f of [HOOKS, CATCHER, AKKA]) expect([f, read(f).includes(NEW_SECRET), read(f).includes(OLD_SECRET)]).toEqual([f, true, false]);
            expect(props()).toContain(`securitySalt=${NEW_SECRET}`);
        });

        test("bbb-web.properties, bbb-apps-akka.conf and bbb-webhooks' files get the new secret, their modes kept; no program is given it", () => {
            const trace = new Trace();
            try {
                const r = box.run("bbb-configure", CONFIGURE, trace.env);
                expect([r.status, r.stderr]).toEqual([0, ""]);
                expect(props()).toBe(
                    `bigbluebutton.web.serverURL=https://bbb-1.example.org\nsecuritySalt=${NEW_SECRET}\ndisableRecordingDefault=true\nallowStartStopRecording=false\nallowRevealOfBBBVersion=false\n`,
                );
                expect(read(AKKA)).toBe(
                    `include "/usr/share/bbb-apps-akka/conf/application.conf"\nservices {\n  bbbWebAPI = "https://bbb-1.example.org/bigbluebutton/api"\n  sharedSecret="${NEW_SECRET}"\n}\n`,
                );
                expect(read(HOOKS)).toBe(`bbb:\n  serverDomain: bbb-1.example.org\n  sharedSecret: ${NEW_SECRET}\n  auth2_0: true\n`);
                expect(read(CATCHER)).toBe(`var express = require("express");\nvar shared_secret = "${NEW_SECRET}";\n`);
                expect([mode(AKKA), mode(HOOKS), mode("root/etc/bigbluebutton/bbb-web.properties")]).toEqual(["640", "644", "640"]);
                expect(box.files().filter((f) => f.includes("setsecret"))).toEqual([]);
                expect(secretsOnCommandLines(trace.execs(), [NEW_SECRET, OLD_SECRET])).toEqual([]);
                expect(r.stdout).toContain("the API answers with the stack's secret");
            } finally {
                trace.remove();
            }
        });

        test("a commented securitySalt beside the set one is set too; without an uncommented one the secret is appended", () => {
            box.write("root/etc/bigbluebutton/bbb-web.properties", `#securitySalt=example\nsecuritySalt=${OLD_SECRET}\n`);
            expect(box.run("bbb-configure", CONFIGURE).status).toBe(0);
            expect(props().split("\n").filter((l) => l.includes("securitySalt"))).toEqual([`securitySalt=${NEW_SECRET}`, `securitySalt=${NEW_SECRET}`]);
            box.write("root/etc/bigbluebutton/bbb-web.properties", "#securitySalt=example\n");
            expect(box.run("bbb-configure", { ...CONFIGURE, SECRET: OLD_SECRET, FORCE_RESTART: "true" }).status).toBe(0);
            expect(props().split("\n").filter((l) => l.includes("securitySalt"))).toEqual(["#securitySalt=example", `securitySalt=${OLD_SECRET}`]);
        });
    });

});

test("lib.sh signs API calls as the BBB API docs' test vector says", () => {
    const lib = path.join(__dirname, "..", "scripts", "remote", "lib.sh");
    const script = `source "${lib}"; bbb_checksum create 'name=Test+Meeting&meetingID=abc123&attendeePW=111222&moderatorPW=333444' 639259d4-9dd8-4b25-bf01-95f9567eaf4b`;
    const r = spawnSync("bash", ["-c", script], { encoding: "utf8" });
    expect(r.stdout.trim()).toBe("1fcbb0c4fc1f039f73aa6d697d2db9ba7f803f17");
});
