// Field features under mocks: the firewall follows the options (5060 only with dial-in and only from the
// provider; 2049 only from the BBB servers' group and only with recordings in a pool).
import { BASE_CONFIG, byName, evaluate, firewallOf, ofType, Run, stepInputs, waitsFor } from "./harness";

const DIAL = { number: "+49 30 1234567", sipProviderCidrs: ["192.0.2.0/24", "2001:db8:5::/48"], gateway: { host: "sip.example.net", username: "4930123", password: "pw-secret-1" } };
const POOL = { ...BASE_CONFIG, scalelite: true, poolSize: 2 };
const ports = (run: Run, host: string, port: string) =>
    firewallOf(run)[host].filter((r) => r.ports === port).map((r) => `${r.protocol} ${r.source} ${r.family}`).sort();

let plain: Run;
let dialIn: Run;
let poolRecordings: Run;
let singleRecordings: Run;
beforeAll(async () => {
    plain = await evaluate(POOL);
    dialIn = await evaluate({ ...POOL, dialIn: DIAL });
    poolRecordings = await evaluate({ ...POOL, privacy: "standard", recordings: { enabled: true } }, {}, "prod");
    singleRecordings = await evaluate({ ...BASE_CONFIG, privacy: "standard", recordings: { enabled: true } });
});

test("all runs evaluate", () => {
    expect([plain, dialIn, poolRecordings, singleRecordings].map((r) => r.error)).toEqual([undefined, undefined, undefined, undefined]);
});

test("without dial-in, 5060 is closed everywhere", () => {
    for (const host of Object.keys(firewallOf(plain))) expect([host, ports(plain, host, "5060")]).toEqual([host, []]);
});

test("with dial-in, 5060 tcp and udp open on every BBB server, to the provider's ranges and (pool) the other servers only", () => {
    for (const host of ["bbb-1", "bbb-2"]) {
        expect(ports(dialIn, host, "5060")).toEqual([
            "tcp 192.0.2.0/24 IPv4", "tcp 2001:db8:5::/48 IPv6", "tcp group bbb-dev-bbb IPv4", "tcp group bbb-dev-bbb IPv6",
            "udp 192.0.2.0/24 IPv4", "udp 2001:db8:5::/48 IPv6", "udp group bbb-dev-bbb IPv4", "udp group bbb-dev-bbb IPv6",
        ]);
    }
    for (const host of ["turn", "scalelite"]) expect(ports(dialIn, host, "5060")).toEqual([]);
});

test("with dial-in on one server, 5060 opens to the provider only", async () => {
    const single = await evaluate({ ...BASE_CONFIG, dialIn: DIAL });
    expect(ports(single, "bbb-1", "5060").filter((r) => r.includes("group"))).toEqual([]);
    expect(stepInputs(byName(single, "bbb-1-dialin").inputs.stdin).PEERS).toBe("");
});

test("recordings in a pool open NFS (2049/tcp) on Scalelite to the BBB servers' security group, nothing else", () => {
    expect(ports(poolRecordings, "scalelite", "2049")).toEqual(["tcp group bbb-prod-bbb IPv4", "tcp group bbb-prod-bbb IPv6"]);
    for (const host of ["turn", "bbb-1", "bbb-2"]) expect(ports(poolRecordings, host, "2049")).toEqual([]);
});

test("no NFS without recordings, and none in the single topology (recordings stay on bbb-1's own volume)", () => {
    expect(ports(plain, "scalelite", "2049")).toEqual([]);
    for (const host of Object.keys(firewallOf(singleRecordings))) expect(ports(singleRecordings, host, "2049")).toEqual([]);
});

describe("the steps follow the options", () => {
    const steps = (run: Run, host: string) =>
        ofType(run, "command:remote:Command")
            .filter((c) => c.name.startsWith(`${host}-`))
            .map((c) => c.name.slice(host.length + 1));
    const inputs = (run: Run, name: string) => stepInputs(byName(run, name).inputs.stdin);

    test("by default (strict privacy): no storage, dial-in, webhooks or recordings steps; Scalelite records nothing", () => {
        expect(steps(plain, "bbb-1").sort()).toEqual(["api-name", "configure", "data-policy", "install", "maintenance", "ready", "registration", "retire", "seed"]);
        expect(inputs(plain, "scalelite-setup")).toMatchObject({ RECORDINGS: "false", NFS_CLIENTS: "", RETENTION_DAYS: "0" });
    });

    test("dial-in: the gateway and the DID the provider sends, the PIN length bbb-web uses, the password secret", () => {
        const dial = inputs(dialIn, "bbb-2-dialin");
        expect(dial).toMatchObject({ DID: "49301234567", GATEWAY_HOST: "sip.example.net", GATEWAY_USERNAME: "4930123", GATEWAY_PASSWORD: "pw-secret-1", PIN_DIGITS: "5", SIP_PORT: "5060" });
        // In a pool, a call is forwarded to the other servers (by their private addresses).
        expect(dial.PEERS).toBe("10.0.0.11");
        expect(inputs(dialIn, "bbb-1-dialin").PEERS).toBe("10.0.0.12");
        expect(inputs(dialIn, "bbb-2-configure").PROPERTIES.split("\n")).toEqual(
            expect.arrayContaining(["defaultDialAccessNumber=+49 30 1234567", "defaultNumDigitsForTelVoice=5"]),
        );
        expect(byName(dialIn, "bbb-2-dialin").secretInputs).toContain("stdin");
        expect([...waitsFor(dialIn, "bbb-2-dialin")]).toContain("bbb-2-data-policy");
    });

    test("recordings in a pool: Scalelite exports the share to the network, every node mounts it after the export", () => {
        expect(inputs(poolRecordings, "scalelite-setup")).toMatchObject({ RECORDINGS: "true", NFS_CLIENTS: "10.0.0.0/24", RETENTION_DAYS: "14" });
        for (const n of [1, 2]) {
            expect(inputs(poolRecordings, `bbb-${n}-recordings`)).toMatchObject({ NFS_SERVER: "10.0.0.3", SCALELITE_VERSION: "v1.8.5" });
            expect([...waitsFor(poolRecordings, `bbb-${n}-recordings`)]).toEqual(expect.arrayContaining(["scalelite-setup", `bbb-${n}-data-policy`]));
            // Recordings are kept by Scalelite, not on the node.
            expect(inputs(poolRecordings, `bbb-${n}-data-policy`)).toMatchObject({ PRIVACY: "standard", RETENTION_DAYS: "0" });
            expect(inputs(poolRecordings, `bbb-${n}-configure`).PROPERTIES).toContain("disableRecordingDefault=false");
        }
        expect([...waitsFor(poolRecordings, "bbb-1-registration")]).toContain("bbb-1-recordings");
    });

    test("Greenlight on one server: its compose project (database, .env) on a protected volume of its own, before the installer", async () => {
        const run = await evaluate({ ...BASE_CONFIG, greenlight: true }, {}, "prod");
        const volume = byName(run, "bbb-1-greenlight-data");
        expect([volume.inputs.size, volume.protect]).toEqual([10, true]);
        expect(inputs(run, "bbb-1-greenlight-storage")).toMatchObject({
            VOLUME_ID: "bbb-1-greenlight-data-id",
            MOUNT: "/mnt/bbb-greenlight",
            DIRECTORY: "/root/greenlight-v3",
            SERVICE: "greenlight",
        });
        expect([...waitsFor(run, "bbb-1-install")]).toEqual(expect.arrayContaining(["bbb-1-greenlight-storage", "bbb-1-greenlight-data-attach"]));
        expect(ofType(plain, "openstack:blockstorage/volume:Volume").map((v) => v.name)).not.toContain("bbb-1-greenlight-data");
    });

    test("recordings on one server: /var/bigbluebutton on a protected volume of its own, linked before the installer", () => {
        const volume = byName(singleRecordings, "bbb-1-data");
        expect([volume.inputs.size, volume.protect]).toEqual([100, true]);
        expect(inputs(singleRecordings, "bbb-1-storage")).toEqual({
            STEP: "bbb-storage",
            FQDN: "bbb-1.example.org",
            VOLUME_ID: "bbb-1-data-id",
            VOLUME_SIZE: "100",
            MOUNT: "/mnt/bbb-recordings",
            DIRECTORY: "/var/bigbluebutton",
            SERVICE: "bigbluebutton",
            FORCE_RESTART: "false",
        });
        expect([...waitsFor(singleRecordings, "bbb-1-install")]).toEqual(expect.arrayContaining(["bbb-1-storage", "bbb-1-data-attach"]));
        expect(inputs(singleRecordings, "bbb-1-data-policy")).toMatchObject({ PRIVACY: "standard", RETENTION_DAYS: "14", VIDEO: "false" });
        expect(inputs(singleRecordings, "turn-coturn").LOGGING).toBe("file");
    });

    test("webhooks: every server gets the permanent URLs", async () => {
        const run = await evaluate({ ...POOL, webhooks: true, webhookUrls: ["https://hooks.example.org/a", "https://hooks.example.org/b"] });
        for (const n of [1, 2]) expect(inputs(run, `bbb-${n}-webhooks`).URLS).toBe("https://hooks.example.org/a\nhttps://hooks.example.org/b");
    });
});
