// scripts/remote/turn-coturn.sh, run for real against stub apt-get, certbot, systemctl, chown and install.
import * as fs from "fs";
import { Sandbox } from "./sandbox";
import { installStubs } from "./stubs";

const SECRET = "0123456789abcdef".repeat(4);
const INPUTS = {
    FQDN: "turn.example.org",
    REALM: "example.org",
    EMAIL: "ops@example.org",
    SECRET,
    PRIVATE_IPV4: "10.0.0.2",
    PUBLIC_IPV4: "203.0.113.2",
    IPV6: "2001:db8:1::2",
    LISTENING_PORT: "3478",
    TLS_PORT: "443",
    RELAY_MIN: "32769",
    RELAY_MAX: "65535",
    ALLOWED_PEERS: "10.0.0.11 2001:db8:1::b 203.0.113.11",
    LOGGING: "file",
};

let box: Sandbox;
beforeEach(() => {
    box = new Sandbox();
    installStubs(box);
});
afterEach(() => box.cleanup());

const conf = () => fs.readFileSync(box.file("root/etc/turnserver.conf"), "utf8").split("\n");
const mode = (relative: string) => (fs.statSync(box.file(relative)).mode & 0o777).toString(8);

test("writes coturn's configuration: ports, addresses, relay range, shared secret, TLS, peers", () => {
    const r = box.run("turn-coturn", INPUTS);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const lines = conf();
    expect(lines).toEqual(
        expect.arrayContaining([
            "listening-port=3478",
            "tls-listening-port=443",
            "listening-ip=10.0.0.2",
            "relay-ip=10.0.0.2",
            "listening-ip=2001:db8:1::2",
            "relay-ip=2001:db8:1::2",
            "external-ip=203.0.113.2/10.0.0.2",
            "min-port=32769",
            "max-port=65535",
            "use-auth-secret",
            `static-auth-secret=${SECRET}`,
            "realm=example.org",
            `cert=${box.root}/etc/coturn/certs/fullchain.pem`,
            `pkey=${box.root}/etc/coturn/certs/privkey.pem`,
            "no-cli",
            "no-tlsv1",
            "no-tlsv1_1",
            "no-loopback-peers",
            "no-multicast-peers",
            "denied-peer-ip=10.0.0.0-10.255.255.255",
            "denied-peer-ip=172.16.0.0-172.31.255.255",
            "denied-peer-ip=192.168.0.0-192.168.255.255",
            "denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ]),
    );
    expect(lines.filter((l) => l.startsWith("allowed-peer-ip="))).toEqual([
        "allowed-peer-ip=10.0.0.11",
        "allowed-peer-ip=2001:db8:1::b",
        "allowed-peer-ip=203.0.113.11",
    ]);
    expect(lines.some((l) => l.startsWith("lt-cred-mech"))).toBe(false);
    expect(lines.some((l) => l.startsWith("verbose"))).toBe(false);
});

test("the secret is only in turnserver.conf, readable by root and the turnserver group", () => {
    const r = box.run("turn-coturn", INPUTS);
    expect(r.status).toBe(0);
    const holding = box.files().filter((f) => fs.readFileSync(box.file(`root/${f}`), "utf8").includes(SECRET));
    expect(holding).toEqual(["etc/turnserver.conf"]);
    expect(mode("root/etc/turnserver.conf")).toBe("640");
    expect(box.calls("chown")).toContainEqual(expect.stringMatching(/^chown root:turnserver .*\/etc\/turnserver\.conf\.\w+$/));
    expect(`${r.stdout}${r.stderr}`).not.toContain(SECRET);
});

test("on a provider network (public = private address) there is no external-ip, and no IPv6 without one", () => {
    expect(box.run("turn-coturn", { ...INPUTS, PUBLIC_IPV4: "10.0.0.2", IPV6: "" }).status).toBe(0);
    expect(conf().filter((l) => /^(external-ip|listening-ip|relay-ip)=/.test(l))).toEqual(["listening-ip=10.0.0.2", "relay-ip=10.0.0.2"]);
});

test("installs coturn and certbot, gets the certificate by HTTP-01 and hands it to coturn through the deploy hook", () => {
    expect(box.run("turn-coturn", INPUTS).status).toBe(0);
    expect(box.calls("apt-get")).toEqual(["apt-get install -y -q coturn certbot"]);
    expect(box.calls("certbot")).toEqual([
        "certbot certonly --standalone --non-interactive --agree-tos --keep-until-expiring -m ops@example.org -d turn.example.org",
    ]);
    expect(mode("root/etc/letsencrypt/renewal-hooks/deploy/coturn")).toBe("755");
    expect(fs.readFileSync(box.file("root/etc/coturn/certs/fullchain.pem"), "utf8")).toContain("BEGIN CERTIFICATE");
    expect(mode("root/etc/coturn/certs/privkey.pem")).toBe("600");
    expect(mode("root/etc/coturn/certs/fullchain.pem")).toBe("640");
});

test("the deploy hook reloads a running coturn with USR2 on renewal", () => {
    expect(box.run("turn-coturn", INPUTS).status).toBe(0);
    fs.writeFileSync(box.file("calls.log"), "");
    const hook = require("child_process").spawnSync(box.file("root/etc/letsencrypt/renewal-hooks/deploy/coturn"), [], {
        env: { PATH: box.bin, SANDBOX: box.dir, RENEWED_LINEAGE: box.file("root/etc/letsencrypt/live/turn.example.org") },
    });
    expect(hook.status).toBe(0);
    expect(box.calls("systemctl")).toEqual(["systemctl is-active --quiet coturn.service", "systemctl kill -s USR2 coturn.service"]);
});

test("port 443 as the turnserver user: the unit gets CAP_NET_BIND_SERVICE", () => {
    expect(box.run("turn-coturn", INPUTS).status).toBe(0);
    expect(fs.readFileSync(box.file("root/etc/systemd/system/coturn.service.d/override.conf"), "utf8")).toContain(
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
    );
    expect(box.calls("systemctl")).toEqual(expect.arrayContaining(["systemctl daemon-reload", "systemctl enable --quiet coturn.service", "systemctl restart coturn.service"]));
});

test("a second run with the same inputs changes nothing and does not restart coturn", () => {
    expect(box.run("turn-coturn", INPUTS).status).toBe(0);
    const before = fs.readFileSync(box.file("root/etc/turnserver.conf"), "utf8");
    fs.writeFileSync(box.file("calls.log"), "");
    const r = box.run("turn-coturn", INPUTS);
    expect(r.status).toBe(0);
    expect(fs.readFileSync(box.file("root/etc/turnserver.conf"), "utf8")).toBe(before);
    expect(box.calls("systemctl").filter((c) => /restart|daemon-reload/.test(c))).toEqual([]);
    expect(box.files().filter((f) => f.includes(".conf."))).toEqual([]);
});

test("a new BBB node changes the peers and restarts coturn", () => {
    expect(box.run("turn-coturn", INPUTS).status).toBe(0);
    fs.writeFileSync(box.file("calls.log"), "");
    expect(box.run("turn-coturn", { ...INPUTS, ALLOWED_PEERS: `${INPUTS.ALLOWED_PEERS} 203.0.113.12` }).status).toBe(0);
    expect(conf()).toContain("allowed-peer-ip=203.0.113.12");
    expect(box.calls("systemctl")).toContain("systemctl restart coturn.service");
});

test("during a rolling upgrade, the replaced servers' addresses stay allowed while their names resolve", () => {
    box.stub(
        "getent",
        `[ "$1" = ahosts ] || exit 2
case $2 in
  bbb-1.example.org) printf '203.0.113.11    STREAM bbb-1.example.org\n203.0.113.11    DGRAM\n2001:db8:1::b   STREAM\n' ;;
  *) exit 2 ;;
esac`,
    );
    const r = box.run("turn-coturn", { ...INPUTS, ALLOWED_PEERS: "203.0.113.81", DEPARTING_PEERS: "bbb-1.example.org bbb-2.example.org" });
    expect([r.status, r.stderr]).toEqual([0, ""]);
    expect(conf().filter((l) => l.startsWith("allowed-peer-ip="))).toEqual([
        "allowed-peer-ip=203.0.113.81",
        "allowed-peer-ip=2001:db8:1::b",
        "allowed-peer-ip=203.0.113.11",
    ]);
    expect(r.stdout).toContain("keeping 2 address(es) of servers being replaced");
    // Once the names are gone (the old servers removed), the next run drops them.
    box.stub("getent", "exit 2");
    expect(box.run("turn-coturn", { ...INPUTS, ALLOWED_PEERS: "203.0.113.81", DEPARTING_PEERS: "bbb-1.example.org" }).status).toBe(0);
    expect(conf().filter((l) => l.startsWith("allowed-peer-ip="))).toEqual(["allowed-peer-ip=203.0.113.81"]);
});

test("a failing certbot stops the step with a message naming certbot", () => {
    const r = box.run("turn-coturn", INPUTS, { CERTBOT_FAIL: "1" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("turn-coturn: error: certbot could not obtain a certificate for turn.example.org");
});

test("coturn failing to start stops the step and says where to look", () => {
    const r = box.run("turn-coturn", INPUTS, { SYSTEMCTL_FAIL: "restart" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("turn-coturn: error: coturn did not restart (see: journalctl -u coturn)");
});

test("a secret with a colon is refused: bbb-install.sh splits -c host:secret on it", () => {
    const r = box.run("turn-coturn", { ...INPUTS, SECRET: "abc:def0123456789abcdef0123456789" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("must be lower-case hex");
    expect(box.calls()).toEqual([]);
});

test("strict privacy: coturn logs nothing (no peer addresses on disk)", () => {
    expect(box.run("turn-coturn", { ...INPUTS, LOGGING: "none" }).status).toBe(0);
    expect(conf()).toContain("log-file=/dev/null");
    expect(conf().filter((l) => l.startsWith("log-file="))).toEqual(["log-file=/dev/null"]);
});

test("standard privacy: sessions are logged to a file rotated daily", () => {
    expect(box.run("turn-coturn", INPUTS).status).toBe(0);
    expect(conf()).toContain(`log-file=${box.root}/var/log/turnserver/turnserver.log`);
});
