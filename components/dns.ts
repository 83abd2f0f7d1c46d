// DNS records of a host: created in Cloudflare, or (dns.provider none) listed for the operator.
import * as pulumi from "@pulumi/pulumi";
import * as cloudflare from "@pulumi/cloudflare";
import { DnsSettings } from "./config";

/** Short, so that a replaced address is picked up quickly; Cloudflare's lowest outside "automatic". */
export const DNS_TTL = 60;

export interface DnsRecordSpec {
    type: "A" | "AAAA";
    name: string;
    content: string;
}

export interface HostRecordsArgs {
    dns: DnsSettings;
    fqdn: string;
    ipv4: pulumi.Output<string>;
    /** Present when the host has a routable IPv6 address. */
    ipv6?: pulumi.Output<string>;
}

/** Declares a host's records (Cloudflare) or logs what to create (none); returns what the records are. */
export function hostRecords(
    name: string,
    args: HostRecordsArgs,
    parent: pulumi.Resource,
    dependsOn: pulumi.Resource[] = [],
): { records: pulumi.Output<DnsRecordSpec[]>; resources: pulumi.Resource[] } {
    const wanted: { type: DnsRecordSpec["type"]; content: pulumi.Output<string> }[] = [{ type: "A", content: args.ipv4 }];
    if (args.ipv6) wanted.push({ type: "AAAA", content: args.ipv6 });

    const records = pulumi
        .all(wanted.map((w) => w.content))
        .apply((contents) => wanted.map((w, i): DnsRecordSpec => ({ type: w.type, name: args.fqdn, content: contents[i] })));

    if (args.dns.provider === "none") {
        records.apply((list) =>
            pulumi.log.info(
                `dns.provider is none: create ${list.map((r) => `${r.name} ${r.type} ${r.content}`).join(", ")} (TTL ${DNS_TTL}, not proxied)`,
                parent,
            ),
        );
        return { records, resources: [] };
    }
    const resources = wanted.map(
        (w) =>
            new cloudflare.DnsRecord(
                `${name}-${w.type.toLowerCase()}`,
                {
                    zoneId: args.dns.zoneId!,
                    name: args.fqdn,
                    type: w.type,
                    content: w.content,
                    ttl: DNS_TTL,
                    // Media and the installers' address checks cannot go through Cloudflare's proxy.
                    proxied: false,
                    comment: "bbb (managed by Pulumi)",
                },
                { parent, deleteBeforeReplace: true, dependsOn },
            ),
    );
    return { records, resources };
}
