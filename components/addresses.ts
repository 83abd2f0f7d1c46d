// Address canonicalisation. OpenStack hands back IPv6 addresses in brackets and in any case; DNS records,
// peer lists and comparisons need one form: lower case, compressed, no brackets.
import * as ipaddr from "ipaddr.js";

const NOT_ROUTABLE_V6 = new Set(["unspecified", "linkLocal", "multicast", "loopback", "uniqueLocal", "ipv4Mapped", "rfc6145", "rfc6052", "6to4", "teredo"]);

export function canonicalIp(address: string): string {
    const bare = address.trim().replace(/^\[(.*)\]$/, "$1");
    return ipaddr.parse(bare).toString();
}

export function isRoutableIpv6(address: string): boolean {
    const bare = address.trim().replace(/^\[(.*)\]$/, "$1");
    if (!ipaddr.IPv6.isValid(bare)) return false;
    return !NOT_ROUTABLE_V6.has(ipaddr.IPv6.parse(bare).range());
}

/** The first IPv4 address, and the first routable IPv6 address, of a port's fixed IPs. */
export function portAddresses(fixedIps: readonly string[]): { ipv4?: string; ipv6?: string } {
    const ipv4 = fixedIps.find((a) => ipaddr.IPv4.isValidFourPartDecimal(a.trim()));
    const ipv6 = fixedIps.find(isRoutableIpv6);
    return { ipv4: ipv4 && canonicalIp(ipv4), ipv6: ipv6 && canonicalIp(ipv6) };
}
