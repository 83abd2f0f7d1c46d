// scripts/remote/bbb-api-name.sh, run for real against the stub certbot (test/stubs.ts) and a stub dig: the
// certificate bbb-install.sh made for a BBB server also names the stack's API name where the server answers it
// alone, and drops it again in a pool.
import * as fs from "fs";
import { Sandbox } from "./sandbox";
import { installStubs } from "./stubs";

const INPUTS = {
    FQDN: "bbb-1.example.org",
    API_FQDN: "bbb.example.org",
    EMAIL: "ops@example.org",
    IPV4: "203.0.113.12",
    IPV6: "2001:db8:1::2",
    RESOLVE_TIMEOUT_SECONDS: "5",
    POLL_SECONDS: "0",
};
const WEBROOT = "/var/www/bigbluebutton-default/assets/";

let box: Sandbox;
beforeEach(() => {
    box = new Sandbox();
    installStubs(box);
    // dig +short ... TYPE NAME @resolver answers from $SANDBOX/dns/<NAME>.<TYPE>.
    box.stub("dig", 'cat "$SANDBOX/dns/$5.$4" 2>/dev/null; true');
    box.write("dns/bbb.example.org.A", "203.0.113.12\n");
    box.write("dns/bbb.example.org.AAAA", "2001:db8:1::2\n");
    // What bbb-install.sh's install_ssl left: the lineage named after the host, for the host alone.
    lineage("bbb-1.example.org");
});
afterEach(() => box.cleanup());

function lineage(...names: string[]): void {
    box.write(`certbot/${names[0]}`, `${names.join(" ")}\n`);
    box.write(`root/etc/letsencrypt/live/${names[0]}/fullchain.pem`, "cert\n");
}
const run = (inputs: Partial<typeof INPUTS> = {}, env: Record<string, string> = {}) => box.run("bbb-api-name", { ...INPUTS, ...inputs }, env);
const names = () => fs.readFileSync(box.file("certbot/bbb-1.example.org"), "utf8").trim();
const issued = () => box.calls("certbot").filter((c) => c.startsWith("certbot certonly"));

test("single topology: once the API name points here, the server's certificate is renewed for both names through the webroot, nginx reloaded by certbot", () => {
    const r = run();
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(box.calls("dig")).toContain("dig +short +time=3 +tries=1 A bbb.example.org @resolver1.opendns.com");
    expect(issued()).toEqual([
        `certbot certonly --webroot -w ${WEBROOT} --cert-name bbb-1.example.org -d bbb-1.example.org -d bbb.example.org --non-interactive --agree-tos` +
            " -m ops@example.org --rsa-key-size 4096 --deploy-hook systemctl reload nginx",
    ]);
    expect(names()).toBe("bbb-1.example.org bbb.example.org");
    expect(r.stdout).toContain("bbb-api-name: the certificate of bbb-1.example.org names bbb-1.example.org, bbb.example.org");
});

test("nothing restarts BigBlueButton: meetings keep running", () => {
    box.write("meetings", "lecture-1\n");
    expect(run().status).toBe(0);
    expect(box.calls("bbb-conf")).toEqual([]);
    expect(box.calls("systemctl")).toEqual([]);
    expect(fs.readFileSync(box.file("meetings"), "utf8")).toBe("lecture-1\n");
    // ... and yet the certificate was renewed.
    expect(names()).toBe("bbb-1.example.org bbb.example.org");
});

test("a second run asks DNS nothing and renews nothing", () => {
    expect(run().status).toBe(0);
    fs.writeFileSync(box.file("calls.log"), "");
    const r = run({ RESOLVE_TIMEOUT_SECONDS: "0" });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("names bbb-1.example.org, bbb.example.org; nothing to do");
    expect([box.calls("dig"), issued()]).toEqual([[], []]);
});

test("in a pool (no API name) a certificate that still names it is renewed for the server alone, without waiting on DNS", () => {
    lineage("bbb-1.example.org", "bbb.example.org");
    box.write("dns/bbb.example.org.A", "198.51.100.7\n");
    const r = run({ API_FQDN: "" });
    expect(r.status).toBe(0);
    expect(box.calls("dig")).toEqual([]);
    expect(issued()).toEqual([expect.stringContaining("--cert-name bbb-1.example.org -d bbb-1.example.org --non-interactive")]);
    expect(names()).toBe("bbb-1.example.org");
});

test("a pool server that never had the name: nothing to do", () => {
    const r = run({ FQDN: "bbb-1.example.org", API_FQDN: "" });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("bbb-api-name: the certificate of bbb-1.example.org names bbb-1.example.org; nothing to do");
    expect(issued()).toEqual([]);
});

test("an API name that does not point here stops the step before certbot, with what it resolves to", () => {
    box.write("dns/bbb.example.org.A", "198.51.100.7\n");
    const r = run({ RESOLVE_TIMEOUT_SECONDS: "0" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("bbb-api-name: error: bbb.example.org does not resolve to this host through resolver1.opendns.com after 0s: A is '198.51.100.7' (expected '203.0.113.12')");
    expect(issued()).toEqual([]);
    expect(names()).toBe("bbb-1.example.org");
});

test("a failing certbot fails the step naming both names; the certificate stays as it was", () => {
    const r = run({}, { CERTBOT_FAIL: "1" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("bbb-api-name: error: certbot could not renew the certificate of bbb-1.example.org for bbb-1.example.org, bbb.example.org");
    // certbot's own report, on the step's output: which name the CA could not check, and why.
    expect(r.stdout).toContain("Certbot failed to authenticate some domains (authenticator: webroot).");
    expect(r.stdout).toContain("Some challenges have failed.");
    expect(names()).toBe("bbb-1.example.org");
});

test("no certificate from the installer: the step says so instead of making one", () => {
    fs.rmSync(box.file("certbot/bbb-1.example.org"));
    fs.rmSync(box.file("root/etc/letsencrypt/live/bbb-1.example.org"), { recursive: true });
    const r = run();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("bbb-api-name: error: no certificate for bbb-1.example.org in /etc/letsencrypt/live: bbb-install.sh makes it");
    expect(issued()).toEqual([]);
});

test("a live directory certbot has no lineage for (its renewal configuration gone): the step says where to look and asks for no certificate", () => {
    fs.rmSync(box.file("certbot/bbb-1.example.org"));
    const r = run();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("bbb-api-name: error: certbot reports no certificate named bbb-1.example.org (see: certbot certificates)");
    expect(box.calls("certbot")).toEqual(["certbot certificates --cert-name bbb-1.example.org"]);
    expect(box.calls("dig")).toEqual([]);
});
