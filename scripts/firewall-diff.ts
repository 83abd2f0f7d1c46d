// npm run firewall:diff -- --stack <name> [--base <git-ref>]: the firewall of the working tree against the
// firewall at a git ref (default: the merge base with main), as a Markdown table of the rules each host
// gains or loses. Exit 0: unchanged; 1: changed; 2: error. No cloud, no Pulumi CLI, no credentials.
//
// Each side is the program as it stands in that tree (code and Pulumi.<stack>.yaml), evaluated under mocks
// (scripts/trees.ts). A side without the stack file or without the program has no firewall: every rule of the
// other side is then added (or removed).
import { helpRequested } from "./cli";
import { FirewallRule, firewallOf, ruleKey } from "./offline";
import { argument, table } from "./plan";
import { evaluateBoth, mergeBaseWithMain } from "./trees";

type Firewall = Record<string, FirewallRule[]>;

interface HostChange {
    hosts: string[];
    added: FirewallRule[];
    removed: FirewallRule[];
}

/** Per host, the rules added and removed; hosts with the same changes are grouped. */
export function diffFirewalls(before: Firewall, after: Firewall): HostChange[] {
    const hosts = [...new Set([...Object.keys(before), ...Object.keys(after)])];
    const changes = new Map<string, HostChange>();
    for (const host of hosts) {
        const old = new Map((before[host] ?? []).map((r) => [ruleKey(r), r]));
        const now = new Map((after[host] ?? []).map((r) => [ruleKey(r), r]));
        const added = [...now.keys()].filter((k) => !old.has(k)).map((k) => now.get(k)!);
        const removed = [...old.keys()].filter((k) => !now.has(k)).map((k) => old.get(k)!);
        if (added.length === 0 && removed.length === 0) continue;
        const key = JSON.stringify([added.map(ruleKey), removed.map(ruleKey)]);
        const change = changes.get(key) ?? { hosts: [], added, removed };
        change.hosts.push(host);
        changes.set(key, change);
    }
    return [...changes.values()];
}

export function renderDiff(stack: string, base: string, changes: HostChange[]): string {
    const title = `### Firewall of stack \`${stack}\` against \`${base}\``;
    if (changes.length === 0) return `${title}\n\nNo change: every host lets in exactly what it let in before.`;
    const rows = changes.flatMap((c) =>
        [...c.removed.map((r) => ["removed", r] as const), ...c.added.map((r) => ["added", r] as const)].map(([what, r]) => [
            c.hosts.join(", "),
            what === "added" ? "**added**" : "~~removed~~",
            r.ports,
            r.protocol,
            r.source,
            r.family,
            r.why,
        ]),
    );
    return `${title}\n\n${table(["host", "change", "ports", "protocol", "source", "family", "why"], rows)}`;
}

export const USAGE = `usage: npm run firewall:diff -- --stack <name> [--base <git-ref>]
Lists the security-group rules the working tree adds and removes for the stack, against <git-ref> (the
merge base with main), offline. Exit code 0: no change; 1: changes; 2: error.`;

export async function main(args: string[]): Promise<number> {
    if (helpRequested(args, USAGE)) return 0;
    const stack = argument(args, "--stack");
    if (!stack) {
        console.error(USAGE.split("\n")[0]);
        return 2;
    }
    const base = argument(args, "--base") ?? mergeBaseWithMain();
    const { before, after } = await evaluateBoth(base, stack);
    const changes = diffFirewalls(before ? firewallOf(before) : {}, firewallOf(after));
    console.log(renderDiff(stack, base, changes));
    return changes.length === 0 ? 0 : 1;
}

if (require.main === module) {
    main(process.argv.slice(2)).then(
        (code) => process.exit(code),
        (err) => {
            console.error(`firewall:diff: ${err instanceof Error ? err.message : String(err)}`);
            process.exit(2);
        },
    );
}
