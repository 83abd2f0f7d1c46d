// scripts/remote/bbb-dialin.sh, run for real against a FreeSWITCH configuration tree in the sandbox and a stub
// fs_cli that authenticates like the real one (the event socket's password from $HOME/.fs_cli_conf).
import * as fs from "fs";
import { Sandbox } from "./sandbox";
import { FS_CLI, installStubs } from "./stubs";

const PASSWORD = "Gw-Pa55word-7f3a9c";
const ESL_PASSWORD = "e5lSecret0c4f21";
const INPUTS = {
    FQDN: "bbb-1.example.org",
    DID: "49301234567",
    GATEWAY_HOST: "sip.provider.example:5060",
    GATEWAY_USERNAME: "4930123",
    GATEWAY_PASSWORD: PASSWORD,
    PIN_DIGITS: "5",
    PEERS: "",
    SIP_PORT: "5060",
    GATEWAY_DROP_SECONDS: "0",
};
const CONF = "root/opt/freeswitch/conf";
const GATEWAY = `${CONF}/sip_profiles/external/bbb-dialin.xml`;
const DIALPLAN = `${CONF}/dialplan/public/bbb-dialin.xml`;


let box: Sandbox;
beforeEach(() => {
    box = new Sandbox();
    installStubs(box);
    box.write(`${CONF}/vars.xml`, '<include>\n  <X-PRE-PROCESS cmd="set" data="external_sip_port=5060"/>\n</include>\n');
    box.write(`${CONF}/sip_profiles/external.xml`, '<profile name="external"><gateways><X-PRE-PROCESS cmd="include" data="external/*.xml"/></gateways></profile>\n');
    box.write(`${CONF}/dialplan/public.xml`, '<include><context name="public"><X-PRE-PROCESS cmd="include" data="public/*.xml"/></context></include>\n');
    box.write(`${CONF}/autoload_configs/event_socket.conf.xml`, `<configuration name="event_socket.conf"><settings>\n  <param name="password" value="${ESL_PASSWORD}"/>\n</settings></configuration>\n`);
    fs.mkdirSync(box.file("tmp"));
});
afterEach(() => box.cleanup());

const run = (inputs: Record<string, string> = INPUTS, env: Record<string, string> = {}) => box.run("bbb-dialin", inputs, { TMPDIR: box.file("tmp"), ...env });
const read = (relative: string) => fs.readFileSync(box.file(relative), "utf8");
const mode = (relative: string) => (fs.statSync(box.file(relative)).mode & 0o777).toString(8);
const unescape = (s: string) => s.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");

/** Checks that the tags of an XML document nest, and gives its elements with their attributes. */
function elements(xml: string): { name: string; attrs: Record<string, string> }[] {
    const stack: string[] = [];
    const found: { name: string; attrs: Record<string, string> }[] = [];
    const text = xml.replace(/<!--[\s\S]*?-->/g, "");
    for (const m of text.matchAll(/<(\/?)([A-Za-z][\w-]*)((?:\s+[\w-]+="[^"<]*")*)\s*(\/?)>/g)) {
        const [, closing, name, attrText, selfClosing] = m;
        if (closing) {
            expect(stack.pop()).toBe(name);
            continue;
        }
        const attrs: Record<string, string> = {};
        for (const a of attrText.matchAll(/([\w-]+)="([^"]*)"/g)) attrs[a[1]] = unescape(a[2]);
        found.push({ name, attrs });
        if (!selfClosing) stack.push(name);
    }
    expect(stack).toEqual([]);
    // Nothing but tags, comments and white space.
    expect(text.replace(/<[^>]*>/g, "").trim()).toBe("");
    return found;
}

const gatewayParams = () =>
    Object.fromEntries(elements(read(GATEWAY)).filter((e) => e.name === "param").map((e) => [e.attrs.name, e.attrs.value]));

/** The dialplan's extensions: each with its conditions, and each condition with its actions. */
function extensions(xml: string) {
    elements(xml);
    return [...xml.matchAll(/<extension name="([^"]+)">([\s\S]*?)<\/extension>/g)].map(([, name, body]) => ({
        name,
        conditions: [...body.matchAll(/<condition field="([^"]+)" expression="([^"]+)"\s*(?:\/>|>([\s\S]*?)<\/condition>)/g)].map(
            ([, field, expression, inner]) => ({
                field: unescape(field),
                expression: unescape(expression),
                actions: [...(inner ?? "").matchAll(/<action application="([^"]+)"(?: data="([^"]*)")?\/>/g)].map(([, app, data]) =>
                    data === undefined ? app : `${app} ${unescape(data)}`,
                ),
            }),
        ),
    }));
}

test("writes the gateway bbb-dialin for the external profile, exactly", () => {
    const r = run();
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(read(GATEWAY)).toBe(`<include>
  <!-- Managed by bbb (Pulumi, bbb-dialin step); changes here are overwritten. -->
  <gateway name="bbb-dialin">
    <param name="proxy" value="sip.provider.example:5060"/>
    <param name="username" value="4930123"/>
    <param name="password" value="${PASSWORD}"/>
    <param name="extension" value="49301234567"/>
    <param name="register" value="true"/>
    <param name="context" value="public"/>
    <param name="retry-seconds" value="10"/>
    <param name="ping" value="25"/>
  </gateway>
</include>
`);
    expect(elements(read(GATEWAY)).filter((e) => e.name === "gateway")).toEqual([{ name: "gateway", attrs: { name: "bbb-dialin" } }]);
    expect(r.stdout).toContain("gateway bbb-dialin registers at sip.provider.example:5060 as 4930123");
});

test("the dialplan answers the DID, asks for a PIN of PIN_DIGITS digits and hands it to BBB's conference as authorized", () => {
    expect(run().status).toBe(0);
    const exts = extensions(read(DIALPLAN));
    expect(exts.map((e) => e.name)).toEqual(["bbb_dialin_from_provider", "bbb_dialin_check_conference", "bbb_dialin_bad_pin", "bbb_dialin_give_up"]);
    expect(exts[0].conditions).toEqual([
        {
            field: "destination_number",
            expression: "^49301234567$",
            actions: [
                "start_dtmf",
                "answer",
                "sleep 1000",
                "play_and_get_digits 5 5 3 30000 # conference/conf-pin.wav ivr/ivr-that_was_an_invalid_entry.wav pin \\d+",
                "transfer SEND_TO_CONFERENCE XML public",
            ],
        },
    ]);
    // ... and only to a conference FreeSWITCH hosts (a web participant's audio in it).
    expect(exts[1].conditions).toEqual([
        { field: "destination_number", expression: "^SEND_TO_CONFERENCE$", actions: [] },
        { field: "${pin}", expression: "^\\d{5}$", actions: [] },
        { field: "${conference ${pin} list}", expression: "/sofia/", actions: ["set bbb_authorized=true", "transfer ${pin} XML default"] },
    ]);
    // A caller without a valid PIN gets the prompt again, twice at most, then is hung up on.
    expect(exts[2].conditions[1]).toEqual({
        field: "${bbb_dialin_retries}",
        expression: "^x{0,1}$",
        actions: [
            "set bbb_dialin_retries=${bbb_dialin_retries}x",
            "unset pin",
            "play_and_get_digits 5 5 3 30000 # conference/conf-bad-pin.wav ivr/ivr-that_was_an_invalid_entry.wav pin \\d+",
            "transfer SEND_TO_CONFERENCE XML public",
        ],
    });
    expect(exts[3].conditions[0].actions).toEqual(["playback conference/conf-bad-pin.wav", "hangup CALL_REJECTED"]);
    expect(mode(DIALPLAN)).toBe("644");
    expect(box.calls("chown")).toContainEqual(expect.stringMatching(/^chown freeswitch:daemon .*\/dialplan\/public\/bbb-dialin\.xml\.\w+$/));
});

test.each(["7", "11"])("with PIN_DIGITS=%s every PIN prompt and check takes exactly that many digits", (digits) => {
    expect(run({ ...INPUTS, PIN_DIGITS: digits }).status).toBe(0);
    const exts = extensions(read(DIALPLAN));
    const prompts = exts.flatMap((e) => e.conditions.flatMap((c) => c.actions)).filter((a) => a.startsWith("play_and_get_digits"));
    expect(prompts).toHaveLength(2);
    for (const p of prompts) {
        const [, min, max, tries, timeout, terminator, , , variable, regex] = p.split(" ");
        expect({ min, max, tries, timeout, terminator, variable, regex }).toEqual({
            min: digits, max: digits, tries: "3", timeout: "30000", terminator: "#", variable: "pin", regex: "\\d+",
        });
    }
    expect(exts[1].conditions[1].expression).toBe(`^\\d{${digits}}$`);
});

test("reloads FreeSWITCH and loads the gateway anew, authenticating through a private fs_cli config it removes", () => {
    const r = run();
    expect(r.status).toBe(0);
    expect(box.calls("fs_cli")).toEqual([
        "fs_cli -x reloadxml",
        "fs_cli -x sofia profile external killgw bbb-dialin",
        "fs_cli -x sofia profile external rescan",
    ]);
    expect(fs.readdirSync(box.file("tmp"))).toEqual([]);
    expect(box.files().filter((f) => f.includes("pending"))).toEqual([]);
});

test("the password is only in the gateway file (0640, freeswitch:daemon), never printed nor on a command line", () => {
    const r = run();
    expect(r.status).toBe(0);
    const holding = box.files().filter((f) => read(`root/${f}`).includes(PASSWORD));
    expect(holding).toEqual(["opt/freeswitch/conf/sip_profiles/external/bbb-dialin.xml"]);
    expect(mode(GATEWAY)).toBe("640");
    expect(box.calls("chown")).toContainEqual(expect.stringMatching(/^chown freeswitch:daemon .*\/sip_profiles\/external\/bbb-dialin\.xml\.\w+$/));
    const everything = `${r.stdout}${r.stderr}${read("calls.log")}`;
    expect(everything).not.toContain(PASSWORD);
    expect(everything).not.toContain(ESL_PASSWORD);
});

test("a second run with the same inputs writes nothing and does not touch FreeSWITCH", () => {
    expect(run().status).toBe(0);
    const before = [GATEWAY, DIALPLAN].map((f) => [read(f), fs.statSync(box.file(f)).mtimeMs]);
    fs.writeFileSync(box.file("calls.log"), "");
    const r = run();
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("unchanged");
    expect([GATEWAY, DIALPLAN].map((f) => [read(f), fs.statSync(box.file(f)).mtimeMs])).toEqual(before);
    expect(box.calls("fs_cli")).toEqual([]);
    expect(box.files().filter((f) => /\.xml\.\w+$/.test(f))).toEqual([]);
});

test("a new password rewrites the gateway only and loads it anew", () => {
    expect(run().status).toBe(0);
    const dialplan = fs.statSync(box.file(DIALPLAN)).mtimeMs;
    fs.writeFileSync(box.file("calls.log"), "");
    const r = run({ ...INPUTS, GATEWAY_PASSWORD: "An0ther-Pa55word" });
    expect(r.status).toBe(0);
    expect(gatewayParams().password).toBe("An0ther-Pa55word");
    expect(fs.statSync(box.file(DIALPLAN)).mtimeMs).toBe(dialplan);
    expect(box.calls("fs_cli")).toEqual([
        "fs_cli -x reloadxml",
        "fs_cli -x sofia profile external killgw bbb-dialin",
        "fs_cli -x sofia profile external rescan",
    ]);
    expect(`${r.stdout}${r.stderr}${read("calls.log")}`).not.toContain("An0ther-Pa55word");
});

test("a new PIN length rewrites the dialplan only, which a reloadxml applies", () => {
    expect(run().status).toBe(0);
    fs.writeFileSync(box.file("calls.log"), "");
    expect(run({ ...INPUTS, PIN_DIGITS: "6" }).status).toBe(0);
    expect(extensions(read(DIALPLAN))[1].conditions[1].expression).toBe("^\\d{6}$");
    expect(box.calls("fs_cli")).toEqual(["fs_cli -x reloadxml"]);
});

test("XML characters in the credentials are escaped and read back as given", () => {
    const password = `p&w<"x'>y`;
    const r = run({ ...INPUTS, GATEWAY_USERNAME: "user&co", GATEWAY_PASSWORD: password });
    expect(r.status).toBe(0);
    expect(read(GATEWAY)).toContain('value="p&amp;w&lt;&quot;x&apos;&gt;y"');
    expect(gatewayParams()).toMatchObject({ username: "user&co", password });
    expect(`${r.stdout}${r.stderr}${read("calls.log")}`).not.toContain(password);
});

test("before the installer has run there is no FreeSWITCH to configure", () => {
    fs.rmSync(box.file("root/opt"), { recursive: true });
    const r = run();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("bbb-dialin: error: FreeSWITCH is not installed");
    expect(r.stderr).toContain("bbb-install.sh has not completed on this host");
    expect(box.files()).toEqual([]);
});

test("FreeSWITCH not answering fails the step naming fs_cli, and the next run reloads although the files are unchanged", () => {
    const r = run(INPUTS, { FS_DOWN: "1" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("bbb-dialin: error: fs_cli -x 'reloadxml' failed (exit 255; is FreeSWITCH running?");
    expect(r.stderr).toContain("Error Connecting");
    fs.writeFileSync(box.file("calls.log"), "");
    expect(run().status).toBe(0);
    expect(box.calls("fs_cli")).toEqual([
        "fs_cli -x reloadxml",
        "fs_cli -x sofia profile external killgw bbb-dialin",
        "fs_cli -x sofia profile external rescan",
    ]);
    fs.writeFileSync(box.file("calls.log"), "");
    expect(run().status).toBe(0);
    expect(box.calls("fs_cli")).toEqual([]);
});

test("a reloadxml error fails the step, and what FreeSWITCH quotes of the gateway file is masked", () => {
    const r = run(INPUTS, { RELOADXML_ERR: "1" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('-ERR [    <param name="password" value="[secret]"/>]');
    expect(r.stderr).toContain("bbb-dialin: error: fs_cli -x 'reloadxml' failed");
    expect(`${r.stdout}${r.stderr}`).not.toContain(PASSWORD);
    expect(fs.readdirSync(box.file("tmp"))).toEqual([]);
});

test("a wrong event socket password is an fs_cli failure, not a success", () => {
    box.write(`${CONF}/autoload_configs/event_socket.conf.xml`, '<param name="password" value="changed"/>\n');
    box.stub("fs_cli", FS_CLI.replace('"$ROOT/opt/freeswitch/conf/autoload_configs/event_socket.conf.xml")', 'echo other)'));
    const r = run();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("auth/login failed");
});

test.each([
    [{ PIN_DIGITS: "4" }, "PIN_DIGITS must be 5 to 11"],
    [{ PIN_DIGITS: "12" }, "PIN_DIGITS must be 5 to 11"],
    [{ DID: "+49 30 1234567" }, "the dial-in number (DID) must be the 3 to 20 digits"],
    [{ GATEWAY_HOST: "sip.example;rm -rf" }, "the SIP gateway host must be a host name"],
    [{ GATEWAY_PASSWORD: "pa$${x}" }, "GATEWAY_PASSWORD must not contain '$${'"],
    [{ GATEWAY_USERNAME: "user\nname" }, "GATEWAY_USERNAME must be printable characters on one line"],
])("refuses %o before touching anything", (change, message) => {
    const r = run({ ...INPUTS, ...change });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`bbb-dialin: error: ${message}`);
    expect(box.calls()).toEqual([]);
    expect(box.files().filter((f) => f.includes("bbb-dialin"))).toEqual([]);
});

test("an external profile on another port than the firewall opens is refused", () => {
    box.write(`${CONF}/vars.xml`, '<X-PRE-PROCESS cmd="set" data="external_sip_port=5080"/>\n');
    const r = run();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("bbb-dialin: error: FreeSWITCH's external SIP profile listens on port 5080, but the firewall opens 5060");
});

describe("in a pool (PEERS)", () => {
    const POOL = { ...INPUTS, PEERS: "10.0.0.12 10.0.0.13" };
    const extension = (xml: string, name: string) => {
        const start = xml.indexOf(`<extension name="${name}">`);
        return start < 0 ? "" : xml.slice(start, xml.indexOf("</extension>", start) + "</extension>".length);
    };

    test("a caller joins here only a conference hosted here (a web participant's audio in it)", () => {
        expect(box.run("bbb-dialin", POOL).status).toBe(0);
        const check = extension(read(DIALPLAN), "bbb_dialin_check_conference");
        expect(check).toContain('<condition field="${pin}" expression="^\\d{5}$"/>\n    <condition field="${conference ${pin} list}" expression="/sofia/">');
        expect(check).toContain('<action application="transfer" data="${pin} XML default"/>');
    });

    test("any other PIN is forwarded to the other servers in turn, then counts as a bad PIN", () => {
        box.run("bbb-dialin", POOL);
        const forward = extension(read(DIALPLAN), "bbb_dialin_forward");
        expect(forward).toContain(
            '<action application="bridge" data="sofia/external/bbbpin-${pin}@10.0.0.12:5060|sofia/external/bbbpin-${pin}@10.0.0.13:5060"/>',
        );
        expect(forward).toContain('<action application="set" data="continue_on_fail=true"/>');
        expect(forward).toContain('<action application="transfer" data="BBB_DIALIN_NOT_FOUND XML public"/>');
        expect(extension(read(DIALPLAN), "bbb_dialin_bad_pin")).toContain('expression="^(SEND_TO_CONFERENCE|BBB_DIALIN_NOT_FOUND)$"');
        const xml = read(DIALPLAN);
        expect(xml.indexOf("bbb_dialin_check_conference")).toBeLessThan(xml.indexOf("bbb_dialin_forward"));
        expect(xml.indexOf("bbb_dialin_forward")).toBeLessThan(xml.indexOf("bbb_dialin_bad_pin"));
    });

    test("a forwarded call is taken only from a peer, and only for a conference hosted here (404 otherwise)", () => {
        box.run("bbb-dialin", POOL);
        const fromPeer = extension(read(DIALPLAN), "bbb_dialin_from_peer");
        expect(fromPeer).toContain('<condition field="network_addr" expression="^(10\\.0\\.0\\.12|10\\.0\\.0\\.13)$"/>');
        expect(fromPeer).toContain('expression="^bbbpin-(\\d{5})$"');
        const hosted = extension(read(DIALPLAN), "bbb_dialin_peer_conference");
        expect(hosted).toContain('<condition field="${conference ${pin} list}" expression="/sofia/">');
        expect(hosted).toContain('<anti-action application="respond" data="404"/>');
    });

    test("without peers (single topology) the same conference check (no caller opens an empty conference of a guessed PIN), and no forwarding", () => {
        box.run("bbb-dialin", INPUTS);
        const check = extension(read(DIALPLAN), "bbb_dialin_check_conference");
        expect(check).toContain('<condition field="${pin}" expression="^\\d{5}$"/>\n    <condition field="${conference ${pin} list}" expression="/sofia/">');
        expect(read(DIALPLAN)).not.toContain("bbbpin-");
    });

    test("a new peer (the pool grew) rewrites the dialplan and reloads it", () => {
        box.run("bbb-dialin", POOL);
        fs.writeFileSync(box.callLog, "");
        expect(box.run("bbb-dialin", { ...POOL, PEERS: "10.0.0.12 10.0.0.13 10.0.0.14" }).status).toBe(0);
        expect(read(DIALPLAN)).toContain("@10.0.0.14:5060");
        expect(box.calls("fs_cli").join("\n")).toContain("reloadxml");
    });

    test("a peer that is not an IPv4 address is refused", () => {
        const r = box.run("bbb-dialin", { ...POOL, PEERS: "bbb-2.example.org" });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("PEERS must be IPv4 addresses");
    });
});
