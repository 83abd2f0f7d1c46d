// scripts/remote/scalelite-node.sh, run for real against a docker stub that emulates Scalelite's rake
// tasks and a curl stub that answers as the BBB node's API does.
import * as fs from "fs";
import * as path from "path";
import { Sandbox } from "./sandbox";
import { installStubs } from "./stubs";
import { secretsOnCommandLines, Trace } from "./trace";

const SECRET = "NodeSecret0123456789abcdefghijklmnopqrstu";
const NEW_SECRET = "RotatedSecret0123456789abcdefghijklmnopq";
const NODE = {
    NODE_ID: "bbb-5.example.org",
    API_URL: "https://bbb-5.example.org/bigbluebutton/api",
    SECRET,
    DRAIN: "false",
    CHANGE: "a".repeat(64),
    MAINTENANCE_WAIT_SECONDS: "0",
    INSTALL_ID: "1".repeat(64),
};

let box: Sandbox;
beforeEach(() => {
    box = new Sandbox();
    installStubs(box);
    // The node's own API (the curl stub checks checksums against this secret), and a running scalelite-api.
    box.write("root/etc/bigbluebutton/bbb-web.properties", `securitySalt=${SECRET}\n`);
    box.write("docker/scalelite-api/running", "true\n");
});
afterEach(() => box.cleanup());

const server = (id = NODE.NODE_ID) => {
    const dir = box.file(`scalelite/${id}`);
    if (!fs.existsSync(dir)) return undefined;
    const read = (f: string) => fs.readFileSync(`${dir}/${f}`, "utf8").trim();
    return { url: read("url"), secret: read("secret"), state: read("state") };
};
const rakeCalls = () =>
    box
        .calls("docker")
        .filter((c) => c.startsWith("docker exec") && !/ (bin\/rake (servers|status)|true)$/.test(c))
        .map((c) => c.replace(/^docker exec (-i )?scalelite-api bin\/rake /, (_, i) => (i ? "(stdin) " : "")));
const hosting = (meetings: number) => {
    box.write(`scalelite/${NODE.NODE_ID}/meetings`, `${meetings}\n`);
    box.write("meetings", Array.from({ length: meetings }, (_, i) => `m${i}\n`).join(""));
};
const apply = (inputs = NODE) => box.run("scalelite-node", inputs);
const remove = (env: Record<string, string> = {}) => box.run("scalelite-node", NODE, env, ["remove"]);

test("a new node is added with its API URL and secret (read from stdin, on no command line), then enabled", () => {
    const trace = new Trace();
    try {
        const r = box.run("scalelite-node", NODE, trace.env);
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        // One rake invocation (one Rails boot) for both tasks.
        expect(rakeCalls()).toEqual(["(stdin) servers:sync[-,keep] servers:enable[bbb-5.example.org]"]);
        expect(server()).toEqual({ url: NODE.API_URL, secret: SECRET, state: "enabled" });
        expect(fs.readFileSync(box.file(`scalelite/${NODE.NODE_ID}/load_multiplier`), "utf8")).toBe("1\n");
        expect(`${r.stdout}${r.stderr}`).not.toContain(SECRET);
        expect(secretsOnCommandLines(trace.execs(), [SECRET])).toEqual([]);
    } finally {
        trace.remove();
    }
});

test("running it again changes nothing", () => {
    apply();
    expect(server()?.state).toBe("enabled");
    fs.writeFileSync(box.file("calls.log"), "");
    const again = apply();
    expect(again.status).toBe(0);
    expect(again.stdout).toContain("bbb-5.example.org is registered and enabled");
    expect(rakeCalls()).toEqual([]);
});

test("a disabled node (e.g. panicked by the poller) is enabled again", () => {
    apply();
    fs.writeFileSync(box.file(`scalelite/${NODE.NODE_ID}/state`), "disabled\n");
    expect(apply().status).toBe(0);
    expect(server()?.state).toBe("enabled");
});

test("a new secret: cordon, update (on no command line), enable; its URL, load multiplier and tag are kept", () => {
    apply();
    // Set by hand meanwhile (rake servers:loadMultiplier, servers:tag), and another server Scalelite knows.
    box.write(`scalelite/${NODE.NODE_ID}/load_multiplier`, "2.5\n");
    box.write(`scalelite/${NODE.NODE_ID}/tag`, "it's-big\n");
    box.write(`scalelite/${NODE.NODE_ID}/url`, "https://bbb-5.example.org/bigbluebutton/api/\n");
    box.write("scalelite/other.example.org/url", "https://other.example.org/bigbluebutton/api\n");
    box.write("scalelite/other.example.org/secret", "OtherSecret\n");
    box.write("scalelite/other.example.org/state", "enabled\n");
    fs.writeFileSync(box.file("calls.log"), "");
    const trace = new Trace();
    try {
        const r = box.run("scalelite-node", { ...NODE, SECRET: NEW_SECRET }, trace.env);
        expect(r.status).toBe(0);
        expect(rakeCalls()).toEqual(["(stdin) servers:cordon[bbb-5.example.org] servers:sync[-,keep] servers:enable[bbb-5.example.org]"]);
        expect(server()).toEqual({ url: "https://bbb-5.example.org/bigbluebutton/api/", secret: NEW_SECRET, state: "enabled" });
        const read = (f: string) => fs.readFileSync(box.file(`scalelite/${f}`), "utf8");
        expect([read(`${NODE.NODE_ID}/load_multiplier`), read(`${NODE.NODE_ID}/tag`)]).toEqual(["2.5\n", "it's-big\n"]);
        expect([read("other.example.org/secret"), read("other.example.org/state")]).toEqual(["OtherSecret\n", "enabled\n"]);
        expect(`${r.stdout}${r.stderr}`).not.toContain(NEW_SECRET);
        expect(secretsOnCommandLines(trace.execs(), [NEW_SECRET, SECRET])).toEqual([]);
    } finally {
        trace.remove();
    }
});

test("servers:sync, as Scalelite v1.8.5 reads it: the stdin only with docker exec -i, what it refuses, enabled unless told otherwise", () => {
    const rake = (input: string | undefined, tasks: string) =>
        box.runCode(`out=$(docker exec ${input === undefined ? "" : "-i "}scalelite-api bin/rake ${tasks} 2>&1 <<<"$IN") || { echo "$out"; exit 1; }; echo "$out"`, {
            IN: input ?? "",
        });
    const noStdin = rake(undefined, "servers:sync[-,keep]");
    expect([noStdin.status, noStdin.stdout]).toEqual([1, "ERROR: Invalid YAML document\n"]);
    const zero = rake(`servers:\n  bbb-5.example.org:\n    secret: '${SECRET}'\n    load_multiplier: 0\n`, "servers:sync[-,keep]");
    expect([zero.status, zero.stdout]).toEqual([1, "ERROR: Server id=bbb-5.example.org has invalid load_multiplier=0\n"]);
    const mode = rake(`servers: {}\n`, "servers:sync[-,merge]");
    expect([mode.status, mode.stdout]).toEqual([1, "ERROR: Unknown sync mode 'merge' (choose: keep cordon force)\n"]);
    expect(server()).toBeUndefined();
    // Without `enabled: false`, sync enables the server (its default).
    expect(rake(`servers:\n  bbb-5.example.org:\n    secret: '${SECRET}'\n`, "servers:sync[-,keep]").status).toBe(0);
    expect(server()).toEqual({ url: NODE.API_URL, secret: SECRET, state: "enabled" });
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
    expect(rakeCalls()).toEqual(["(stdin) servers:sync[-,keep]"]);
    expect(server()?.state).toBe("disabled");
});

test("a secret that is not one word of printable characters is refused before Scalelite is asked", () => {
    const r = apply({ ...NODE, SECRET: "two words" });
    expect([r.status, r.stderr]).toEqual([1, "scalelite-node: error: the secret of bbb-5.example.org must be printable characters without spaces\n"]);
    expect(box.calls("docker")).toEqual([]);
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

    test("a node that does not answer is not taken for an idle one: it stays, cordoned, unless forceRemove", () => {
        apply();
        hosting(1);
        const r = remove({ API_DOWN: "1" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("cannot tell whether meetings run on bbb-5.example.org: it does not answer");
        expect(r.stderr).toContain("if it is gone for good, set forceRemove: true");
        expect(server()?.state).toBe("cordoned");
        box.write("root/etc/bbb-deploy/scalelite-force-remove", "true\n");
        expect(remove({ API_DOWN: "1" }).status).toBe(0);
        expect(server()).toBeUndefined();
    });

    test("a node that refuses its secret (checksum error) is not taken for an idle one either", () => {
        apply();
        box.write("root/etc/bigbluebutton/bbb-web.properties", `securitySalt=${NEW_SECRET}\n`);
        expect(remove().status).toBe(1);
        expect(server()?.state).toBe("cordoned");
    });

    test("Scalelite's view counts too: meetings it saw there keep the node, though its API lists none", () => {
        apply();
        box.write(`scalelite/${NODE.NODE_ID}/meetings`, "2\n");
        const r = remove();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("2 meeting(s) still running on bbb-5.example.org");
    });

    test("the delete of a replaced registration step (pulumi up --replace) leaves the server registered", () => {
        apply();
        const create = box.run("scalelite-node", NODE, {}, ["create"]);
        expect(create.stdout).toContain("this step replaces an earlier one");
        fs.writeFileSync(box.file("calls.log"), "");
        const r = remove();
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("this registration step was replaced (pulumi up --replace): bbb-5.example.org stays registered");
        expect(server()?.state).toBe("enabled");
        expect(rakeCalls()).toEqual([]);
        // That note is used once: the server leaving the pool later is removed.
        expect(remove().status).toBe(0);
        expect(server()).toBeUndefined();
    });

    test("a create that failed leaves no note: a later removal removes the server", () => {
        apply();
        const failing = box.run("scalelite-node", NODE, { DOCKER_FAIL: "exec" }, ["create"]);
        expect(failing.status).toBe(1);
        expect(remove().status).toBe(0);
        expect(server()).toBeUndefined();
    });

    test("creating the step for a new server leaves no such note", () => {
        expect(box.run("scalelite-node", NODE, {}, ["create"]).status).toBe(0);
        expect(server()?.state).toBe("enabled");
        expect(remove().stdout).toContain("bbb-5.example.org removed from Scalelite");
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
    box.stub("docker", `case "$*" in *servers:sync*) echo "rake aborted! secret ${SECRET} rejected" >&2; exit 1 ;; *) exit 0 ;; esac`);
    const r = apply();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("scalelite-node: error: Scalelite's rake servers:sync servers:enable for bbb-5.example.org failed");
    expect(r.stderr).toContain("secret [secret] rejected");
    expect(r.stderr).not.toContain(SECRET);
});

describe("maintenance: one server out of service at a time", () => {
    const maintenance = (inputs = NODE, env: Record<string, string> = {}) => box.run("scalelite-node", inputs, env, ["maintenance"]);
    const other = { ...NODE, NODE_ID: "bbb-6.example.org", API_URL: "https://bbb-6.example.org/bigbluebutton/api" };
    const changed = (node = NODE) => ({ ...node, CHANGE: "b".repeat(64) });

    test("a server about to restart for a change is cordoned; registering it after the change enables it again", () => {
        apply();
        fs.writeFileSync(box.file("calls.log"), "");
        const r = maintenance(changed());
        expect(r.stdout).toContain("bbb-5.example.org is the one server out of service");
        expect(server()).toMatchObject({ state: "cordoned" });
        expect(apply(changed()).status).toBe(0);
        expect(server()).toMatchObject({ state: "enabled" });
        fs.writeFileSync(box.file("calls.log"), "");
        expect(maintenance(changed()).status).toBe(0);
        expect(box.calls("docker")).toEqual([]);
    });

    test("a second server waits for the first; while the first still hosts meetings it gives up at once and keeps its own", () => {
        apply();
        apply(other);
        expect(maintenance(changed()).status).toBe(0);
        box.write(`scalelite/${NODE.NODE_ID}/meetings`, "3\n");
        const r = maintenance(changed(other));
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("one server at a time: bbb-5.example.org is out of service for its change first and still hosts 3 meeting(s)");
        expect([server()?.state, server(other.NODE_ID)?.state]).toEqual(["cordoned", "enabled"]);
    });

    test("it waits while the first restarts, and goes once that one is done", () => {
        apply();
        apply(other);
        expect(maintenance(changed()).status).toBe(0);
        expect(maintenance(changed(other)).stderr).toContain("waited 0s for bbb-5.example.org");
        expect(server(other.NODE_ID)?.state).toBe("enabled");
        expect(apply(changed()).status).toBe(0);
        expect(maintenance(changed(other)).status).toBe(0);
        expect([server()?.state, server(other.NODE_ID)?.state]).toEqual(["enabled", "cordoned"]);
    });

    test("a change taken back while the server waited for it enables it again and frees the slot", () => {
        apply();
        apply(other);
        expect(maintenance(changed()).status).toBe(0);
        expect(maintenance(NODE).stdout).toContain("nothing to apply any more: enabled again");
        expect(server()?.state).toBe("enabled");
        expect(maintenance(changed(other)).status).toBe(0);
    });

    test("a slot held by a server no longer in Scalelite is freed; removing a server frees its slot", () => {
        apply();
        apply(other);
        expect(maintenance(changed()).status).toBe(0);
        expect(remove().status).toBe(0);
        expect(maintenance(changed(other)).status).toBe(0);
        box.write("root/var/lib/bbb-deploy/scalelite-nodes/maintenance-slot", "bbb-9.example.org\n");
        expect(apply(other).status).toBe(0);
        const r = maintenance(changed(other));
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("bbb-9.example.org held the maintenance slot but is no longer registered in Scalelite: freed it");
    });

    test("a removal takes its turn too: while another server is out of service, the leaving one stays registered and in service", () => {
        apply();
        apply(other);
        expect(maintenance(changed()).status).toBe(0);
        const r = box.run("scalelite-node", other, {}, ["remove"]);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("waited 0s for bbb-5.example.org");
        expect([server()?.state, server(other.NODE_ID)?.state]).toEqual(["cordoned", "enabled"]);
    });

    test("freeing a departed holder's slot never frees the slot another server took meanwhile", () => {
        apply();
        apply(other);
        const slot = "root/var/lib/bbb-deploy/scalelite-nodes/maintenance-slot";
        box.write(slot, "bbb-9.example.org\n");
        // While bbb-5 asks Scalelite whether bbb-9 is still registered (a Rails boot: seconds), bbb-6 frees
        // bbb-9's slot, takes it and cordons itself. (The first such call is bbb-5's look at its own registration;
        // this wrapper and the stub it runs each log a call.)
        fs.writeFileSync(box.file("calls.log"), "");
        fs.renameSync(path.join(box.bin, "docker"), path.join(box.bin, "docker.stub"));
        box.stub(
            "docker",
            `if [ "$*" = "exec scalelite-api bin/rake servers" ] && [ "$(grep -c 'bin/rake servers$' "$SANDBOX/calls.log")" = 3 ]; then
  echo bbb-6.example.org > "$ROOT/var/lib/bbb-deploy/scalelite-nodes/maintenance-slot"
  echo cordoned > "$SANDBOX/scalelite/bbb-6.example.org/state"
fi
exec "$SANDBOX/bin/docker.stub" "$@"`,
        );
        const r = maintenance(changed());
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("waited 0s for bbb-6.example.org");
        expect(fs.readFileSync(box.file(slot), "utf8")).toBe("bbb-6.example.org\n");
        expect([server()?.state, server(other.NODE_ID)?.state]).toEqual(["enabled", "cordoned"]);
    });

    test("a holder missing from an old view of Scalelite (cached a minute) is not taken for a removed one", () => {
        apply();
        // The view was cached before bbb-6 was registered; bbb-6 then took the slot.
        maintenance(changed());
        apply(changed());
        box.write("root/var/lib/bbb-deploy/scalelite-nodes/status", "\n HOSTNAME  STATE  STATUS  MEETINGS\n bbb-5.example.org  enabled  online  0\n");
        apply(other);
        expect(maintenance(changed(other)).status).toBe(0);
        const r = maintenance({ ...changed(), CHANGE: "c".repeat(64) });
        expect(r.status).toBe(1);
        expect(r.stdout).not.toContain("freed it");
        expect([server()?.state, server(other.NODE_ID)?.state]).toEqual(["enabled", "cordoned"]);
    });

    test("an empty slot file (a write that failed) holds nothing; a slot held too long gives up, saying how to free it", () => {
        apply();
        apply(other);
        box.write("root/var/lib/bbb-deploy/scalelite-nodes/maintenance-slot", "");
        expect(maintenance(changed()).status).toBe(0);
        expect(server()?.state).toBe("cordoned");
        const r = maintenance(changed(other), { MAINTENANCE_STALL_SECONDS: "0" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-5.example.org has been out of service for its change for");
        expect(r.stderr).toContain("rm /var/lib/bbb-deploy/scalelite-nodes/maintenance-slot");
    });

    test("servers registered before fingerprints were recorded: only a new secret takes them out", () => {
        apply();
        fs.rmSync(box.file("root/var/lib/bbb-deploy/scalelite-nodes/bbb-5.example.org.applied"));
        expect(maintenance(changed()).status).toBe(0);
        expect(server()?.state).toBe("enabled");
        expect(maintenance({ ...changed(), SECRET: NEW_SECRET }).status).toBe(0);
        expect(server()?.state).toBe("cordoned");
    });

    test("nothing to do for a server not registered yet, a drained one, or while Scalelite does not run", () => {
        expect(maintenance(changed()).status).toBe(0);
        expect(server()).toBeUndefined();
        apply({ ...NODE, DRAIN: "true" });
        expect(maintenance({ ...changed(), DRAIN: "true" }).stdout).toContain("drained");
        // A new Scalelite host, before its setup ran: no container, nothing recorded.
        fs.rmSync(box.file("docker/scalelite-api"), { recursive: true });
        expect(maintenance({ ...changed(), NODE_ID: "bbb-7.example.org" }).stdout).toContain("Scalelite does not run yet");
    });

    test("a Scalelite that stopped answering (its containers being replaced) is waited for, not taken for none", () => {
        apply();
        box.write("docker/scalelite-api/running", "false\n");
        const r = maintenance(changed());
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("Scalelite's api container does not answer: bbb-5.example.org cannot be taken out of service first");
    });
});

describe("retire: before a server's VM is deleted or replaced", () => {
    // What the retire step gets: the server's id and how long to wait, nothing more.
    const inputs = (node = NODE, vm = "vm-1") => ({ NODE_ID: node.NODE_ID, INSTANCE_ID: vm, MAINTENANCE_WAIT_SECONDS: node.MAINTENANCE_WAIT_SECONDS });
    const retire = (node = NODE) => box.run("scalelite-node", inputs(node), {}, ["retire"]);
    const guard = (vm: string, node = NODE) => box.run("scalelite-node", inputs(node, vm), {}, ["guard"]);
    const other = { ...NODE, NODE_ID: "bbb-6.example.org", API_URL: "https://bbb-6.example.org/bigbluebutton/api" };
    const SLOT = "root/var/lib/bbb-deploy/scalelite-nodes/maintenance-slot";

    test("guard (create and update) does nothing when no retire came before", () => {
        apply();
        expect(server()?.state).toBe("enabled");
        fs.writeFileSync(box.file("calls.log"), "");
        expect(guard("vm-1").status).toBe(0);
        expect(box.calls("docker")).toEqual([]);
    });

    test("the server is taken out of service, one at a time; registering its new VM enables it and gives the slot back", () => {
        apply();
        apply(other);
        const r = retire();
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("bbb-5.example.org is out of service: cordoned while its VM is deleted or replaced");
        expect(server()?.state).toBe("cordoned");
        // A second VM in the same pulumi up (a new port for every server) waits for the first.
        const second = retire(other);
        expect(second.status).toBe(1);
        expect(second.stderr).toContain("waited 0s for bbb-5.example.org");
        expect(server(other.NODE_ID)?.state).toBe("enabled");
        expect(apply({ ...NODE, INSTANCE_ID: "vm-2" } as typeof NODE).status).toBe(0);
        expect([server()?.state, fs.existsSync(box.file(SLOT))]).toEqual(["enabled", false]);
        expect(retire(other).status).toBe(0);
    });

    test("while the server out of service still hosts meetings, the next one keeps its own and its VM waits", () => {
        apply();
        apply(other);
        expect(retire().status).toBe(0);
        hosting(2);
        const r = retire(other);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("bbb-5.example.org is out of service for its change first and still hosts 2 meeting(s)");
        expect(server(other.NODE_ID)?.state).toBe("enabled");
    });

    test("a replacement refused after the server was taken out of service: the next pulumi up, the same VM still there, puts it back", () => {
        apply();
        apply(other);
        expect(retire().status).toBe(0);
        // The VM's meetings check refused; the retire step is created again (guard) with the same VM.
        const r = guard("vm-1");
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("bbb-5.example.org keeps its VM: back in service");
        expect([server()?.state, fs.existsSync(box.file(SLOT))]).toEqual(["enabled", false]);
        expect(retire(other).status).toBe(0);
    });

    test("once the VM was replaced, guard leaves the server to its registration, which enables it after the install", () => {
        apply();
        expect(retire().status).toBe(0);
        expect(guard("vm-2").status).toBe(0);
        expect([server()?.state, fs.readFileSync(box.file(SLOT), "utf8")]).toEqual(["cordoned", "bbb-5.example.org\n"]);
        expect(guard("vm-2").stdout).toBe("");
    });

    test("a server that takes no meeting (added drained) takes no turn, and stays out of service when its VM stays", () => {
        apply({ ...NODE, DRAIN: "true" });
        apply(other);
        expect(retire(other).status).toBe(0);
        expect(retire().status).toBe(0);
        expect(guard("vm-1").status).toBe(0);
        expect(server()?.state).toBe("disabled");
        expect(fs.readFileSync(box.file(SLOT), "utf8")).toBe("bbb-6.example.org\n");
    });

    test("a server Scalelite does not know is not its business", () => {
        const r = retire(other);
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("bbb-6.example.org is not registered: Scalelite sends it nothing");
    });
});

test("a server whose VM is protected (the prod stack) is not removed: Pulumi would refuse to delete its VM afterwards", () => {
    apply();
    const r = box.run("scalelite-node", { ...NODE, PROTECTED: "true" } as typeof NODE, {}, ["remove"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("bbb-5.example.org leaves the pool, but its VM is protected (the prod stack): nothing was changed.");
    expect(r.stderr).toContain("pulumi config set allowDestructiveChanges true");
    expect(server()?.state).toBe("enabled");
    expect(box.run("scalelite-node", { ...NODE, PROTECTED: "false" } as typeof NODE, {}, ["remove"]).status).toBe(0);
    expect(server()).toBeUndefined();
});

test("an action the step does not know (a command line from another version of the program) is refused; Scalelite is not changed", () => {
    apply();
    fs.writeFileSync(box.callLog, "");
    const r = box.run("scalelite-node", NODE, {}, ["drain"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("scalelite-node: error: unknown action drain (apply, create, maintenance, remove, guard or retire)");
    expect(rakeCalls()).toEqual([]);
    expect(server()?.state).toBe("enabled");
});
