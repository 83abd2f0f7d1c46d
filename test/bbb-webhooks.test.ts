// scripts/remote/bbb-webhooks.sh, run for real against stubs that behave like bbb-webhooks 3.x: hooks persist
// in Redis, the service loads them from there when it starts and then registers its config's permanentURLs,
// and its API checks checksums as bbb-webhooks does (sha1 of the call name after /bigbluebutton/api/, the
// query without the checksum, and the shared secret) and never destroys a permanent hook.
import { createHash } from "crypto";
import * as fs from "fs";
import { parse } from "yaml";
import { Sandbox } from "./sandbox";
import { hooksApiCurl, installedBbb, installStubs, WEBHOOKS_REDIS_CLI } from "./stubs";

const SECRET = "WebSecret0123456789abcdefghijklmnopqrstuv";
const FQDN = "bbb-1.example.org";
const A = "https://app.example.com/hook";
const B = "https://lms.example.org/bbb/events?token=t0ken";
const C = "https://hooks.example.net/bbb";
const INPUTS = { FQDN, URLS: `${A}\n${B}`, API_WAIT_SECONDS: "0" };
const OVERRIDE = "root/etc/bigbluebutton/bbb-webhooks/production.yml";

/**
 * systemctl as in stubs.ts, plus bbb-webhooks starting: its hooks are loaded from Redis
 * ($SANDBOX/webhooks/redis: `set` lists the ids, `hook:<id>` holds URL and permanent flag), then every
 * permanentURLs entry of production.yml without a hook yet is registered as a permanent hook, in Redis too.
 * $SANDBOX/webhooks/dies-at-restart: bbb-webhooks exits right after a restart (its unit, Type=simple, counts as
 * started once forked: systemctl restart succeeds, the unit is inactive after).
 */
const SYSTEMCTL = `
verb=$1; shift
[ "\${SYSTEMCTL_FAIL:-}" = "$verb" ] && exit 1
mkdir -p "$SANDBOX/units"
unit=""; for a in "$@"; do case $a in -*) ;; *) unit=$a ;; esac; done
wh="$SANDBOX/webhooks"
load() {
  rm -rf "$wh/mem"; mkdir -p "$wh/mem" "$wh/redis"; touch "$wh/redis/set"
  while read -r id; do [ -f "$wh/redis/hook:$id" ] && cp "$wh/redis/hook:$id" "$wh/mem/$id"; done < "$wh/redis/set"
  sed -n "s/^ *- url: '\\(.*\\)'$/\\1/p" "$ROOT/etc/bigbluebutton/bbb-webhooks/production.yml" | sed "s/''/'/g" |
  while IFS= read -r url; do
    for f in "$wh/mem"/*; do [ -f "$f" ] && [ "$(head -n1 "$f")" = "$url" ] && continue 2; done
    id=p$(printf '%s' "$url" | sha1sum | cut -c1-12)
    printf '%s\\ntrue\\n' "$url" > "$wh/mem/$id"; cp "$wh/mem/$id" "$wh/redis/hook:$id"; echo "$id" >> "$wh/redis/set"
  done
}
case $verb in
  start) [ -f "$SANDBOX/units/$unit" ] || { [ "$unit" = bbb-webhooks ] && load; }; touch "$SANDBOX/units/$unit" ;;
  restart) [ "$unit" = bbb-webhooks ] && load; touch "$SANDBOX/units/$unit"; [ ! -e "$wh/dies-at-restart" ] || rm -f "$SANDBOX/units/$unit" ;;
  stop) rm -f "$SANDBOX/units/$unit" ;;
  is-active) [ -f "$SANDBOX/units/$unit" ] ;;
esac`;



let box: Sandbox;
beforeEach(() => {
    box = new Sandbox();
    installStubs(box);
    installedBbb(box, SECRET);
    box.stub("systemctl", SYSTEMCTL);
    box.stub("curl", hooksApiCurl('echo "curl: unexpected URL $url" >&2; exit 3'));
    box.stub("redis-cli", WEBHOOKS_REDIS_CLI);
});
afterEach(() => box.cleanup());

const run = (inputs: Record<string, string> = INPUTS, env: Record<string, string> = {}) => box.run("bbb-webhooks", inputs, env);
const read = (relative: string) => fs.readFileSync(box.file(relative), "utf8");
const restarts = () => box.calls("systemctl").filter((c) => c === "systemctl restart bbb-webhooks");
/** The hooks bbb-webhooks holds (in memory, as hooks/list shows them) or keeps in Redis: URL -> permanent. */
function hooks(where: "mem" | "redis"): Record<string, boolean> {
    const dir = box.file(`webhooks/${where}`);
    const ids = where === "redis" ? read("webhooks/redis/set").split("\n").filter(Boolean) : fs.readdirSync(dir);
    return Object.fromEntries(
        ids.map((id) => {
            const [url, permanent] = read(`webhooks/${where}/${where === "redis" ? "hook:" : ""}${id}`).split("\n");
            return [url, permanent === "true"];
        }),
    );
}
/** A hook in Redis from before this run, e.g. one an application created through the API. */
function storedHook(id: string, url: string, permanent: boolean): void {
    box.write(`webhooks/redis/hook:${id}`, `${url}\n${permanent}\n`);
    fs.appendFileSync(box.file("webhooks/redis/set"), `${id}\n`);
}

test("installs bbb-webhooks and puts the permanent URLs into the override, readable by its service user", () => {
    const r = run();
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(box.calls("apt-get")).toEqual(["apt-get install -y -q bbb-webhooks"]);
    expect(parse(read(OVERRIDE))).toEqual({
        modules: { "../out/webhooks/index.js": { config: { permanentURLs: [{ url: A, getRaw: false }, { url: B, getRaw: false }] } } },
    });
    expect((fs.statSync(box.file(OVERRIDE)).mode & 0o777).toString(8)).toBe("640");
    expect(box.calls("chown")).toContainEqual(expect.stringMatching(/^chown root:bigbluebutton .*\/bbb-webhooks\/production\.yml\.\w+$/));
    expect(restarts()).toHaveLength(1);
    expect(box.calls("systemctl")).toContain("systemctl is-active --quiet bbb-webhooks");
    expect(hooks("mem")).toEqual({ [A]: true, [B]: true });
    expect(r.stdout).toContain("bbb-webhooks calls 2 permanent URL(s); 0 stale hook(s) removed");
});

test("without URLs permanentURLs is an empty list, which replaces the default's", () => {
    expect(run({ ...INPUTS, URLS: "" }).status).toBe(0);
    expect(parse(read(OVERRIDE)).modules["../out/webhooks/index.js"].config.permanentURLs).toEqual([]);
});

test("URLs are YAML-quoted and deduplicated", () => {
    const odd = "https://x.example/it's?k=v&secret=abc";
    const r = run({ ...INPUTS, URLS: `${odd}\n\n${A}\n${odd}\n` });
    expect(r.status).toBe(0);
    expect(parse(read(OVERRIDE)).modules["../out/webhooks/index.js"].config.permanentURLs).toEqual([
        { url: odd, getRaw: false },
        { url: A, getRaw: false },
    ]);
    expect(hooks("mem")).toEqual({ [odd]: true, [A]: true });
    expect(r.stdout).toContain("permanent hooks changed (2 URL(s)); restarting bbb-webhooks");
});

test("lists the hooks with a call signed as bbb-webhooks checks it: sha1 of 'hooks/list' and the secret", () => {
    expect(run().status).toBe(0);
    const checksum = createHash("sha1").update(`hooks/list${SECRET}`).digest("hex");
    expect(box.calls("curl")).toEqual([
        `curl -sS --max-time 20 --resolve ${FQDN}:443:127.0.0.1 https://${FQDN}/bigbluebutton/api/hooks/list?checksum=${checksum}`,
    ]);
});

test("a second run with the same URLs writes nothing and restarts nothing", () => {
    expect(run().status).toBe(0);
    const before = [read(OVERRIDE), fs.statSync(box.file(OVERRIDE)).mtimeMs];
    fs.writeFileSync(box.file("calls.log"), "");
    const r = run();
    expect(r.status).toBe(0);
    expect([read(OVERRIDE), fs.statSync(box.file(OVERRIDE)).mtimeMs]).toEqual(before);
    expect(restarts()).toEqual([]);
    expect(box.calls("redis-cli")).toEqual([]);
    expect(box.files().filter((f) => f.includes(".yml."))).toEqual([]);
});

test("a changed URL list rewrites the override, restarts, and removes the dropped URL's permanent hook from Redis", () => {
    storedHook("api-1", "https://greenlight.example.org/callback", false);
    expect(run().status).toBe(0);
    fs.writeFileSync(box.file("calls.log"), "");
    const r = run({ ...INPUTS, URLS: `${A}\n${C}` });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const staleId = `p${createHash("sha1").update(B).digest("hex").slice(0, 12)}`;
    // Logged without the query string, which may carry a token.
    expect(r.stdout).toContain(`removing the stale permanent hook ${staleId} (https://lms.example.org/bbb/events)`);
    expect(r.stdout).not.toContain("t0ken");
    expect(box.calls("redis-cli")).toEqual([
        `redis-cli SREM bigbluebutton:webhooks:out:hooks ${staleId}`,
        `redis-cli DEL bigbluebutton:webhooks:out:hook:${staleId}`,
    ]);
    // Once for the new config, once to drop the stale hook from memory.
    expect(restarts()).toHaveLength(2);
    const expected = { "https://greenlight.example.org/callback": false, [A]: true, [C]: true };
    expect(hooks("mem")).toEqual(expected);
    expect(hooks("redis")).toEqual(expected);
    // Every API call is a signed hooks/list: bbb-webhooks' hooks/destroy refuses permanent hooks.
    const checksum = createHash("sha1").update(`hooks/list${SECRET}`).digest("hex");
    expect(box.calls("curl")).toHaveLength(2);
    for (const c of box.calls("curl")) expect(c).toMatch(new RegExp(`/bigbluebutton/api/hooks/list\\?checksum=${checksum}$`));
    expect(r.stdout).toContain("bbb-webhooks calls 2 permanent URL(s); 1 stale hook(s) removed");
});

test("a permanent hook left over from an earlier configuration goes even when the override is unchanged", () => {
    expect(run().status).toBe(0);
    storedHook("old-1", "https://old.example.org/hook", true);
    fs.writeFileSync(box.file("calls.log"), "");
    // bbb-webhooks has stopped since (e.g. a reboot): started, it loads old-1 from Redis.
    fs.rmSync(box.file("units/bbb-webhooks"));
    const r = run();
    expect(r.status).toBe(0);
    expect(box.calls("redis-cli")).toEqual(["redis-cli SREM bigbluebutton:webhooks:out:hooks old-1", "redis-cli DEL bigbluebutton:webhooks:out:hook:old-1"]);
    expect(restarts()).toHaveLength(1);
    expect(hooks("mem")).toEqual({ [A]: true, [B]: true });
});

test("a URL that is not https is refused before anything runs", () => {
    const r = run({ ...INPUTS, URLS: `${A}\nhttp://insecure.example.org/hook` });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("bbb-webhooks: error: webhook URL 'http://insecure.example.org/hook' is not an https:// URL");
    expect(box.calls()).toEqual([]);
    const wait = run({ ...INPUTS, API_WAIT_SECONDS: "soon" });
    expect([wait.status, wait.stderr]).toEqual([1, expect.stringContaining("bbb-webhooks: error: API_WAIT_SECONDS must be a number of seconds")]);
    expect(box.calls()).toEqual([]);
});

test("before the installer has run there is nothing to configure", () => {
    fs.rmSync(box.file("root/etc/bigbluebutton/bbb-web.properties"));
    const r = run();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("bbb-webhooks: error:");
    expect(r.stderr).toContain("bbb-web.properties is missing: bbb-install.sh has not completed on this host");
    expect(box.calls()).toEqual([]);
});

test("a hooks API that refuses bbb-web's secret fails the step and says where to look", () => {
    box.write("webhooks/secret", "SomeOtherSecret0123456789abcdefghijklmno");
    const r = run();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("bbb-webhooks: error: the hooks API at https://bbb-1.example.org/bigbluebutton/api/hooks refuses the secret of bbb-web.properties (checksumError)");
});

test("bbb-webhooks failing to restart stops the step", () => {
    const r = run(INPUTS, { SYSTEMCTL_FAIL: "restart" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("bbb-webhooks: error: bbb-webhooks did not restart (see: journalctl -u bbb-webhooks)");
});

test("bbb-webhooks failing to start (nothing changed) or not running after stops the step, saying where to look", () => {
    expect(run().status).toBe(0);
    const start = run(INPUTS, { SYSTEMCTL_FAIL: "start" });
    expect([start.status, start.stderr]).toEqual([1, expect.stringContaining("bbb-webhooks: error: bbb-webhooks did not start (see: journalctl -u bbb-webhooks)")]);
    const down = run(INPUTS, { SYSTEMCTL_FAIL: "is-active" });
    expect([down.status, down.stderr]).toEqual([1, expect.stringContaining("bbb-webhooks: error: bbb-webhooks is not running (see: journalctl -u bbb-webhooks)")]);
});

test("bbb-web.properties without a securitySalt: BigBlueButton is not installed, the step says so", () => {
    expect(run().status).toBe(0);
    fs.writeFileSync(box.file("root/etc/bigbluebutton/bbb-web.properties"), "bigbluebutton.web.serverURL=https://bbb-1.example.org\n");
    const r = run();
    expect([r.status, r.stderr]).toEqual([1, expect.stringContaining("holds no securitySalt: bbb-install.sh has not completed on this host")]);
});

test("a hooks API that does not answer in time fails the step", () => {
    const r = run(INPUTS, { HOOKS_DOWN: "1" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("bbb-webhooks: error: the hooks API at https://bbb-1.example.org/bigbluebutton/api/hooks did not answer within 0s");
});

test("a permanent URL that bbb-webhooks does not register fails the step", () => {
    box.stub("systemctl", SYSTEMCTL.replace("restart) [ \"$unit\" = bbb-webhooks ] && load;", "restart)"));
    const r = run();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`bbb-webhooks: error: bbb-webhooks did not register the permanent hook(s) ${A} https://lms.example.org/bbb/events within 0s`);
});

test("the API secret is never printed, never on a command line, and written nowhere", () => {
    storedHook("old-1", "https://old.example.org/hook", true);
    const runs = [run(), run({ ...INPUTS, URLS: C }), run(INPUTS, { SYSTEMCTL_FAIL: "restart" })];
    // They ran, and signed their calls with it.
    expect(runs.map((r) => r.status)).toEqual([0, 0, 1]);
    expect(box.calls("curl").some((c) => /\/api\/hooks\/list\?checksum=[0-9a-f]{40}/.test(c))).toBe(true);
    for (const r of runs) expect(`${r.stdout}${r.stderr}`).not.toContain(SECRET);
    expect(read("calls.log")).not.toContain(SECRET);
    const holding = box.files().filter((f) => read(`root/${f}`).includes(SECRET));
    expect(holding).toEqual(["etc/bigbluebutton/bbb-web.properties"]);
});

describe("removing a stale permanent hook", () => {
    /** A first run, then a permanent hook from an earlier configuration, and bbb-webhooks stopped (e.g. a reboot). */
    function staleHook(id = "old-1"): void {
        expect(run().status).toBe(0);
        storedHook(id, "https://old.example.org/hook", true);
        fs.rmSync(box.file("units/bbb-webhooks"));
        fs.writeFileSync(box.file("calls.log"), "");
    }

    test("a hooks list with an id bbb-webhooks does not make is refused before anything is removed from Redis", () => {
        staleHook("1;FLUSHALL");
        const r = run();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-webhooks: error: unexpected hook id '1;FLUSHALL' in the hooks list");
        expect(box.calls("redis-cli")).toEqual([]);
        expect(restarts()).toEqual([]);
        expect(hooks("redis")["https://old.example.org/hook"]).toBe(true);
    });

    test("without redis-cli the step stops, saying so; nothing restarts and the hook stays", () => {
        staleHook();
        box.remove("redis-cli");
        const r = run();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-webhooks: error: redis-cli is missing: cannot remove stale permanent hooks");
        expect(restarts()).toEqual([]);
        expect(hooks("redis")["https://old.example.org/hook"]).toBe(true);
    });

    test("a Redis that does not answer stops the step with redis-cli's words; bbb-webhooks is not restarted", () => {
        staleHook();
        const r = run(INPUTS, { REDIS_DOWN: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("Could not connect to Redis at 127.0.0.1:6379: Connection refused\nbbb-webhooks: error: cannot remove the stale permanent hook old-1 from Redis");
        expect(restarts()).toEqual([]);
        expect(hooks("redis")["https://old.example.org/hook"]).toBe(true);
    });

    test("a bbb-webhooks that dies right after its restart stops the step before the hooks are listed again", () => {
        staleHook();
        box.write("webhooks/dies-at-restart", "");
        const r = run();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-webhooks: error: bbb-webhooks is not running (see: journalctl -u bbb-webhooks)");
        expect(restarts()).toHaveLength(1);
        expect(box.calls("curl")).toHaveLength(1);
        expect(r.stdout).not.toContain("stale hook(s) removed");
    });

    test("a bbb-webhooks that keeps its hooks under other Redis keys (2.x: bigbluebutton:webhooks:hooks) still has the hook after the restart: the step says so", () => {
        // bbb-webhooks 2.x's config/default.example.yml: redis.keys.hooks and hookPrefix without :out:.
        box.stub("systemctl", SYSTEMCTL.replaceAll("$wh/redis", "$wh/redis-2x"));
        expect(run().status).toBe(0);
        box.write("webhooks/redis-2x/hook:old-1", "https://old.example.org/hook\ntrue\n");
        fs.appendFileSync(box.file("webhooks/redis-2x/set"), "old-1\n");
        fs.rmSync(box.file("units/bbb-webhooks"));
        fs.writeFileSync(box.file("calls.log"), "");
        const r = run();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-webhooks: error: the stale permanent hook old-1 is still registered after its removal from Redis");
        expect(box.calls("redis-cli")).toEqual(["redis-cli SREM bigbluebutton:webhooks:out:hooks old-1", "redis-cli DEL bigbluebutton:webhooks:out:hook:old-1"]);
        expect(restarts()).toHaveLength(1);
    });
});
