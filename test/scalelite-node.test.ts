// scripts/remote/scalelite-node.sh, run for real against a docker stub that emulates Scalelite's rake
// tasks and a curl stub that answers as the BBB node's API does.
import * as fs from "fs";
import { Sandbox } from "./sandbox";
import { installStubs } from "./stubs";

const SECRET = "NodeSecret0123456789abcdefghijklmnopqrstu";
const NEW_SECRET = "RotatedSecret0123456789abcdefghijklmnopq";
const NODE = { NODE_ID: "bbb-5.example.org", API_URL: "https://bbb-5.example.org/bigbluebutton/api", SECRET, DRAIN: "false", INSTALL_ID: "1".repeat(64) };

let box: Sandbox;
beforeEach(() => {
    box = new Sandbox();
    installStubs(box);
    // The node's own API (the curl stub checks checksums against this secret).
    box.write("root/etc/bigbluebutton/bbb-web.properties", `securitySalt=${SECRET}\n`);
});
afterEach(() => box.cleanup());

const server = (id = NODE.NODE_ID) => {
    const dir = box.file(`scalelite/${id}`);
    if (!fs.existsSync(dir)) return undefined;
    const read = (f: string) => fs.readFileSync(`${dir}/${f}`, "utf8").trim();
    return { url: read("url"), secret: read("secret"), state: read("state") };
};
const rakeCalls = () => box.calls("docker").filter((c) => c.startsWith("docker exec") && !c.endsWith("bin/rake servers")).map((c) => c.replace("docker exec scalelite-api bin/rake ", ""));
const hosting = (meetings: number) => {
    box.write(`scalelite/${NODE.NODE_ID}/meetings`, `${meetings}\n`);
    box.write("meetings", Array.from({ length: meetings }, (_, i) => `m${i}\n`).join(""));
};
const apply = (inputs = NODE) => box.run("scalelite-node", inputs);
const remove = (env: Record<string, string> = {}) => box.run("scalelite-node", NODE, env, ["remove"]);

test("a new node is added with its API URL and secret, then enabled", () => {
    const r = apply();
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    // One rake invocation (one Rails boot) for both tasks.
    expect(rakeCalls()).toEqual([`servers:add[${NODE.API_URL},${SECRET},1.0] servers:enable[bbb-5.example.org]`]);
    expect(server()).toEqual({ url: NODE.API_URL, secret: SECRET, state: "enabled" });
    expect(`${r.stdout}${r.stderr}`).not.toContain(SECRET);
});

test("running it again changes nothing", () => {
    apply();
    fs.writeFileSync(box.file("calls.log"), "");
    expect(apply().status).toBe(0);
    expect(rakeCalls()).toEqual([]);
});

test("a disabled node (e.g. panicked by the poller) is enabled again", () => {
    apply();
    fs.writeFileSync(box.file(`scalelite/${NODE.NODE_ID}/state`), "disabled\n");
    expect(apply().status).toBe(0);
    expect(server()?.state).toBe("enabled");
});

test("a new secret: cordon, update, enable", () => {
    apply();
    fs.writeFileSync(box.file("calls.log"), "");
    const r = apply({ ...NODE, SECRET: NEW_SECRET });
    expect(r.status).toBe(0);
    expect(rakeCalls()).toEqual([`servers:cordon[bbb-5.example.org] servers:update[bbb-5.example.org,${NEW_SECRET}] servers:enable[bbb-5.example.org]`]);
    expect(server()).toMatchObject({ secret: NEW_SECRET, state: "enabled" });
    expect(`${r.stdout}${r.stderr}`).not.toContain(NEW_SECRET);
});

test("drain cordons the node and keeps it registered; undraining enables it", () => {
    apply();
    expect(apply({ ...NODE, DRAIN: "true" }).stdout).toContain("takes no new meetings");
    expect(server()?.state).toBe("cordoned");
    expect(apply({ ...NODE, DRAIN: "true" }).status).toBe(0);
    expect(server()?.state).toBe("cordoned");
    apply();
    expect(server()?.state).toBe("enabled");
});

test("a new node that is to be drained is added but never enabled", () => {
    expect(apply({ ...NODE, DRAIN: "true" }).status).toBe(0);
    expect(rakeCalls()).toEqual([`servers:add[${NODE.API_URL},${SECRET},1.0]`]);
    expect(server()?.state).toBe("disabled");
});

describe("removal", () => {
    test("an idle node is cordoned and removed", () => {
        apply();
        fs.writeFileSync(box.file("calls.log"), "");
        const r = remove();
        expect(r.status).toBe(0);
        expect(rakeCalls()).toEqual(["servers:cordon[bbb-5.example.org]", "servers:remove[bbb-5.example.org]"]);
        expect(server()).toBeUndefined();
    });

    test("a busy node is cordoned, not removed, and the step says how many meetings and what to do", () => {
        apply();
        hosting(3);
        const r = remove();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("scalelite-node: error: 3 meeting(s) still running on bbb-5.example.org. It is cordoned");
        expect(r.stderr).toContain("forceRemove: true");
        expect(server()?.state).toBe("cordoned");
    });

    test("with forceRemove, a busy node's meetings are ended (panic) and it is removed", () => {
        apply();
        hosting(2);
        box.write("root/etc/bbb-deploy/scalelite-force-remove", "true\n");
        fs.writeFileSync(box.file("calls.log"), "");
        const r = remove();
        expect(r.status).toBe(0);
        expect(rakeCalls()).toEqual(["servers:cordon[bbb-5.example.org]", "servers:panic[bbb-5.example.org] servers:remove[bbb-5.example.org]"]);
        expect(server()).toBeUndefined();
    });

    test("a node that no longer answers hosts no meeting: it is removed", () => {
        apply();
        hosting(1);
        const r = remove({ API_DOWN: "1" });
        expect(r.status).toBe(0);
        expect(server()).toBeUndefined();
    });

    test("a rolling-upgrade round: the new server runs beside the old one, which stays cordoned while busy and goes once idle", () => {
        const replacement = { ...NODE, NODE_ID: "bbb-5-r2.example.org", API_URL: "https://bbb-5-r2.example.org/bigbluebutton/api", SECRET: NEW_SECRET };
        apply();
        expect(apply(replacement).status).toBe(0);
        hosting(2);
        expect(remove().status).toBe(1);
        expect([server()?.state, server(replacement.NODE_ID)?.state]).toEqual(["cordoned", "enabled"]);
        // The next pulumi up, once the meetings have ended:
        hosting(0);
        expect(remove().status).toBe(0);
        expect([server(), server(replacement.NODE_ID)]).toEqual([undefined, { url: replacement.API_URL, secret: NEW_SECRET, state: "enabled" }]);
    });

    test("a node that is not registered is nothing to remove", () => {
        const r = remove();
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("not registered");
    });
});

test("a failing rake invocation fails the step, naming its tasks and the node, with the secret masked", () => {
    box.stub("docker", `case "$*" in *servers:add*) echo "rake aborted! secret ${SECRET} rejected" >&2; exit 1 ;; *) exit 0 ;; esac`);
    const r = apply();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("scalelite-node: error: Scalelite's rake servers:add servers:enable for bbb-5.example.org failed");
    expect(r.stderr).toContain("secret [secret] rejected");
    expect(r.stderr).not.toContain(SECRET);
});

describe("before a secret rotation (prepare)", () => {
    const prepare = (inputs = NODE) => box.run("scalelite-node", inputs, {}, ["prepare"]);

    test("a server about to get a new secret is cordoned, and registering it with that secret enables it again", () => {
        apply();
        fs.writeFileSync(box.file("calls.log"), "");
        expect(prepare({ ...NODE, SECRET: NEW_SECRET }).stdout).toContain("cordoned until it answers to its new secret");
        expect(server()).toMatchObject({ secret: SECRET, state: "cordoned" });
        expect(apply({ ...NODE, SECRET: NEW_SECRET }).status).toBe(0);
        expect(server()).toMatchObject({ secret: NEW_SECRET, state: "enabled" });
    });

    test("nothing to do when the secret stays, or the server is not registered yet", () => {
        apply();
        fs.writeFileSync(box.file("calls.log"), "");
        expect(prepare().status).toBe(0);
        expect(rakeCalls()).toEqual([]);
        box.remove("docker");
        installStubs(box);
        fs.rmSync(box.file("scalelite"), { recursive: true, force: true });
        expect(prepare({ ...NODE, SECRET: NEW_SECRET }).status).toBe(0);
        expect(server()).toBeUndefined();
    });
});
