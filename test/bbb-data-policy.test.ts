// scripts/remote/bbb-data-policy.sh, run for real against stubs: strict privacy's files and values, that
// they survive a second installer run, standard privacy restoring BBB's defaults, recording options.
import * as fs from "fs";
import { Sandbox } from "./sandbox";
import { installedBbb, installStubs } from "./stubs";

/** The nginx site bbb-install.sh writes (as far as this step cares). */
const SITE = `server {
  listen 80;
  listen [::]:80;
  server_name bbb-1.example.org;
  return 301 https://$server_name$request_uri;
}
server {
  listen 443 ssl;
  server_name bbb-1.example.org;
    access_log  /var/log/nginx/bigbluebutton.access.log;
  include /etc/bigbluebutton/nginx/*.nginx;
}
`;
const SFU = "freeswitch:\n  ip: 203.0.113.11\nlog:\n  level: info\n";
/** bbb-web's logback.xml as the package installs it (bigbluebutton-web/grails-app/conf/logback.xml, the loggers). */
const LOGBACK = `<configuration>
	<logger name="akka" level="INFO" />
	<logger name="io.lettuce" level="INFO" />
	<logger name="org.bigbluebutton" level="DEBUG" />

	<logger name="grails.app.controllers" level="DEBUG" />
	<logger name="grails.app.services" level="DEBUG" />

	<logger name="org.springframework" level="ERROR" />
	<root level="ERROR">
		<appender-ref ref="FILE" />
	</root>
</configuration>
`;
const SWITCH = '<configuration name="switch.conf">\n  <settings>\n    <param name="loglevel" value="debug"/>\n  </settings>\n</configuration>\n';
const COMMON = { FQDN: "bbb-1.example.org", FORCE_RESTART: "false", INSTALL_ID: "1".repeat(64) };
const STRICT = { ...COMMON, PRIVACY: "strict", VIDEO: "false", RETENTION_DAYS: "0" };
const STANDARD = { ...COMMON, PRIVACY: "standard", VIDEO: "true", RETENTION_DAYS: "30" };

let box: Sandbox;
const read = (f: string) => fs.readFileSync(box.file(`root/${f}`), "utf8");
const exists = (f: string) => fs.existsSync(box.file(`root/${f}`));
const restarts = () => box.calls().filter((c) => /^(systemctl (reload|restart)|fs_cli)/.test(c));

/** A host as bbb-install.sh leaves it: the nginx site, the SFU's override, FreeSWITCH's switch.conf. */
function installedHost(): void {
    box.write("root/etc/nginx/sites-available/bigbluebutton", SITE);
    box.write("root/etc/bigbluebutton/bbb-webrtc-sfu/production.yml", SFU);
    box.write("root/opt/freeswitch/etc/freeswitch/autoload_configs/switch.conf.xml", SWITCH);
    box.write("root/usr/share/bbb-web/WEB-INF/classes/logback.xml", LOGBACK);
    box.write("root/opt/freeswitch/etc/freeswitch/autoload_configs/event_socket.conf.xml", '<param name="password" value="EslPassword0123"/>\n');
    if (!exists("opt/freeswitch/conf")) fs.symlinkSync("etc/freeswitch", box.file("root/opt/freeswitch/conf"));
    box.write("root/var/bigbluebutton/deleted/presentation/old-meeting/slides.pdf", "x");
}

beforeEach(() => {
    box = new Sandbox();
    installStubs(box);
    installedHost();
});
afterEach(() => box.cleanup());

describe("with meetings running, and after a failure", () => {
    const SECRET = "Secret0123456789abcdefghijklmnopqrstuvwxyz";

    test("the SFU is not restarted while meetings run: its file stays as it was, and the step says why", () => {
        installedBbb(box, SECRET);
        box.write("meetings", "lecture\nseminar\n");
        const r = box.run("bbb-data-policy", STRICT);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("2 meeting(s) running on bbb-1.example.org; restarting bbb-webrtc-sfu for its log level");
        expect(read("etc/bigbluebutton/bbb-webrtc-sfu/production.yml")).toBe(SFU);
        expect(restarts()).toEqual(["systemctl reload nginx"]);
        expect(read("../meetings")).toBe("lecture\nseminar\n");
    });

    test("nor when the server's API does not answer; forceReinstall goes ahead", () => {
        installedBbb(box, SECRET);
        expect(box.run("bbb-data-policy", STRICT, { API_DOWN: "1" }).stderr).toContain("cannot tell whether meetings run on bbb-1.example.org");
        expect(box.run("bbb-data-policy", { ...STRICT, FORCE_RESTART: "true" }, { API_DOWN: "1" }).status).toBe(0);
        expect(read("etc/bigbluebutton/bbb-webrtc-sfu/production.yml")).toContain("level: warn");
    });

    test.each([
        ["reload", "systemctl reload nginx"],
        ["restart", "systemctl restart bbb-webrtc-sfu"],
    ])("a %s that failed is done by the next run, though the files are unchanged by then", (verb, call) => {
        expect(box.run("bbb-data-policy", STRICT, { SYSTEMCTL_FAIL: verb }).status).toBe(1);
        fs.writeFileSync(box.file("calls.log"), "");
        expect(box.run("bbb-data-policy", STRICT).status).toBe(0);
        expect(restarts()).toContain(call);
        fs.writeFileSync(box.file("calls.log"), "");
        expect(box.run("bbb-data-policy", STRICT).status).toBe(0);
        expect(restarts()).toEqual([]);
    });
    test("a FreeSWITCH log level that did not reach FreeSWITCH (its answer -ERR, though fs_cli exits 0) is set by the next run", () => {
        const failed = box.run("bbb-data-policy", STRICT, { FSCTL_ERR: "1" });
        expect(failed.status).toBe(1);
        expect(failed.stderr).toContain("bbb-data-policy: error: fs_cli -x 'fsctl loglevel warning' failed");
        fs.writeFileSync(box.file("calls.log"), "");
        expect(box.run("bbb-data-policy", STRICT).status).toBe(0);
        expect(restarts()).toContain("fs_cli -x fsctl loglevel warning");
    });

    test("fs_cli authenticates with the event socket's password from a private config, never on its command line", () => {
        box.write("root/opt/freeswitch/etc/freeswitch/autoload_configs/event_socket.conf.xml", '<param name="password" value="Changed0123"/>\n');
        expect(box.run("bbb-data-policy", STRICT).status).toBe(0);
        expect(box.calls("fs_cli")).toEqual(["fs_cli -x fsctl loglevel warning"]);
    });

    test("bbb-web waits while meetings run (its API would be down); a restart that failed is redone by the next run", () => {
        // Only bbb-web's level is left to set (the SFU and FreeSWITCH log warnings already).
        box.write("root/etc/bigbluebutton/bbb-webrtc-sfu/production.yml", SFU.replace("level: info", "level: warn"));
        box.write("root/opt/freeswitch/etc/freeswitch/autoload_configs/switch.conf.xml", SWITCH.replace('"debug"', '"warning"'));
        installedBbb(box, SECRET);
        box.write("meetings", "lecture\n");
        const busy = box.run("bbb-data-policy", STRICT);
        expect(busy.status).toBe(1);
        expect(busy.stderr).toContain("1 meeting(s) running on bbb-1.example.org; restarting bbb-web for its log level");
        expect(read("usr/share/bbb-web/WEB-INF/classes/logback.xml")).toContain('"org.bigbluebutton" level="DEBUG"');
        box.write("meetings", "");
        const failed = box.run("bbb-data-policy", STRICT, { SYSTEMCTL_FAIL: "restart" });
        expect(failed.stderr).toContain("bbb-data-policy: error: cannot restart bbb-web");
        fs.writeFileSync(box.file("calls.log"), "");
        expect(box.run("bbb-data-policy", STRICT).status).toBe(0);
        expect(restarts()).toContain("systemctl restart bbb-web");
    });

    test("a recording worker that did not restart for the video format is restarted by the next run", () => {
        expect(box.run("bbb-data-policy", STANDARD, { SYSTEMCTL_FAIL: "restart" }).status).toBe(1);
        fs.writeFileSync(box.file("calls.log"), "");
        expect(box.run("bbb-data-policy", STANDARD).status).toBe(0);
        expect(restarts()).toContain("systemctl restart bbb-rap-resque-worker");
        fs.writeFileSync(box.file("calls.log"), "");
        expect(box.run("bbb-data-policy", STANDARD).status).toBe(0);
        expect(restarts()).toEqual([]);
    });
});

test("bad inputs are refused before anything changes", () => {
    for (const [inputs, message] of [
        [{ PRIVACY: "lax" }, "PRIVACY must be strict or standard, not lax"],
        [{ RETENTION_DAYS: "a month" }, "RETENTION_DAYS must be a number of days"],
    ] as [Record<string, string>, string][]) {
        const r = box.run("bbb-data-policy", { ...STRICT, ...inputs });
        expect([r.status, r.stderr]).toEqual([1, expect.stringContaining(`bbb-data-policy: error: ${message}`)]);
    }
    expect(restarts()).toEqual([]);
});

describe("privacy strict", () => {
    test("an SFU override file that is not YAML (edited by hand) stops the step before the SFU restarts, naming the file", () => {
        box.write("root/etc/bigbluebutton/bbb-webrtc-sfu/production.yml", "log: [unclosed\n");
        const r = box.run("bbb-data-policy", STRICT);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`bbb-data-policy: error: cannot set the log level in ${box.root}/etc/bigbluebutton/bbb-webrtc-sfu/production.yml`);
        expect(box.calls("systemctl").filter((c) => c.includes("bbb-webrtc-sfu"))).toEqual([]);
    });

    test("turns access logs off, quietens the SFU and FreeSWITCH, keeps logs one day, purges deleted recordings", () => {
        const r = box.run("bbb-data-policy", STRICT);
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(read("etc/nginx/conf.d/99-bbb-privacy.conf")).toBe("# Managed by bbb (Pulumi, bbb-data-policy step)\naccess_log off;\n");
        expect(read("etc/nginx/sites-available/bigbluebutton")).toContain("    access_log off;\n");
        // Per server (an http-level one would be a second log beside Ubuntu's): errors naming clients go.
        expect(read("etc/nginx/sites-available/bigbluebutton").match(/^server \{\n {2}error_log \/var\/log\/nginx\/error\.log emerg; # bbb privacy strict\n/gm)).toHaveLength(2);
        expect(read("etc/nginx/sites-available/bigbluebutton")).not.toContain("bigbluebutton.access.log");
        expect(read("etc/bigbluebutton/bbb-webrtc-sfu/production.yml")).toContain("log:\n  level: warn\n");
        expect(read("opt/freeswitch/etc/freeswitch/autoload_configs/switch.conf.xml")).toContain('<param name="loglevel" value="warning"/>');
        expect(read("etc/default/bigbluebutton-cron-config").split("\n").slice(1)).toEqual(["history=1", "unrecorded_days=1", "published_days=1", "log_history=1", ""]);
        expect(read("etc/cron.daily/bbb-purge-deleted")).toContain(`find ${box.root}/var/bigbluebutton/deleted -mindepth 1 -delete`);
        expect(fs.readdirSync(box.file("root/var/bigbluebutton/deleted"))).toEqual([]);
        expect(restarts()).toEqual(["systemctl reload nginx", "systemctl restart bbb-webrtc-sfu", "fs_cli -x fsctl loglevel warning", "systemctl restart bbb-web"]);
    });

    test("bbb-web logs warnings only: appLogLevel does not govern its logback.xml, whose own loggers say DEBUG", () => {
        expect(box.run("bbb-data-policy", STRICT).status).toBe(0);
        const logback = read("usr/share/bbb-web/WEB-INF/classes/logback.xml");
        for (const logger of ["org.bigbluebutton", "grails.app.controllers", "grails.app.services"]) {
            expect(logback).toContain(`<logger name="${logger}" level="WARN" />`);
        }
        expect(logback).toContain('<logger name="akka" level="INFO" />');
        expect(logback).not.toContain("DEBUG");
    });

    test("no recording options: no video format, no retention job", () => {
        const r = box.run("bbb-data-policy", STRICT);
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("bbb-data-policy: privacy strict applied");
        expect(exists("etc/bigbluebutton/recording/recording.yml")).toBe(false);
        expect(exists("etc/cron.daily/bbb-recording-retention")).toBe(false);
        expect(box.calls("apt-get")).toEqual([]);
    });

    test("a second run changes nothing and restarts nothing", () => {
        expect(box.run("bbb-data-policy", STRICT).status).toBe(0);
        expect(restarts()).not.toEqual([]);
        const before = box.files().map((f) => [f, read(f)]);
        fs.writeFileSync(box.file("calls.log"), "");
        expect(box.run("bbb-data-policy", STRICT).status).toBe(0);
        expect(box.files().map((f) => [f, read(f)])).toEqual(before);
        expect(restarts()).toEqual([]);
    });

    test("survives a second installer run: what bbb-install.sh rewrites is set again", () => {
        box.run("bbb-data-policy", STRICT);
        installedHost(); // bbb-install.sh writes its site, the SFU override, switch.conf and bbb-web's logback.xml anew
        fs.writeFileSync(box.file("calls.log"), "");
        expect(box.run("bbb-data-policy", { ...STRICT, INSTALL_ID: "2".repeat(64) }).status).toBe(0);
        expect(read("etc/nginx/sites-available/bigbluebutton")).toContain("    access_log off;\n");
        expect(read("etc/bigbluebutton/bbb-webrtc-sfu/production.yml")).toContain("level: warn");
        expect(read("opt/freeswitch/etc/freeswitch/autoload_configs/switch.conf.xml")).toContain('value="warning"');
        expect(read("usr/share/bbb-web/WEB-INF/classes/logback.xml")).not.toContain("DEBUG");
        expect(restarts()).toEqual(["systemctl reload nginx", "systemctl restart bbb-webrtc-sfu", "fs_cli -x fsctl loglevel warning", "systemctl restart bbb-web"]);
    });

    test("a site that serves plain HTTP is refused", () => {
        box.write("root/etc/nginx/sites-available/bigbluebutton", SITE.replace("return 301 https://$server_name$request_uri;", "root /var/www;"));
        const r = box.run("bbb-data-policy", STRICT);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-data-policy: error: ");
        expect(r.stderr).toContain("serves plain HTTP");
    });

    test("nginx refusing the change fails the step before reloading", () => {
        const r = box.run("bbb-data-policy", STRICT, { NGINX_BROKEN: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("nginx refuses the changed configuration");
        expect(box.calls("systemctl")).not.toContain("systemctl reload nginx");
    });

    test("before the installer there is nothing to apply it to", () => {
        fs.rmSync(box.file("root/etc/nginx/sites-available/bigbluebutton"));
        const r = box.run("bbb-data-policy", STRICT);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-install.sh has not completed");
    });
});

describe("privacy standard, recordings on", () => {
    test("after strict, BigBlueButton's defaults come back and only our files go", () => {
        box.run("bbb-data-policy", STRICT);
        box.write("root/etc/default/unrelated", "keep me\n");
        expect(box.run("bbb-data-policy", STANDARD).status).toBe(0);
        expect(exists("etc/nginx/conf.d/99-bbb-privacy.conf")).toBe(false);
        expect(read("etc/nginx/sites-available/bigbluebutton")).toContain("access_log /var/log/nginx/bigbluebutton.access.log;");
        expect(read("etc/nginx/sites-available/bigbluebutton")).not.toContain("error_log");
        expect(read("etc/bigbluebutton/bbb-webrtc-sfu/production.yml")).toContain("level: info");
        expect(read("usr/share/bbb-web/WEB-INF/classes/logback.xml")).toBe(LOGBACK);
        expect(exists("etc/default/bigbluebutton-cron-config")).toBe(false);
        expect(exists("etc/cron.daily/bbb-purge-deleted")).toBe(false);
        expect(read("etc/default/unrelated")).toBe("keep me\n");
    });

    test("a cron config the operator wrote is never removed", () => {
        box.write("root/etc/default/bigbluebutton-cron-config", "history=3\n");
        const r = box.run("bbb-data-policy", STANDARD);
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("bbb-data-policy: privacy standard applied");
        expect(read("etc/default/bigbluebutton-cron-config")).toBe("history=3\n");
    });

    test("video: the playback package, the recording steps with process:video, the worker restarted", () => {
        expect(box.run("bbb-data-policy", STANDARD).status).toBe(0);
        expect(box.calls("apt-get")).toEqual(["apt-get install -y -q bbb-playback-video"]);
        expect(read("etc/bigbluebutton/recording/recording.yml")).toContain("    - 'process:video'\n  'process:presentation': 'publish:presentation'\n  'process:video': 'publish:video'\n");
        expect(box.calls("systemctl")).toContain("systemctl restart bbb-rap-resque-worker");
    });

    test("published recordings are deleted after retentionDays by a daily job", () => {
        expect(box.run("bbb-data-policy", STANDARD).status).toBe(0);
        const job = read("etc/cron.daily/bbb-recording-retention");
        expect(job).toContain("-mtime +30");
        expect(job).toContain('bbb-record --delete "$id"');
        expect((fs.statSync(box.file("root/etc/cron.daily/bbb-recording-retention")).mode & 0o777).toString(8)).toBe("755");
    });
});
