// Checks of single values, pure: each returns what was expected when the value is wrong, else undefined (or
// the parsed value). Addresses are read with ipaddr.js, SSH keys with sshpk, URLs with the WHATWG parser.
import * as ipaddr from "ipaddr.js";
import * as sshpk from "sshpk";
import { FORWARD_URL, FORWARD_URL_MAX } from "../streaming-config";
import type { PortRange } from "./types";

/** A DNS label: lower-case letters, digits and hyphens, 1-63 characters, no hyphen at either end. */
export const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** The longest a whole DNS name may be (RFC 1035 2.3.4, as text without the final dot). */
export const MAX_NAME = 253;

/**
 * Top-level names set aside by the IANA special-use registry (RFC 6761, 6762, 7686, 8375, 9476) or ICANN's
 * private-use TLD (internal): no public certificate or public DNS record can exist under them.
 */
const SPECIAL_USE_TLDS = ["alt", "arpa", "example", "internal", "invalid", "local", "localhost", "onion", "test"];

/** What is wrong with a DNS zone for the hosts' names, or undefined. */
export function zoneProblem(domain: string): string | undefined {
    const labels = domain.split(".");
    if (ipaddr.isValid(domain) || /^[0-9.]+$/.test(domain)) return "a DNS zone name, not an IP address";
    if (labels.length < 2 || !labels.every((l) => LABEL.test(l)) || /^[0-9]+$/.test(labels[labels.length - 1])) {
        return "a DNS zone name such as example.org (lower-case letters, digits, hyphens; at least two labels)";
    }
    if (SPECIAL_USE_TLDS.includes(labels[labels.length - 1])) {
        return `a public DNS zone: .${labels[labels.length - 1]} is a special-use name (RFC 6761), which Let's Encrypt and public DNS never serve`;
    }
    return undefined;
}

/** A CIDR's canonical form and prefix, or what is wrong with it. */
export function checkCidr(value: unknown): { canonical: string; prefix: number } | string {
    const expected = "an IPv4 or IPv6 CIDR such as 198.51.100.0/24 or 2001:db8::/48";
    if (typeof value !== "string" || !ipaddr.isValidCIDR(value)) return expected;
    const [address, prefix] = ipaddr.parseCIDR(value);
    const network = address.kind() === "ipv4" ? ipaddr.IPv4.networkAddressFromCIDR(value) : ipaddr.IPv6.networkAddressFromCIDR(value);
    return { canonical: `${network.toString()}/${prefix}`, prefix };
}

type Interval = [bigint, bigint];

function intervalOf(cidr: string): { family: "ipv4" | "ipv6"; interval: Interval } {
    const [address, prefix] = ipaddr.parseCIDR(cidr);
    const bits = address.kind() === "ipv4" ? 32 : 128;
    const start = address.toByteArray().reduce((n, byte) => (n << 8n) | BigInt(byte), 0n);
    const size = 1n << BigInt(bits - prefix);
    const first = (start / size) * size;
    return { family: address.kind(), interval: [first, first + size - 1n] };
}

/** Whether the union of `intervals` contains every address of `target`. */
function covers(intervals: Interval[], [from, to]: Interval): boolean {
    let next = from;
    for (const [a, b] of [...intervals].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))) {
        if (a > next) break;
        if (b >= next) next = b + 1n;
        if (next > to) return true;
    }
    return next > to;
}

/** ipaddr.js's table of special ranges of a family (all but global unicast), as CIDRs. */
function specialRanges(family: "ipv4" | "ipv6"): string[] {
    const table = (family === "ipv4" ? ipaddr.IPv4 : ipaddr.IPv6).prototype as unknown as {
        SpecialRanges: Record<string, [ipaddr.IPv4 | ipaddr.IPv6, number] | [ipaddr.IPv4 | ipaddr.IPv6, number][]>;
    };
    return Object.entries(table.SpecialRanges)
        .filter(([name]) => name !== "unicast")
        .flatMap(([, ranges]) => (Array.isArray(ranges[0]) ? (ranges as [ipaddr.IPv4, number][]) : [ranges as [ipaddr.IPv4, number]]))
        .map(([address, prefix]) => `${address.toString()}/${prefix}`);
}

/** Everyone on the Internet, per family: all of IPv4, and IPv6's global unicast space (2000::/3, RFC 4291). */
const INTERNET: Record<"ipv4" | "ipv6", Interval> = {
    ipv4: intervalOf("0.0.0.0/0").interval,
    ipv6: intervalOf("2000::/3").interval,
};

/**
 * The address family whose every public address the ranges reach together (0.0.0.0/0 alone, or two halves,
 * or 2000::/3), or undefined. Special-use ranges (private, documentation, multicast...) do not count either
 * way: ranges that leave out only those still reach everyone.
 */
export function reachesEveryone(cidrs: readonly string[]): "IPv4" | "IPv6" | undefined {
    for (const family of ["ipv4", "ipv6"] as const) {
        const given = cidrs.filter((c) => ipaddr.isValidCIDR(c)).map(intervalOf).filter((r) => r.family === family);
        if (given.length === 0) continue;
        const special = specialRanges(family).map((c) => intervalOf(c).interval);
        if (covers([...given.map((r) => r.interval), ...special], INTERNET[family])) return family === "ipv4" ? "IPv4" : "IPv6";
    }
    return undefined;
}

/** IPv6 ranges that carry IPv4 traffic (translation and tunnels): a rule for them lets any IPv4 host in. */
const CARRYING_IPV4 = ["ipv4Mapped", "rfc6145", "rfc6052", "6to4", "teredo"];
/** The widest an administrator's range may be: an IPv4 /8 (16 million addresses), an IPv6 /16. */
const WIDEST: Record<"ipv4" | "ipv6", number> = { ipv4: 8, ipv6: 16 };

/**
 * Why a range is no administrator's or provider's own, or undefined: wider than an IPv4 /8 or an IPv6 /16,
 * or overlapping a range that carries IPv4 (IPv4-mapped, NAT64, 6to4, Teredo: ipaddr.js's table).
 */
export function tooWideProblem(cidr: string): string | undefined {
    if (!ipaddr.isValidCIDR(cidr)) return undefined;
    const { family, interval } = intervalOf(cidr);
    const prefix = ipaddr.parseCIDR(cidr)[1];
    if (prefix < WIDEST[family]) return `a range no wider than /${WIDEST[family]} (${family === "ipv4" ? "IPv4" : "IPv6"}); ${cidr} is a large part of the Internet`;
    if (family === "ipv6") {
        const table = (ipaddr.IPv6.prototype as unknown as { SpecialRanges: Record<string, [ipaddr.IPv6, number] | [ipaddr.IPv6, number][]> }).SpecialRanges;
        for (const name of CARRYING_IPV4) {
            const ranges = Array.isArray(table[name][0]) ? (table[name] as [ipaddr.IPv6, number][]) : [table[name] as [ipaddr.IPv6, number]];
            for (const [address, bits] of ranges) {
                const [a, b] = intervalOf(`${address.toString()}/${bits}`).interval;
                if (interval[0] <= b && a <= interval[1]) return `an IPv6 range that carries no IPv4 traffic; ${cidr} overlaps ${address.toString()}/${bits} (${name}), through which any IPv4 host could come`;
            }
        }
    }
    return undefined;
}

/** The key types sshd of Ubuntu 22.04 accepts and pulumi-command's SSH client (golang.org/x/crypto/ssh) signs with. */
const SSH_KEY_TYPES: Record<string, string> = { ed25519: "ssh-ed25519", rsa: "ssh-rsa", ecdsa: "ecdsa-sha2-nistp*" };
const MIN_RSA_BITS = 2048;

function keyTypeProblem(key: sshpk.Key | sshpk.PrivateKey): string | undefined {
    if (!(key.type in SSH_KEY_TYPES)) return `an ${Object.values(SSH_KEY_TYPES).join(", ")} key (not ${key.type})`;
    if (key.type === "rsa" && key.size < MIN_RSA_BITS) return `an RSA key of at least ${MIN_RSA_BITS} bits (not ${key.size})`;
    return undefined;
}

/** An OpenSSH public key line, parsed, or what is wrong with it. */
export function publicKeyOf(text: string): sshpk.Key | string {
    const expected = "an OpenSSH public key line (ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp*, then the key, then an optional comment)";
    let key: sshpk.Key;
    try {
        key = sshpk.parseKey(text.trim(), "ssh");
    } catch {
        return expected;
    }
    return keyTypeProblem(key) ?? key;
}

/**
 * The value the offline plan (scripts/offline.ts) puts in place of a private key it cannot decrypt: it has the
 * shape of a key and no body, so nothing but that plan can pass it off as a key.
 */
export const OFFLINE_PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\noffline-placeholder\n-----END OPENSSH PRIVATE KEY-----\n";
const OFFLINE_KEY = /^-----BEGIN OPENSSH PRIVATE KEY-----\noffline-placeholder(-[0-9a-f]{12})?\n-----END OPENSSH PRIVATE KEY-----\n$/;

/**
 * What is wrong with a private key for the install steps, or undefined: it must parse, carry no passphrase
 * (the steps cannot type one) and belong to `publicKey` (the one the hosts are given). Never says anything of
 * the key's content.
 */
export function privateKeyProblem(text: string, publicKey: sshpk.Key | undefined): string | undefined {
    if (OFFLINE_KEY.test(text)) return undefined;
    let key: sshpk.PrivateKey;
    try {
        key = sshpk.parsePrivateKey(text.replace(/\r\n/g, "\n"), "auto");
    } catch (e) {
        if ((e as Error).name === "KeyEncryptedError") return "a private key without a passphrase (the install steps cannot type one); this one is encrypted";
        return "a PEM or OpenSSH private key (-----BEGIN ... PRIVATE KEY----- ... -----END ... PRIVATE KEY-----); this value is not one";
    }
    // Its type is sshPublicKey's to check: a key that is that key's other half has the same.
    if (publicKey && key.toPublic().fingerprint("sha256").toString() !== publicKey.fingerprint("sha256").toString()) {
        return `the private half of sshPublicKey (${publicKey.fingerprint("sha256").toString()}); this key is another's (${key.toPublic().fingerprint("sha256").toString()})`;
    }
    return undefined;
}

/**
 * What is wrong with a phone number to dial in, or undefined: an E.164 number (ITU-T E.164 6.1: at most 15
 * digits, country code first, never 0), written with a leading + and optional spaces, hyphens, dots, slashes or
 * parentheses. The shortest numbers in service have 7 digits with their country code (+290 and 4 digits).
 */
export function phoneNumberProblem(number: string): string | undefined {
    const digits = number.replace(/[\s().\/-]/g, "");
    if (/^\+[1-9][0-9]{6,14}$/.test(digits) && /^\+[0-9][0-9\s().\/-]*$/.test(number)) return undefined;
    return "an international (E.164) phone number: +, the country code, then 7 to 15 digits in all, e.g. +49 30 1234567";
}

/** Host names that only ever name this machine or a private network (RFC 6761, 6762, 8375, ICANN's .internal). */
const PRIVATE_NAME = /(^|\.)(localhost|local|internal|home\.arpa|test|invalid|example|onion|alt)$/;

/**
 * What is wrong with a permanent webhook URL, or undefined. bbb-webhooks on every BBB server posts every
 * meeting's events there, so it must be https, name a public host, and carry no credentials (they would sit in
 * plain state, in the steps' inputs and in bbb-webhooks' logs). A literal address must be global unicast:
 * loopback, link-local (the metadata service 169.254.169.254), private, shared and reserved ranges are refused.
 */
export function webhookUrlProblem(text: string): string | undefined {
    const expected = "an https:// URL of a public host, e.g. https://hooks.example.org/bbb";
    let url: URL;
    try {
        url = new URL(text);
    } catch {
        return expected;
    }
    // As bbb-webhooks.sh takes it on the host (scripts/remote/bbb-webhooks.sh), not as the URL parser forgives it.
    if (url.protocol !== "https:" || !/^https:\/\/[^\s/?#\\]+([/?#][^\s\\]*)?$/.test(text)) return expected;
    if (url.username !== "" || url.password !== "") return "an https:// URL without user or password (they would sit in plain state and in logs)";
    const host = url.hostname.replace(/^\[|\]$/g, "").replace(/\.$/, "");
    if (ipaddr.isValid(host)) {
        const address = ipaddr.process(host);
        if (address.range() !== "unicast") return `an https:// URL of a public host, not a ${address.range()} address (${address.toString()})`;
        return undefined;
    }
    if (!host.includes(".") || PRIVATE_NAME.test(host)) return `an https:// URL of a public host, not the local or private name ${host}`;
    return undefined;
}

/** A git branch, tag or commit name that is safe in a URL path (no `..`, no shell characters). */
export function isGitRef(ref: string): boolean {
    return ref.split("/").every((part) => /^[A-Za-z0-9._-]+$/.test(part) && !/^\.+$/.test(part));
}

const UBUNTU_CODENAMES: Record<string, string> = { focal: "20.04", jammy: "22.04", noble: "24.04" };

/** The Ubuntu release an image name states ("Ubuntu 22.04", "ubuntu-jammy-..."), if any. */
export function ubuntuReleaseOf(image: string): string | undefined {
    const lower = image.toLowerCase();
    const numbered = /(?:^|[^0-9])(\d{2}\.\d{2})(?:[^0-9]|$)/.exec(lower);
    if (numbered) return numbered[1];
    const codename = Object.keys(UBUNTU_CODENAMES).find((c) => lower.includes(c));
    return codename ? UBUNTU_CODENAMES[codename] : undefined;
}

/** "N-M" to a range, or undefined. */
export function parseRange(text: string): PortRange | undefined {
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(text.trim());
    return m ? { from: Number(m[1]), to: Number(m[2]) } : undefined;
}

/** How many single-character edits turn a into b (to suggest the key a typo meant). */
export function editDistance(a: string, b: string): number {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0][j] = j;
    for (let i = 1; i <= a.length; i++) {
        for (let j = 1; j <= b.length; j++) {
            d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
        }
    }
    return d[a.length][b.length];
}

/**
 * What is wrong with `streaming.forward`, if anything: the RTMP URL the streaming host's nginx pushes each stream to
 * (`push`, arut/nginx-rtmp-module v1.2.2 ngx_rtmp_relay_module.c, which parses it with ngx_parse_url: plain TCP,
 * no TLS). It lands in nginx's configuration, so nothing that would end or quote the directive.
 */
export function forwardUrlProblem(text: string): string | undefined {
    const expected = "an rtmp:// URL with the application and stream key, e.g. rtmp://peertube.example.org:1935/live/<stream key>";
    if (/^rtmps:\/\//i.test(text)) return `${expected}: nginx's RTMP module pushes plain rtmp:// only (no TLS); use the target's rtmp:// ingest`;
    let url: URL;
    try {
        url = new URL(text);
    } catch {
        return expected;
    }
    // What the streaming step puts in nginx's configuration, and nothing else (it checks the same pattern).
    if (url.protocol !== "rtmp:" || text.length > FORWARD_URL_MAX || !FORWARD_URL.test(text)) return `${expected} (at most ${FORWARD_URL_MAX} characters)`;
    const host = url.hostname.replace(/\.$/, "").toLowerCase();
    if (host === "localhost" || (ipaddr.isValid(host) && ["loopback", "unspecified"].includes(ipaddr.process(host).range()))) {
        return `${expected}, not an address of the streaming host itself (it would push to itself)`;
    }
    return undefined;
}
