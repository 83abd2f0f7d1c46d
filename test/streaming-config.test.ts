// components/streaming-config.ts as text: what each setting puts in the files (test/streaming-ingest.test.ts runs
// them in a real nginx), and that nothing the workers publish can reach beyond loopback.
import {
    FORWARD_SLOT,
    FORWARD_URL,
    HOST_PATHS,
    publishUrl,
    rtmpConf,
    RtmpInputs,
    SiteInputs,
    STREAM_NAME,
    viewerFiles,
    viewerSite,
    watchPath,
} from "../components/streaming-config";
import { forwardUrlProblem } from "../components/config/values";
import { REFUSED_FORWARD_URLS } from "./forward-urls";

const NAME = "0123456789abcdef0123456789abcdef";
const rtmp = (over: Partial<RtmpInputs> = {}) => rtmpConf({ paths: HOST_PATHS, record: true, forward: false, ...over });
const site = (over: Partial<SiteInputs> = {}) => viewerSite({ fqdn: "stream.example.org", privacy: "strict", paths: HOST_PATHS, ...over });
/** The configuration's directives, comments left out. */
const directives = (conf: string) =>
    conf
        .split("\n")
        .map((l) => l.replace(/#.*/, "").trim())
        .filter(Boolean);

describe("stream names and URLs", () => {
    test("a worker publishes to the loopback RTMP listener, application live, under a 32-hex name", () => {
        expect(publishUrl(NAME)).toBe(`rtmp://127.0.0.1:1935/live/${NAME}`);
        expect(publishUrl(NAME, 19350)).toBe(`rtmp://127.0.0.1:19350/live/${NAME}`);
        expect(watchPath(NAME)).toBe(`/watch/${NAME}`);
        for (const bad of ["", NAME.toUpperCase(), `${NAME}0`, "../../etc/passwd", `${NAME.slice(1)}g`]) {
            expect(STREAM_NAME.test(bad)).toBe(false);
            expect(() => publishUrl(bad)).toThrow(/32 lowercase hex/);
            expect(() => watchPath(bad)).toThrow(/32 lowercase hex/);
        }
    });

    test("a forwarding URL is plain rtmp:// with nothing that would end nginx's quoted argument", () => {
        expect(FORWARD_URL.test("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl-mnop")).toBe(true);
        expect(FORWARD_URL.test("rtmp://peertube.example.org:1935/live/0f1e2d3c-key")).toBe(true);
        for (const bad of ["rtmps://live.example.org/app/key", "rtmp://host", 'rtmp://host/app/k"ey', "rtmp://host/app/key;", "rtmp://host/app/k ey", "rtmp://host/app/$key", "rtmp://host/app/key\n"]) {
            expect(FORWARD_URL.test(bad)).toBe(false);
        }
        for (const [why, bad] of REFUSED_FORWARD_URLS) expect([why, forwardUrlProblem(bad)]).toEqual([why, expect.stringContaining("rtmp://")]);
        expect(forwardUrlProblem("rtmp://peertube.example.org:1935/live/0f1e2d3c-key")).toBeUndefined();
        for (const self of ["rtmp://0.0.0.0/app/KEY", "rtmp://localhost/app/KEY", "rtmp://127.1/app/KEY", "rtmp://2130706433/app/KEY"]) expect([self, forwardUrlProblem(self)]).toEqual([self, expect.stringContaining("itself")]);
        expect(forwardUrlProblem("rtmp://localhost./app/KEY")).toBeDefined();
    });
});

describe("the RTMP configuration", () => {
    test("listens on loopback only, takes publishers from loopback only, lets nobody play, and never logs", () => {
        const lines = directives(rtmp({ forward: true }));
        expect(lines.filter((l) => l.startsWith("listen"))).toEqual(["listen 127.0.0.1:1935;"]);
        expect(lines.filter((l) => /^(allow|deny) /.test(l))).toEqual(["allow publish 127.0.0.1;", "deny publish all;", "deny play all;"]);
        expect(lines.filter((l) => l.startsWith("access_log"))).toEqual(["access_log off;"]);
        expect(rtmp({ port: 19350 })).toContain("listen 127.0.0.1:19350;");
    });

    test("cuts HLS into the HLS directory, 2 s fragments, a 12 s playlist, cleaned up", () => {
        expect(directives(rtmp())).toEqual(
            expect.arrayContaining(["hls on;", `hls_path ${HOST_PATHS.hls};`, "hls_fragment 2s;", "hls_playlist_length 12s;", "hls_cleanup on;"]),
        );
    });

    test("records and remuxes only when recording is on", () => {
        const on = directives(rtmp({ record: true }));
        expect(on).toEqual(
            expect.arrayContaining(["record all;", `record_path ${HOST_PATHS.recordings};`, "record_unique on;", `exec_record_done ${HOST_PATHS.remux} ${HOST_PATHS.recordings} $path;`]),
        );
        expect(directives(rtmp({ record: false })).filter((l) => /^(record|exec)/.test(l))).toEqual([]);
    });

    test("pushes to the forwarding slot only when forwarding is on, and the slot is the only forwarding URL", () => {
        expect(directives(rtmp({ forward: true })).filter((l) => l.startsWith("push"))).toEqual([`push "${FORWARD_SLOT}";`]);
        expect(rtmp({ forward: false })).not.toContain(FORWARD_SLOT);
        expect(directives(rtmp({ forward: false })).filter((l) => l.startsWith("push"))).toEqual([]);
    });

    test("refuses a path nginx would read differently", () => {
        expect(() => rtmp({ paths: { ...HOST_PATHS, recordings: "/var/lib/my recordings" } })).toThrow(/path/);
        expect(() => rtmp({ paths: { ...HOST_PATHS, hls: "relative/hls" } })).toThrow(/path/);
        expect(() => rtmp({ paths: { ...HOST_PATHS, remux: "/usr/local/sbin/remux;rm" } })).toThrow(/path/);
    });
});

describe("the viewer site", () => {
    test("port 80 answers ACME from the webroot and redirects the rest; 443 serves the certificate from certbot's live directory", () => {
        const { http, https } = site();
        expect(directives(http)).toEqual(
            expect.arrayContaining(["listen 80;", "listen [::]:80;", `root ${HOST_PATHS.acmeWebroot};`, "return 301 https://stream.example.org$request_uri;"]),
        );
        expect(directives(https)).toEqual(
            expect.arrayContaining([
                "listen 443 ssl http2;",
                "listen [::]:443 ssl http2;",
                "ssl_certificate /etc/letsencrypt/live/stream.example.org/fullchain.pem;",
                "ssl_certificate_key /etc/letsencrypt/live/stream.example.org/privkey.pem;",
                `root ${HOST_PATHS.www};`,
                `alias ${HOST_PATHS.hls}/;`,
                `auth_basic_user_file ${HOST_PATHS.htpasswd};`,
                "proxy_pass http://127.0.0.1:3000/;",
            ]),
        );
        expect(http).not.toContain("ssl_certificate");
    });

    test("privacy strict: neither server logs a request or a client; standard keeps nginx's logs", () => {
        const strict = site({ privacy: "strict" });
        for (const server of [strict.http, strict.https]) {
            expect(directives(server)).toEqual(expect.arrayContaining(["access_log off;", "log_not_found off;", `error_log ${HOST_PATHS.errorLog} emerg;`]));
        }
        const standard = site({ privacy: "standard" });
        for (const server of [standard.http, standard.https]) {
            expect(directives(server).filter((l) => /^(access_log|error_log|log_not_found)/.test(l))).toEqual([]);
        }
    });

    test("every response header is set at server level: one add_header in a location would drop the others there", () => {
        const lines = site().https.split("\n");
        const addHeaders = lines.filter((l) => l.trim().startsWith("add_header"));
        expect(addHeaders.length).toBeGreaterThanOrEqual(5);
        expect(addHeaders.every((l) => /^ {4}add_header/.test(l))).toBe(true);
    });

    test("refuses a host name nginx or the redirect would read differently", () => {
        for (const fqdn of ["Stream.Example.org", "stream", "stream.example.org;", "stream .example.org"]) {
            expect(() => site({ fqdn })).toThrow(/host name/);
        }
    });
});

describe("the viewer page", () => {
    test("has no inline script or style (the CSP forbids them), an empty icon, and muted inline autoplay", () => {
        const { "index.html": html } = viewerFiles();
        expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
        expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
        expect(html).toContain('<link rel="icon" href="data:,">');
        expect(html).toMatch(/<video id="video" [^>]*\bmuted\b[^>]*\bautoplay\b[^>]*\bplaysinline\b/);
        expect(html).toContain('<script src="/hls.light.min.js" defer></script>');
        expect(html).toContain('href="/hls.js-LICENSE.txt"');
    });
});
