// Field features under mocks: the firewall follows the options (5060 only with dial-in and only from the
// provider; 2049 only from the BBB servers' group and only with recordings in a pool).
import { BASE_CONFIG, evaluate, firewallOf, Run } from "./harness";

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

test("with dial-in, 5060 tcp and udp open on every BBB server, to the provider's ranges only", () => {
    for (const host of ["bbb-1", "bbb-2"]) {
        expect(ports(dialIn, host, "5060")).toEqual([
            "tcp 192.0.2.0/24 IPv4", "tcp 2001:db8:5::/48 IPv6", "udp 192.0.2.0/24 IPv4", "udp 2001:db8:5::/48 IPv6",
        ]);
    }
    for (const host of ["turn", "scalelite"]) expect(ports(dialIn, host, "5060")).toEqual([]);
});

test("recordings in a pool open NFS (2049/tcp) on Scalelite to the BBB servers' security group, nothing else", () => {
    expect(ports(poolRecordings, "scalelite", "2049")).toEqual(["tcp group bbb-prod-bbb IPv4", "tcp group bbb-prod-bbb IPv6"]);
    for (const host of ["turn", "bbb-1", "bbb-2"]) expect(ports(poolRecordings, host, "2049")).toEqual([]);
});

test("no NFS without recordings, and none in the single topology (recordings stay on bbb-1's own volume)", () => {
    expect(ports(plain, "scalelite", "2049")).toEqual([]);
    for (const host of Object.keys(firewallOf(singleRecordings))) expect(ports(singleRecordings, host, "2049")).toEqual([]);
});
