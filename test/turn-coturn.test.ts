// scripts/remote/turn-coturn.sh, run for real against stub apt-get, certbot, systemctl, chown, install and getent.
import * as fs from "fs";
import { Sandbox } from "./sandbox";
import { getentStub, installStubs } from "./stubs";

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
    PEERS: "bbb-1.example.org 2001:db8:1::b 203.0.113.11",
    LOGGING: "file",
};
const BBB_1 = "bbb-1.example.org 2001:db8:1::b 203.0.113.11";
const BBB_2 = "bbb-2.example.org 2001:db8:1::c 203.0.113.12";

let box: Sandbox;
beforeEach(() => {
    box = new Sandbox();
    installStubs(box);
    box.stub("getent", getentStub("$SANDBOX/dns"));
});
afterEach(() => box.cleanup());

const conf = () => fs.readFileSync(box.file("root/etc/turnserver.conf"), "utf8").split("\n");
const mode = (relative: string) => (fs.statSync(box.file(relative)).mode & 0o777).toString(8);
const allowed = () => conf().filter((l) => l.startsWith("allowed-peer-ip=")).map((l) => l.slice("allowed-peer-ip=".length));
/** What the TURN host remembers: the servers coturn relays to, `name address...` a line. */
const remembered = () =>
    fs.readFileSync(box.file("root/var/lib/bbb-deploy/turn-peers"), "utf8").split("\n").filter((l) => l && !l.startsWith("#"));
/** The public DNS as the TURN host sees it: public addresses only (A and AAAA), `name address...` a line. */
const dns = (...lines: string[]) => box.write("dns", lines.map((l) => `${l}\n`).join(""));
const restarts = () => box.calls("systemctl").filter((c) => c === "systemctl restart coturn.service");
const clearCalls = () => fs.writeFileSync(box.file("calls.log"), "");

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
    clearCalls();
    expect(box.run("turn-coturn", { ...INPUTS, PEERS: `${BBB_1}\n${BBB_2}` }).status).toBe(0);
    expect(allowed()).toEqual(["2001:db8:1::b", "2001:db8:1::c", "203.0.113.11", "203.0.113.12"]);
    expect(restarts()).toHaveLength(1);
    expect(remembered()).toEqual([BBB_1, BBB_2]);
});

test("PEERS that are not `name address...` lines are refused before anything is touched", () => {
    for (const PEERS of ["bbb-1.example.org", "bbb-1.example.org 203.0.113.11;reboot", "-x 203.0.113.11", "\n"]) {
        const r = box.run("turn-coturn", { ...INPUTS, PEERS });
        expect([PEERS, r.status, r.stderr]).toEqual([PEERS, 1, expect.stringMatching(/^turn-coturn: error: PEERS/)]);
    }
    expect(box.calls()).toEqual([]);
});

describe("a server leaving the pool (scale-down, or the old server of an upgrade round)", () => {
    const twoServers = { ...INPUTS, PEERS: `${BBB_1}\n${BBB_2}` };
    beforeEach(() => {
        dns("bbb-1.example.org 2001:db8:1::b 203.0.113.11", "bbb-2.example.org 2001:db8:1::c 203.0.113.12");
        expect(box.run("turn-coturn", twoServers).status).toBe(0);
        clearCalls();
    });

    test("stays allowed while its name resolves to it (its removal from Scalelite has not happened yet), without a coturn restart", () => {
        const before = fs.readFileSync(box.file("root/etc/turnserver.conf"), "utf8");
        const r = box.run("turn-coturn", INPUTS);
        expect([r.status, r.stderr]).toEqual([0, ""]);
        expect(r.stdout).toContain("keeping bbb-2.example.org (left the pool): its name still resolves to it");
        expect(fs.readFileSync(box.file("root/etc/turnserver.conf"), "utf8")).toBe(before);
        expect(remembered()).toEqual([BBB_1, BBB_2]);
        expect(box.calls("systemctl").filter((c) => /restart|daemon-reload/.test(c))).toEqual([]);
        // The removal refused (meetings running): the server stays, and so do its addresses, run after run.
        expect(box.run("turn-coturn", INPUTS).stdout).toContain("keeping bbb-2.example.org");
        expect(allowed()).toContain("203.0.113.12");
    });

    test("is dropped and forgotten once its name no longer resolves (removed from Scalelite, then its DNS records deleted)", () => {
        expect(box.run("turn-coturn", INPUTS).status).toBe(0);
        dns("bbb-1.example.org 2001:db8:1::b 203.0.113.11");
        clearCalls();
        const r = box.run("turn-coturn", INPUTS);
        expect([r.status, r.stderr]).toEqual([0, ""]);
        expect(r.stdout).toContain("dropping bbb-2.example.org (left the pool): its name no longer resolves");
        expect(allowed()).toEqual(["2001:db8:1::b", "203.0.113.11"]);
        expect(restarts()).toHaveLength(1);
        expect(remembered()).toEqual([BBB_1]);
        // Forgotten: the name coming back later (another server) does not bring the old addresses back.
        dns("bbb-1.example.org 2001:db8:1::b 203.0.113.11", "bbb-2.example.org 2001:db8:1::c 203.0.113.12");
        const again = box.run("turn-coturn", INPUTS);
        expect(again.stdout).not.toContain("bbb-2.example.org");
        expect(allowed()).toEqual(["2001:db8:1::b", "203.0.113.11"]);
    });

    test("is dropped when its name now resolves to other addresses, even beside its own", () => {
        for (const elsewhere of ["bbb-2.example.org 203.0.113.99", "bbb-2.example.org 2001:db8:1::c 203.0.113.99"]) {
            expect(box.run("turn-coturn", twoServers).status).toBe(0);
            dns("bbb-1.example.org 2001:db8:1::b 203.0.113.11", elsewhere);
            const r = box.run("turn-coturn", INPUTS);
            expect([r.status, r.stderr]).toEqual([0, ""]);
            expect(r.stdout).toContain("dropping bbb-2.example.org (left the pool): its name now resolves to other addresses (");
            expect(r.stdout).toContain("203.0.113.99");
            expect(allowed()).toEqual(["2001:db8:1::b", "203.0.113.11"]);
            expect(remembered()).toEqual([BBB_1]);
        }
    });

    test("is kept when the TURN host cannot tell (no name resolves at all: the resolver is down)", () => {
        const r = box.run("turn-coturn", INPUTS, { DNS_DOWN: "1" });
        expect([r.status, r.stderr]).toEqual([0, ""]);
        expect(r.stdout).toContain("keeping bbb-2.example.org (left the pool): cannot tell whether its name still resolves");
        expect(allowed()).toContain("203.0.113.12");
        expect(remembered()).toEqual([BBB_1, BBB_2]);
    });

    test("an upgrade round: the new server joins (one restart), the old one stays while its name resolves, then goes", () => {
        const BBB_2_R2 = "bbb-2-r2.example.org 203.0.113.82";
        const round = { ...INPUTS, PEERS: `${BBB_1}\n${BBB_2_R2}` };
        dns("bbb-1.example.org 203.0.113.11", "bbb-2.example.org 203.0.113.12", "bbb-2-r2.example.org 203.0.113.82");
        const r = box.run("turn-coturn", round);
        expect([r.status, r.stderr]).toEqual([0, ""]);
        expect(r.stdout).toContain("keeping bbb-2.example.org");
        expect(allowed()).toEqual(expect.arrayContaining(["203.0.113.12", "203.0.113.82"]));
        expect(restarts()).toHaveLength(1);
        expect(remembered()).toEqual([BBB_1, BBB_2_R2, BBB_2].sort());
        dns("bbb-1.example.org 203.0.113.11", "bbb-2-r2.example.org 203.0.113.82");
        expect(box.run("turn-coturn", round).stdout).toContain("dropping bbb-2.example.org");
        expect(allowed()).toEqual(["2001:db8:1::b", "203.0.113.11", "203.0.113.82"]);
    });
});

describe("addresses coturn must never relay to", () => {
    /** Every address of `line` is special, in a range of its own. */
    const SPECIAL = {
        "127.0.0.1": "loopback (127.0.0.0/8)",
        "169.254.169.254": "link-local, where the cloud's metadata service is (169.254.0.0/16)",
        "10.0.0.5": "private (10.0.0.0/8)",
        "::1": "loopback (::1)",
        "172.20.1.1": "private (172.16.0.0/12)",
        "192.168.1.10": "private (192.168.0.0/16)",
        "100.64.0.1": "shared address space of carrier-grade NAT (100.64.0.0/10)",
        "0.0.0.0": "this network (0.0.0.0/8)",
        "224.0.0.251": "multicast (224.0.0.0/4)",
        "255.255.255.255": "reserved, or broadcast (240.0.0.0/4)",
        "::": "the unspecified address (::)",
        "fe80::1": "link-local (fe80::/10)",
        "fd00:ec2::254": "unique local, private (fc00::/7)",
        "ff02::1": "multicast (ff00::/8)",
        "::ffff:10.0.0.1": "IPv4-mapped (::ffff:0:0/96)",
        "64:ff9b::a00:1": "NAT64, a way to IPv4 addresses (64:ff9b::/96)",
        "2002:a00:1::": "6to4, a way to IPv4 addresses (2002::/16)",
    };

    test("a server's loopback, link-local, private, multicast, ... addresses are not allowed, saying which and why; its public ones are", () => {
        const PEERS = `bbb-1.example.org ${Object.keys(SPECIAL).join(" ")} 203.0.113.11 2001:db8:1::b\n${BBB_2}`;
        const r = box.run("turn-coturn", { ...INPUTS, PEERS });
        expect([r.status, r.stderr]).toEqual([0, ""]);
        expect(allowed()).toEqual(["2001:db8:1::b", "2001:db8:1::c", "203.0.113.11", "203.0.113.12"]);
        for (const [address, why] of Object.entries(SPECIAL)) expect(r.stdout).toContain(`turn-coturn: not relaying to ${address} (bbb-1.example.org): ${why}\n`);
        expect(r.stdout.match(/not relaying to/g)).toHaveLength(Object.keys(SPECIAL).length);
        expect(remembered()).toEqual(["bbb-1.example.org 2001:db8:1::b 203.0.113.11", BBB_2]);
    });

    test("a departing server whose name resolves to loopback, link-local or private addresses it was given before gets none of them", () => {
        // An earlier version of this step allowed what PEERS said; the name now resolves to those addresses.
        dns(BBB_1, "bbb-2.example.org 127.0.0.1 169.254.169.254 10.0.0.5 ::1 203.0.113.12");
        box.write("root/var/lib/bbb-deploy/turn-peers", `${BBB_1}\nbbb-2.example.org 10.0.0.5 127.0.0.1 169.254.169.254 203.0.113.12 ::1\n`);
        const r = box.run("turn-coturn", INPUTS);
        expect([r.status, r.stderr]).toEqual([0, ""]);
        expect(r.stdout).toContain("keeping bbb-2.example.org (left the pool)");
        expect(r.stdout).toContain("turn-coturn: not relaying to 169.254.169.254 (bbb-2.example.org): link-local, where the cloud's metadata service is (169.254.0.0/16)\n");
        expect(allowed()).toEqual(["2001:db8:1::b", "203.0.113.11", "203.0.113.12"]);
        expect(remembered()).toEqual([BBB_1, "bbb-2.example.org 203.0.113.12"]);
    });

    test("no server with an address coturn may relay to: no allowed-peer-ip line at all (an empty one lets coturn relay anywhere)", () => {
        // coturn 4.6 reads `allowed-peer-ip=` without a value as a white list entry for everything ("White listing: ").
        const r = box.run("turn-coturn", { ...INPUTS, PEERS: "bbb-1.example.org 10.0.0.11 fd00::b" });
        expect(r.status).toBe(0);
        expect(conf().filter((l) => l.startsWith("allowed-peer-ip"))).toEqual([]);
        // Addresses that are IPv4 (or private) in other IPv6 forms are none of a BBB server's either.
        const forms = box.run("turn-coturn", { ...INPUTS, PEERS: `${BBB_1}\nbbb-2.example.org ::127.0.0.1 ::ffff:0:7f00:1 64:ff9b:1::a00:1 fec0::1` });
        expect(forms.status).toBe(0);
        expect(allowed()).toEqual(["2001:db8:1::b", "203.0.113.11"]);
        expect(conf()).toContain("denied-peer-ip=0.0.0.0-255.255.255.255");
    });

    test("a server left with no address coturn may relay to is said so", () => {
        const r = box.run("turn-coturn", { ...INPUTS, PEERS: `${BBB_1}\nbbb-2.example.org 10.0.0.12 fd00::c` });
        expect([r.status, r.stderr]).toEqual([0, ""]);
        expect(r.stdout).toContain("turn-coturn: bbb-2.example.org has no address coturn may relay to: TURN-relayed media cannot reach it\n");
        expect(allowed()).toEqual(["2001:db8:1::b", "203.0.113.11"]);
    });

    test("every range coturn is told to deny (but the documentation ranges and the catch-alls) is never allowed, from its first address to its last", () => {
        expect(box.run("turn-coturn", INPUTS).status).toBe(0);
        const ranges = conf()
            .filter((l) => l.startsWith("denied-peer-ip="))
            .map((l) => l.slice("denied-peer-ip=".length))
            .filter((r) => !["0.0.0.0-255.255.255.255", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"].includes(r))
            .filter((r) => !/^(192\.0\.2|198\.51\.100|203\.0\.113)\./.test(r));
        expect(ranges.length).toBeGreaterThanOrEqual(18);
        const ends = [...new Set(ranges.flatMap((r) => r.split("-")))];
        const r = box.run("turn-coturn", { ...INPUTS, PEERS: `${BBB_1}\nbbb-9.example.org ${ends.join(" ")}` });
        expect([r.status, r.stderr]).toEqual([0, ""]);
        expect(allowed()).toEqual(["2001:db8:1::b", "203.0.113.11"]);
        expect(r.stdout.match(/not relaying to \S+ \(bbb-9\.example\.org\)/g)).toHaveLength(ends.length);
        // Next to a range's ends, outside it, an address is a peer (198.51.100.0/24 and 2001:db8::/32 stand for public ones).
        const edges = box.run("turn-coturn", { ...INPUTS, PEERS: "bbb-1.example.org 9.255.255.255 11.0.0.0 172.32.0.0 2003:: 198.51.100.7" });
        expect(edges.stdout).not.toContain("not relaying");
        expect(allowed()).toEqual(["11.0.0.0", "172.32.0.0", "198.51.100.7", "2003::", "9.255.255.255"]);
    });
});

test("a coturn restart that failed is redone by the next run with the same inputs", () => {
    expect(box.run("turn-coturn", INPUTS).status).toBe(0);
    const grown = { ...INPUTS, PEERS: `${BBB_1}\n${BBB_2}` };
    const failed = box.run("turn-coturn", grown, { SYSTEMCTL_FAIL: "restart" });
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain("coturn did not restart (see: journalctl -u coturn); the next run restarts it again");
    // Not applied: coturn is not known to relay to bbb-2 yet.
    expect(remembered()).toEqual([BBB_1]);
    clearCalls();
    const r = box.run("turn-coturn", grown);
    expect([r.status, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toContain("an earlier run changed the configuration but coturn did not restart then; restarting coturn");
    expect(restarts()).toHaveLength(1);
    expect(remembered()).toEqual([BBB_1, BBB_2]);
    clearCalls();
    expect(box.run("turn-coturn", grown).status).toBe(0);
    expect(restarts()).toEqual([]);
});

test("a run cut short after writing the configuration (before the restart) restarts coturn next time", () => {
    expect(box.run("turn-coturn", INPUTS).status).toBe(0);
    const newSecret = { ...INPUTS, SECRET: "fedcba9876543210".repeat(4) };
    expect(box.run("turn-coturn", newSecret, { SYSTEMCTL_FAIL: "enable" }).status).toBe(1);
    expect(conf()).toContain(`static-auth-secret=${newSecret.SECRET}`);
    clearCalls();
    expect(box.run("turn-coturn", newSecret).status).toBe(0);
    expect(restarts()).toHaveLength(1);
});

test("what the TURN host remembers is root-only (0600 in a 0700 directory) and holds names and addresses, no secret", () => {
    expect(box.run("turn-coturn", { ...INPUTS, PEERS: `${BBB_2}\n${BBB_1}` }).status).toBe(0);
    expect(mode("root/var/lib/bbb-deploy")).toBe("700");
    expect(mode("root/var/lib/bbb-deploy/turn-peers")).toBe("600");
    expect(box.calls("chown")).toContainEqual(expect.stringMatching(/^chown root:root .*\/var\/lib\/bbb-deploy\/turn-peers\.\w+$/));
    const text = fs.readFileSync(box.file("root/var/lib/bbb-deploy/turn-peers"), "utf8");
    expect(text).not.toContain(SECRET);
    expect(remembered()).toEqual([BBB_1, BBB_2]);
    expect(box.files().filter((f) => f.startsWith("var/lib/bbb-deploy/"))).toEqual(["var/lib/bbb-deploy/turn-peers"]);
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

test("systemd failing around coturn stops the step with what failed: daemon-reload; a start when nothing changed; coturn not running after", () => {
    const reload = box.run("turn-coturn", INPUTS, { SYSTEMCTL_FAIL: "daemon-reload" });
    expect([reload.status, reload.stderr]).toEqual([1, expect.stringContaining("turn-coturn: error: systemctl daemon-reload failed")]);
    expect(box.run("turn-coturn", INPUTS).status).toBe(0);
    // Nothing changed: coturn is only started (it may have been stopped by hand).
    const start = box.run("turn-coturn", INPUTS, { SYSTEMCTL_FAIL: "start" });
    expect([start.status, start.stderr]).toEqual([1, expect.stringContaining("turn-coturn: error: coturn did not start (see: journalctl -u coturn)")]);
    const down = box.run("turn-coturn", INPUTS, { SYSTEMCTL_FAIL: "is-active" });
    expect([down.status, down.stderr]).toEqual([1, expect.stringContaining("turn-coturn: error: coturn is not running (see: journalctl -u coturn)")]);
});

test("a LOGGING other than file or none is refused before anything runs", () => {
    const r = box.run("turn-coturn", { ...INPUTS, LOGGING: "syslog" });
    expect([r.status, r.stderr]).toEqual([1, "turn-coturn: error: LOGGING must be file or none, not syslog\n"]);
    expect(box.calls()).toEqual([]);
});

test("coturn's directories that cannot be given to turnserver (the package made no such user) stop the step before certbot runs", () => {
    const r = box.run("turn-coturn", INPUTS, { CHOWN_FAIL: "1" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("chown: invalid user: \u2018turnserver:turnserver\u2019\nturn-coturn: error: cannot chown the coturn directories");
    expect(box.calls("certbot")).toEqual([]);
    expect(fs.existsSync(box.file("root/etc/turnserver.conf"))).toBe(false);
    expect(box.calls("systemctl")).toEqual([]);
});

test("a certificate certbot keeps in another lineage (turn.example.org-0001, its name taken when it was issued): the deploy hook finds none in live/turn.example.org and the step stops before coturn is configured", () => {
    // certbot reuses a lineage that names exactly the requested names, whatever its name.
    box.write("certbot/turn.example.org-0001", "turn.example.org\n");
    const r = box.run("turn-coturn", INPUTS);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`install: cannot stat '${box.root}/etc/letsencrypt/live/turn.example.org/fullchain.pem': No such file or directory`);
    expect(r.stderr).toContain("turn-coturn: error: the certificate deploy hook failed");
    expect(fs.existsSync(box.file("root/etc/letsencrypt/live/turn.example.org-0001/fullchain.pem"))).toBe(true);
    expect(fs.existsSync(box.file("root/etc/coturn/certs/fullchain.pem"))).toBe(false);
    expect(fs.existsSync(box.file("root/etc/turnserver.conf"))).toBe(false);
    expect(restarts()).toEqual([]);
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
