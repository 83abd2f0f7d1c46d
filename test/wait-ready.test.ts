// scripts/remote/wait-ready.sh, run for real against stub cloud-init, dig and apt-get.
import { Sandbox } from "./sandbox";

const INPUTS = { FQDN: "bbb-1.example.org", IPV4: "203.0.113.12", IPV6: "2001:db8:1::2", TIMEOUT_SECONDS: "5", POLL_SECONDS: "0" };

let box: Sandbox;

/** dig answers from $SANDBOX/dns/<type>; a numbered $SANDBOX/dns/<type>.<n> wins for the n-th query. */
const DIG = `
type=$4; n=$(( $(grep -c "^dig .* $type " "$SANDBOX/calls.log") ))
if [ -f "$SANDBOX/dns/$type.$n" ]; then cat "$SANDBOX/dns/$type.$n"; elif [ -f "$SANDBOX/dns/$type" ]; then cat "$SANDBOX/dns/$type"; fi`;

beforeEach(() => {
    box = new Sandbox();
    box.stub("cloud-init", 'exit "${CLOUD_INIT_RC:-0}"');
    box.stub("dig", DIG);
    box.stub("apt-get", "exit 1");
    box.write("dns/A", "203.0.113.12\n");
    box.write("dns/AAAA", "2001:db8:1::2\n");
});
afterEach(() => box.cleanup());

test("ready when cloud-init is done and the name resolves to exactly this host through OpenDNS", () => {
    const r = box.run("wait-ready", INPUTS);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("bbb-1.example.org resolves to 203.0.113.12 and 2001:db8:1::2; ready");
    expect(box.calls("cloud-init")).toEqual(["cloud-init status --wait"]);
    expect(box.calls("dig")).toEqual([
        "dig +short +time=3 +tries=1 A bbb-1.example.org @resolver1.opendns.com",
        "dig +short +time=3 +tries=1 AAAA bbb-1.example.org @resolver1.opendns.com",
    ]);
});

test("keeps asking until the records have propagated", () => {
    box.write("dns/A.1", "");
    box.write("dns/A.2", "198.51.100.99\n");
    const r = box.run("wait-ready", INPUTS);
    expect(r.status).toBe(0);
    expect(box.calls("dig").filter((c) => c.includes(" A "))).toHaveLength(3);
});

test("a CNAME in the answer is followed, not compared", () => {
    box.write("dns/A", "lb.example.net.\n203.0.113.12\n");
    const r = box.run("wait-ready", INPUTS);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("bbb-1.example.org resolves to 203.0.113.12 and 2001:db8:1::2; ready");
});

test("gives up at the time limit with what it saw, what it expected and what to do", () => {
    box.write("dns/A", "198.51.100.99\n");
    const r = box.run("wait-ready", { ...INPUTS, TIMEOUT_SECONDS: "0" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("wait-ready: error: bbb-1.example.org does not resolve to this host through resolver1.opendns.com after 0s");
    expect(r.stderr).toContain("A is '198.51.100.99' (expected '203.0.113.12')");
    expect(r.stderr).toContain("dnsRecords");
});

test("a stale AAAA record on a host without IPv6 is an error, not ignored", () => {
    const r = box.run("wait-ready", { ...INPUTS, IPV6: "", TIMEOUT_SECONDS: "0" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("AAAA is '2001:db8:1::2' (expected '')");
});

test("an extra A record (a second address) is an error", () => {
    box.write("dns/A", "203.0.113.12\n203.0.113.99\n");
    const r = box.run("wait-ready", { ...INPUTS, TIMEOUT_SECONDS: "0" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("A is '203.0.113.12 203.0.113.99'");
});

test("cloud-init failing stops the step with a message naming cloud-init", () => {
    const r = box.run("wait-ready", INPUTS, { CLOUD_INIT_RC: "1" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("wait-ready: error: cloud-init failed with exit code 1");
    expect(box.calls("dig")).toEqual([]);
});

test("cloud-init's recoverable errors are a warning", () => {
    const r = box.run("wait-ready", INPUTS, { CLOUD_INIT_RC: "2" });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("warning: cloud-init finished with recoverable errors");
});

test("cloud-init that never finishes is cut off at the time limit", () => {
    box.stub("cloud-init", "sleep 5");
    const r = box.run("wait-ready", { ...INPUTS, TIMEOUT_SECONDS: "1" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("cloud-init did not finish within 1s");
});

test("installs dig when the image lacks it", () => {
    box.remove("dig");
    box.stub("apt-get", `cat > "$SANDBOX/bin/dig" <<'EOF'\n#!/bin/bash\nprintf '%s\\n' "dig $*" >> "$SANDBOX/calls.log"\ncat "$SANDBOX/dns/$4"\nEOF\nchmod +x "$SANDBOX/bin/dig"`);
    const r = box.run("wait-ready", INPUTS);
    expect(r.status).toBe(0);
    expect(box.calls("apt-get")).toEqual(["apt-get install -y -q bind9-dnsutils"]);
});

test("running it twice is harmless", () => {
    for (let i = 0; i < 2; i++) {
        const r = box.run("wait-ready", INPUTS);
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("; ready");
    }
    expect(box.calls("cloud-init")).toHaveLength(2);
});

test("a missing input is refused before anything runs", () => {
    const { IPV4: _ignored, ...rest } = INPUTS;
    const r = box.run("wait-ready", rest);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("IPV4");
    expect(box.calls()).toEqual([]);
});

test("a host without a DNS name (a bake's builder, FQDN empty) waits for cloud-init only", () => {
    const r = box.run("wait-ready", { ...INPUTS, FQDN: "" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("cloud-init is done; ready (no DNS name to wait for)");
    expect(box.calls("cloud-init")).toEqual(["cloud-init status --wait"]);
    expect(box.calls("dig")).toEqual([]);
});

test("a host without a DNS name still fails when cloud-init does", () => {
    const r = box.run("wait-ready", { ...INPUTS, FQDN: "" }, { CLOUD_INIT_RC: "1" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("cloud-init failed with exit code 1");
});
