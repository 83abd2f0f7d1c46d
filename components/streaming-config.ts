// The streaming host's ingest and viewer files (issue 16, docs/streaming-ingest.md), generated as plain text: pure
// functions, plain data in, file contents out (no Pulumi resource here). The streaming step writes them on the host;
// test/streaming-ingest.test.ts runs them in a real nginx with Debian's RTMP module, with its own paths and ports.
//
// The streaming workers (THM's BBB-Streaming-Server, on the same host) publish each stream over RTMP to
// publishUrl(name). nginx with libnginx-mod-rtmp (arut/nginx-rtmp-module v1.2.2, commit 23e1873a, the version
// Debian 12 and Ubuntu 22.04 ship) takes it in on loopback, cuts it into HLS for the viewer page, records it (a
// remux to MP4 when each recording ends) and pushes it on to the operator's external RTMP target when forwarding
// is on. The viewer site serves the page, the HLS files and, behind Basic auth, the workers' controller API.
//
// Upstream citations ("MOD file Lnn") are to nginx-rtmp-module at tag v1.2.2; its doc/README.md only points to the
// project's wiki, so the directives are cited from their command tables and merge functions in the C source.
import * as fs from "fs";
import * as path from "path";

/**
 * The ingest's loopback ports: nginx-rtmp's RTMP listener (the workers publish here) and the workers' controller
 * (BBB-Streaming-Server v1.1.1 src/controller/app.ts L10: `process.env.PORT || 3000`; its compose file publishes it
 * on 127.0.0.1 only), which the viewer site puts behind Basic auth at /api/.
 */
export const STREAMING_PORTS = { rtmp: 1935, controller: 3000 } as const;

/** The streaming API's Basic authentication user (PILOS's STREAMING_AUTH_TYPE=basic speaks it too). */
export const STREAMING_API_USER = "bbb-streaming";

/** The RTMP application the workers publish to. */
export const RTMP_APPLICATION = "live";

/** A stream's name: 32 lowercase hex characters (a random 128-bit value), also its viewer page's path. */
export const STREAM_NAME = /^[0-9a-f]{32}$/;

/** Where a worker publishes stream `name` (its job's rtmpUrl). */
export function publishUrl(name: string, port: number = STREAMING_PORTS.rtmp): string {
    if (!STREAM_NAME.test(name)) throw new Error(`stream name ${JSON.stringify(name)} is not 32 lowercase hex characters`);
    return `rtmp://127.0.0.1:${port}/${RTMP_APPLICATION}/${name}`;
}

/**
 * The text the forwarding `push` line carries instead of the operator's external RTMP URL. That URL holds a stream
 * key (a secret): it is never in these files as Pulumi sees them, nor on a command line; the streaming step puts it
 * in place of this slot in the root-only copy it installs.
 */
export const FORWARD_SLOT = "@FORWARD_URL@";

/**
 * What the step may put in FORWARD_SLOT: an rtmp:// URL (nginx-rtmp has no TLS, so no rtmps://) with a host name or
 * IPv4 address, an optional port, an application and a stream key, none of the characters that would end or change
 * the quoted nginx argument; at most FORWARD_URL_MAX characters (nginx refuses a longer argument). The streaming
 * step checks the same pattern (scripts/remote/streaming-setup.sh); the configuration check adds what nginx would
 * accept but should not be (a port above 65535, an address of the host itself).
 */
export const FORWARD_URL = /^rtmp:\/\/[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[1-9][0-9]{0,4})?\/[^\s\x00-\x1f\x7f-\x9f"'\\;{}$#/]+\/[^\s\x00-\x1f\x7f-\x9f"'\\;{}$#]+$/;
export const FORWARD_URL_MAX = 1024;

/** Where the generated files put and find things on the host; the tests substitute their own. */
export interface IngestPaths {
    /** HLS playlists and segments (nginx-rtmp writes them; the viewer site serves them at /hls/). */
    hls: string;
    /** Recordings: FLV while a stream runs, MP4 once it ended and was remuxed. */
    recordings: string;
    /** The viewer page: viewerFiles() plus hls.js's VIEWER_VENDOR_FILES. */
    www: string;
    /** The API's Basic auth users (`openssl passwd -6` hashes). */
    htpasswd: string;
    /** certbot's HTTP-01 webroot (the monitoring host uses the same one). */
    acmeWebroot: string;
    /** certbot's live directory: the certificate is <certificates>/<fqdn>/fullchain.pem and privkey.pem. */
    certificates: string;
    /** The remux program, scripts/remote/streaming-remux.sh. */
    remux: string;
    /** The error log the viewer site writes to under privacy "strict" (at a level that names no client). */
    errorLog: string;
}

/**
 * The host's paths. The remux program is installed like the other stand-alone programs of scripts/remote/
 * (scalelite-metrics.sh as /usr/local/sbin/bbb-scalelite-metrics).
 */
export const HOST_PATHS: IngestPaths = {
    hls: "/var/lib/bbb-streaming/hls",
    recordings: "/var/lib/bbb-streaming/recordings",
    www: "/var/www/bbb-streaming",
    htpasswd: "/etc/nginx/bbb-streaming.htpasswd",
    acmeWebroot: "/var/www/bbb-acme",
    certificates: "/etc/letsencrypt/live",
    remux: "/usr/local/sbin/bbb-streaming-remux",
    errorLog: "/var/log/nginx/error.log",
};

/** Where the RTMP file goes: the stock nginx.conf includes it at its top level, after 50-mod-rtmp.conf (rtmpConf). */
export const RTMP_CONF_PATH = "/etc/nginx/modules-enabled/60-bbb-streaming.conf";

/** HLS: 2 s fragments (the workers' keyframe interval is 2 s: BSS v1.1.1 BBBLiveStream.ts `-g 60 -r 30`). */
export const HLS_FRAGMENT_SECONDS = 2;
/** HLS: the playlist a live viewer sees spans this much (6 fragments; hls.js starts 3 fragments from the end). */
export const HLS_PLAYLIST_SECONDS = 12;

export interface RtmpInputs {
    paths: IngestPaths;
    /** The loopback port of the RTMP listener. Default: STREAMING_PORTS.rtmp. */
    port?: number;
    /** Record every stream (FLV, remuxed to MP4 when it ends). */
    record: boolean;
    /** Push every stream on to the operator's target: a `push` line with FORWARD_SLOT. */
    forward: boolean;
}

/** A path that can stand unquoted in nginx's configuration (and in an exec line: no spaces, quotes or `$`). */
function confPath(p: string): string {
    if (!/^\/[A-Za-z0-9._/-]+$/.test(p)) throw new Error(`path ${JSON.stringify(p)} is not absolute or has characters nginx would read differently`);
    return p.replace(/\/+$/, "");
}

/**
 * /etc/nginx/modules-enabled/60-bbb-streaming.conf (RTMP_CONF_PATH): the rtmp{} block. RTMP has to be configured at
 * nginx's top level (main context). The stock /etc/nginx/nginx.conf (package nginx-common) includes
 * `/etc/nginx/modules-enabled/*.conf` there (L5 of Debian 12's, nginx 1.22.1, before events{} and http{}), while
 * conf.d/ and sites-enabled/ are included inside http{} (L59-60). nginx expands the glob in name order, so
 * 50-mod-rtmp.conf (libnginx-mod-rtmp's `load_module modules/ngx_rtmp_module.so;`) comes first and this file's
 * rtmp{} block is read by a loaded module: nginx.conf is not edited. Checked with `nginx -t` against Debian 12's own
 * nginx.conf (a 40- name fails: unknown directive "rtmp"); Ubuntu 22.04's nginx-common (1.18) is expected to have
 * the same include, not checked here.
 *
 * Several worker processes (the stock `worker_processes auto`) are fine here: a stream's HLS, recording, remux and
 * push all happen in the worker its publisher is connected to; only RTMP playback from another worker would need
 * rtmp_auto_push (MOD README.md "Multi-worker streaming example"), and nobody plays RTMP.
 */
export function rtmpConf(inputs: RtmpInputs): string {
    const port = inputs.port ?? STREAMING_PORTS.rtmp;
    const lines = [
        `# Managed by bbb (Pulumi, streaming step); changes here are overwritten. Installed as ${RTMP_CONF_PATH}: the`,
        "# stock nginx.conf includes modules-enabled/*.conf at its top level in name order, after 50-mod-rtmp.conf.",
        "rtmp {",
        "    # The RTMP log is on by default and separate from http's: without this line every publish and push is",
        "    # logged with the client's address, the stream name and the forwarding target's stream key, to",
        "    # /var/log/nginx/access.log (MOD ngx_rtmp_log_module.c L88 default path, L93 access_log, L582 off).",
        "    # Only the local workers publish here, so there is nothing worth logging.",
        "    access_log off;",
        "    server {",
        "        # Loopback only: the workers publish from this host (MOD ngx_rtmp_core_module.c L47 listen).",
        `        listen 127.0.0.1:${port};`,
        "        chunk_size 4096;",
        `        application ${RTMP_APPLICATION} {`,
        "            live on;",
        "            # Rules are checked in order, the first match decides (MOD ngx_rtmp_access_module.c L59-66 allow/deny,",
        "            # L203-211); nginx's own pushes skip them (L436). Nobody plays RTMP: viewers get HLS.",
        "            allow publish 127.0.0.1;",
        "            deny publish all;",
        "            deny play all;",
        "            # HLS into <hls>/<name>.m3u8 and <name>-<n>.ts (MOD hls/ngx_rtmp_hls_module.c L157-309 directives;",
        "            # defaults L2324-2347: 5 s fragments, 30 s playlist, cleanup on). Expired files are removed through",
        "            # nginx's path manager (L2355-2383), which also creates the directory (mode 0700) for nginx's user.",
        "            hls on;",
        `            hls_path ${confPath(inputs.paths.hls)};`,
        `            hls_fragment ${HLS_FRAGMENT_SECONDS}s;`,
        `            hls_playlist_length ${HLS_PLAYLIST_SECONDS}s;`,
        "            hls_cleanup on;",
    ];
    if (inputs.record) {
        lines.push(
            "            # Every stream to <recordings>/<name>-<unix time>.flv (MOD ngx_rtmp_record_module.c L61-146 directives;",
            "            # L216-220: .flv suffix, record_unique off by default). nginx does not create this directory: it must",
            "            # belong to nginx's worker user. When a recording is closed, the remux program (run by that user, stdin,",
            "            # stdout and stderr on /dev/null: MOD ngx_rtmp_exec_module.c L211 exec_record_done, L380 $path,",
            "            # L747-835 fork, /dev/null, execvp: no shell) turns it into <name>-<unix time>.mp4 and removes the",
            "            # FLV; it removes empty ones at once (a publisher refused by the rules above still opens a file).",
            "            record all;",
            `            record_path ${confPath(inputs.paths.recordings)};`,
            "            record_unique on;",
            `            exec_record_done ${confPath(inputs.paths.remux)} ${confPath(inputs.paths.recordings)} $path;`,
        );
    }
    if (inputs.forward) {
        lines.push(
            "            # The operator's external target (MOD ngx_rtmp_relay_module.c L83 push, L1463-1472: the URL as given).",
            "            # The step fills the slot in a root-only copy. nginx logs this URL, stream key included, at info level",
            "            # for every push (L641-643) and at error level when a push cannot be set up (L691-694).",
            `            push "${FORWARD_SLOT}";`,
        );
    }
    lines.push("        }", "    }", "}", "");
    return lines.join("\n");
}

export type Privacy = "strict" | "standard";

export interface SiteInputs {
    fqdn: string;
    privacy: Privacy;
    paths: IngestPaths;
    /** listen parameters of the HTTP and HTTPS servers. Default: port 80 and 443 on IPv4 and IPv6. */
    listen?: { http: string[]; https: string[] };
    /** The controller's loopback port. Default: STREAMING_PORTS.controller. */
    controllerPort?: number;
}

/** The viewer site's server blocks: `http` alone until the certificate exists (ACME), then `http` + `https`. */
export interface ViewerSite {
    http: string;
    https: string;
}

/**
 * The headers of every HTTPS response (server level only: one add_header in a location would drop them all there).
 * The page loads only its own files; hls.js plays through MediaSource (`blob:` media) and may run its transmuxer in a
 * `blob:` worker. No inline script or style is allowed, so the page has none; its icon is an empty `data:` image
 * (so that browsers do not ask for /favicon.ico, a 404 that nginx would log with the viewer's address).
 */
export const CONTENT_SECURITY_POLICY =
    "default-src 'self'; media-src 'self' blob:; worker-src 'self' blob:; img-src 'self' data:; base-uri 'none'; form-action 'none'";

/** The path of a stream's page: /watch/<name>. */
export function watchPath(name: string): string {
    if (!STREAM_NAME.test(name)) throw new Error(`stream name ${JSON.stringify(name)} is not 32 lowercase hex characters`);
    return `/watch/${name}`;
}

/**
 * /etc/nginx/sites-available/bbb-streaming (included inside the stock http{}): port 80 for ACME HTTP-01 and the
 * redirect, and 443 with the Let's Encrypt certificate for the viewer page, the HLS files and the API.
 *
 * Privacy "strict": no access log, no "not found" lines (a late viewer asking for an expired segment), and errors
 * only at emerg, as on the monitoring host (scripts/remote/monitoring-setup.sh): crit would not do, because nginx
 * logs a TLS handshake that fails for a reason it does not know at crit, with the client's address (nginx
 * src/event/ngx_event_openssl.c, ngx_ssl_connection_error: `level = NGX_LOG_CRIT` unless the error is a known
 * client-side one). "standard": nginx's defaults (the stock access and error logs).
 * Request bodies are never logged (the default log formats have no $request_body), and the API's credentials are
 * not passed on to the controller.
 */
export function viewerSite(inputs: SiteInputs): ViewerSite {
    const { fqdn, paths } = inputs;
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/.test(fqdn)) throw new Error(`${JSON.stringify(fqdn)} is not a lowercase host name`);
    const listen = inputs.listen ?? { http: ["80", "[::]:80"], https: ["443", "[::]:443"] };
    const controllerPort = inputs.controllerPort ?? STREAMING_PORTS.controller;
    const logging =
        inputs.privacy === "strict"
            ? [
                  "    # privacy strict: no request, no client address is logged.",
                  "    access_log off;",
                  "    log_not_found off;",
                  `    error_log ${confPath(paths.errorLog)} emerg;`,
              ]
            : ["    # privacy standard: nginx's default access and error logs."];
    const live = `${confPath(paths.certificates)}/${fqdn}`;
    const http = [
        "# Managed by bbb (Pulumi, streaming step); changes here are overwritten.",
        "server {",
        ...listen.http.map((l) => `    listen ${l};`),
        `    server_name ${fqdn};`,
        ...logging,
        "    server_tokens off;",
        "    location /.well-known/acme-challenge/ {",
        `        root ${confPath(paths.acmeWebroot)};`,
        "    }",
        "    location / {",
        `        return 301 https://${fqdn}$request_uri;`,
        "    }",
        "}",
        "",
    ].join("\n");
    const https = [
        "# Playlists change every fragment: never cached. Segments keep nginx's default validators.",
        "map $uri $bbb_streaming_cache_control {",
        "    default \"\";",
        `    "~^/hls/[0-9a-f]{32}\\.m3u8$" "no-cache";`,
        "}",
        "server {",
        ...listen.https.map((l) => `    listen ${l} ssl http2;`),
        `    server_name ${fqdn};`,
        ...logging,
        `    ssl_certificate ${live}/fullchain.pem;`,
        `    ssl_certificate_key ${live}/privkey.pem;`,
        "    ssl_protocols TLSv1.2 TLSv1.3;",
        "    server_tokens off;",
        `    add_header Content-Security-Policy "${CONTENT_SECURITY_POLICY}" always;`,
        "    add_header X-Content-Type-Options nosniff always;",
        "    add_header Referrer-Policy no-referrer always;",
        "    add_header Strict-Transport-Security \"max-age=31536000\" always;",
        "    add_header Cache-Control $bbb_streaming_cache_control always;",
        `    root ${confPath(paths.www)};`,
        "    index index.html;",
        "    autoindex off;",
        "    # A stream's page: the same file for every name; the page reads the name from its path.",
        `    location ~ "^/watch/[0-9a-f]{32}$" {`,
        "        try_files /index.html =404;",
        "    }",
        "    location /hls/ {",
        `        alias ${confPath(paths.hls)}/;`,
        "        types {",
        "            application/vnd.apple.mpegurl m3u8;",
        "            video/mp2t ts;",
        "        }",
        "    }",
        "    # The workers' controller (BBB-Streaming-Server v1.1.1 src/controller/app.ts: GET /health, POST /,",
        "    # GET /<jobId>, POST /<jobId>/stop|pause|resume) has no authentication of its own (its README L48-54):",
        "    # /api/<path> reaches it as /<path> only with a user and password from the htpasswd file.",
        "    location /api/ {",
        '        auth_basic "bbb streaming";',
        `        auth_basic_user_file ${confPath(paths.htpasswd)};`,
        '        proxy_set_header Authorization "";',
        "        client_max_body_size 64k;",
        `        proxy_pass http://127.0.0.1:${controllerPort}/;`,
        "    }",
        "}",
        "",
    ].join("\n");
    return { http, https };
}

/** streaming/viewer/: beside components/ in the source tree, two levels up from a compiled copy in bin/. */
const VIEWER_DIR = [path.join(__dirname, "..", "streaming", "viewer"), path.join(__dirname, "..", "..", "streaming", "viewer")].find((dir) =>
    fs.existsSync(dir),
)!;

/** The viewer page's own files (streaming/viewer/), by their name in IngestPaths.www. */
export function viewerFiles(): Record<"index.html" | "player.js" | "style.css", string> {
    const read = (name: string) => fs.readFileSync(path.join(VIEWER_DIR, name), "utf8");
    return { "index.html": read("index.html"), "player.js": read("player.js"), "style.css": read("style.css") };
}

/**
 * The page's player, hls.js (Apache-2.0, a development dependency at the version package.json pins): the file of
 * its npm package each name in IngestPaths.www is taken from. The light build leaves out alternate audio, subtitles,
 * DRM and CMCD, none of which one live stream needs; its licence is served beside it (the page links to it).
 */
export const VIEWER_VENDOR_FILES = {
    "hls.light.min.js": "dist/hls.light.min.js",
    "hls.js-LICENSE.txt": "LICENSE",
} as const;
