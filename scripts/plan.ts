// npm run plan -- --stack <name> [--ipv6]: what `pulumi up` would build for a stack, without a cloud, the
// Pulumi CLI or credentials. The program is evaluated under mocks with Pulumi.yaml's defaults (the
// program's own) and Pulumi.<name>.yaml; the cloud is assumed to have the network, image and flavors the
// stack names (and, with --ipv6, a routable IPv6 subnet). Secrets are never decrypted or shown.
import { parse as parseYaml } from "yaml";
import { helpRequested } from "./cli";
import { evaluateProgram, firewallOf, loadProgram, ofType, projectRoot, Registered, Run, stackConfig, stackSecretKeys, stepInputs, waitsFor } from "./offline";

const ROOT = projectRoot();

export function table(header: string[], rows: string[][]): string {
    const line = (cells: string[]) => `| ${cells.map((c) => c.replace(/\|/g, "\\|")).join(" | ")} |`;
    return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

function hostsSection(run: Run): string {
    const hosts = run.outputs.hosts as { name: string; role: string; fqdn: string }[];
    const rows = hosts.map((h) => {
        const vm = ofType(run, "openstack:compute/instance:Instance").find((r) => r.name === `${h.name}-vm`)!;
        const data = ofType(run, "openstack:blockstorage/volume:Volume").find((r) => r.name === `${h.name}-data`);
        const boot = ofType(run, "openstack:blockstorage/volume:Volume").find((r) => r.name === `${h.name}-boot`);
        const install = run.resources.find((r) => r.name === `${h.name}-install`);
        return [
            h.name,
            h.role,
            h.fqdn,
            install ? stepInputs(install.inputs.stdin).VERSION : "",
            vm.inputs.flavorName,
            boot ? `${boot.inputs.size}, a clone of golden volume ${String(boot.inputs.metadata["bbb-bake"]).slice(0, 12)}` : String(vm.inputs.blockDevices[0].volumeSize),
            data ? `${data.inputs.size} GB${data.protect ? ", protected" : ""}` : "",
        ];
    });
    return `## Hosts\n\nEvery host boots from a volume made from the newest image named by \`image\` (during a rolling upgrade, the BBB servers not yet upgraded: \`upgrade.from.image\`), or, for a pool's BBB servers with \`bake\`, from a clone of a golden volume (next section).\n\n${table(
        ["host", "role", "name", "BigBlueButton", "flavor", "boot volume (GB)", "data volume"],
        rows,
    )}`;
}

/** The golden volumes the stack keeps, and those this update bakes (a builder VM first). */
function bakesSection(run: Run): string {
    const goldens = ofType(run, "openstack:blockstorage/volume:Volume").filter((v) => v.inputs.metadata?.purpose === "golden");
    if (goldens.length === 0) return "";
    const baking = run.outputs.baking as { servers: Record<string, string> };
    const rows = goldens.map((g) => {
        const key = String(g.inputs.metadata["bbb-bake"]);
        const users = Object.entries(baking.servers).filter(([, k]) => k === key).map(([server]) => server);
        const builder = run.resources.find((r) => r.name === `${g.name}-builder-vm`);
        return [key.slice(0, 12), g.inputs.name, String(g.inputs.description).split(";")[0], users.join(", ") || "(none yet: baked ahead)", builder ? `baked now by ${g.name}-builder (deleted by the next pulumi up)` : "kept"];
    });
    return `## Golden volumes (bake)\n\n${table(["key", "volume", "holds", "servers booted from it", "this update"], rows)}`;
}

function firewallSection(run: Run): string {
    const firewall = firewallOf(run);
    const parts = Object.entries(firewall).map(
        ([host, rules]) =>
            `### ${host}\n\n${table(
                ["ports", "protocol", "source", "family", "why"],
                rules.map((r) => [r.ports, r.protocol, r.source, r.family, r.why]),
            )}`,
    );
    return `## Firewall (ingress; egress is open)\n\n${parts.join("\n\n")}`;
}

/** The monitoring host's scrape targets and alert rules, as the monitoring-setup step writes them. */
function monitoringSection(run: Run): string {
    const setup = run.resources.find((r) => r.name === "monitoring-setup");
    if (!setup) return "";
    const inputs = stepInputs(setup.inputs.stdin);
    type Scrape = { job_name: string; static_configs?: { targets: string[]; labels?: Record<string, string> }[] };
    const scrapes = (parseYaml(inputs.PROMETHEUS_YML) as { scrape_configs: Scrape[] }).scrape_configs;
    const targets = scrapes.flatMap((job) =>
        (job.static_configs ?? []).flatMap((c) => c.targets.map((target) => [job.job_name, target, Object.entries(c.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(", ")])),
    );
    type Rule = { alert: string; for?: string; labels?: { severity?: string }; annotations?: { summary?: string } };
    const rules = (parseYaml(inputs.RULES_YML) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
    const grafana = run.outputs.grafanaUrl as string;
    return [
        `## Monitoring

Grafana at ${grafana} (user admin, password: the secret output grafanaAdminPassword); Prometheus keeps 15 days and scrapes each host's fixed address (its security group admits the monitoring host's group only).`,
        `### Scrape targets

${table(["job", "target", "labels"], targets)}`,
        `### Alert rules

${table(["alert", "for", "severity", "summary"], rules.map((r) => [r.alert, r.for ?? "", r.labels?.severity ?? "", r.annotations?.summary ?? ""]))}`,
    ].join("\n\n");
}

/** The streaming host: where viewers watch, how many streams at once, what a viewer costs in bandwidth, what is kept. */
function streamingSection(run: Run): string {
    const setup = run.resources.find((r) => r.name === "streaming-setup");
    if (!setup) return "";
    const i = stepInputs(setup.inputs.stdin);
    const bitrate = Number(i.BITRATE);
    const rows = [
        ["viewer page", `${run.outputs.streamingUrl as string}watch/<stream> (no login; \`npm run stream -- start\` prints it)`],
        ["API", `${run.outputs.streamingApiUrl as string} (user ${i.API_USER}, password: the secret output streamingApiPassword)`],
        ["streams at once", `${i.WORKERS} (streaming.workers; each worker: 2 vCPUs, 2 GB)`],
        ["per stream", `${bitrate} Mbit/s from the worker; each viewer ${bitrate} Mbit/s more: about ${Math.floor(1000 / bitrate)} viewers a Gbit/s of the host's bandwidth`],
        ["RTMP", "the workers publish to nginx on 127.0.0.1:1935 (no firewall rule: nothing else reaches it)"],
        ["forwarded to", i.FORWARD_URL ? "streaming.forward (secret)" : "nowhere (streaming.forward unset)"],
        [
            "recorded",
            i.RTMP_CONF.includes("record all;")
                ? `each stream, as MP4 on the streaming host, kept ${i.KEEP_DAYS} days (streaming.keepDays; about ${((bitrate * 3600) / 8000).toFixed(1)} GB an hour)`
                : "no (streaming.record, off by default under privacy: strict)",
        ],
        ["access logs", i.PRIVACY === "strict" ? "none (privacy: strict)" : "nginx's (privacy: standard)"],
        ["workers", i.WORKER_IMAGE],
    ];
    return `## Streaming\n\n${table(["", ""], rows)}`;
}

/** Each backed-up host's container, schedule, what it holds and what restic keeps. */
function backupsSection(run: Run): string {
    const steps = ofType(run, "command:remote:Command").filter((r) => stepInputs(r.inputs.stdin).STEP === "backup-setup" && stepInputs(r.inputs.stdin).ENABLED === "true");
    if (steps.length === 0) return "";
    const rows = steps.map((step) => {
        const i = stepInputs(step.inputs.stdin);
        return [
            step.name.replace(/-backup$/, ""),
            i.REPOSITORY,
            i.PARTS.split("\n").join("; "),
            `${i.BACKUP_TIME} UTC`,
            `${i.KEEP_DAILY} daily, ${i.KEEP_WEEKLY} weekly, ${i.KEEP_MONTHLY} monthly`,
        ];
    });
    return `## Backups (restic, encrypted; passwords: the secret output backupPasswords)\n\nThe containers are kept when backups are turned off or the stack is destroyed.\n\n${table(["host", "repository", "what", "nightly at", "kept"], rows)}`;
}

function dnsSection(run: Run): string {
    const records = ofType(run, "cloudflare:index/dnsRecord:DnsRecord");
    const wanted = run.outputs.dnsRecords as { type: string; name: string }[];
    const how = records.length > 0 ? "created in Cloudflare (not proxied, TTL 60)" : "to be created by you (dns.provider: none)";
    const hostByName = new Map((run.outputs.hosts as { name: string; fqdn: string }[]).map((h) => [h.fqdn, h.name]));
    const rows = wanted.map((r) => [r.name, r.type, `${r.type === "A" ? "public IPv4" : "IPv6"} of ${hostByName.get(r.name)}`]);
    return `## DNS records, ${how}\n\n${table(["name", "type", "content"], rows)}`;
}

function stepsSection(run: Run): string {
    const steps = ofType(run, "command:remote:Command");
    const names = new Set(steps.map((s) => s.name));
    const before = new Map(steps.map((s) => [s.name, [...waitsFor(run, s.name)].filter((n) => names.has(n))]));
    // The steps a step waits for directly: not those that another of its prerequisites already waits for.
    const direct = (name: string) => {
        const all = before.get(name)!;
        return all.filter((dep) => !all.some((other) => other !== dep && before.get(other)!.includes(dep)));
    };
    const depth = new Map<string, number>();
    const depthOf = (name: string): number => {
        if (!depth.has(name)) depth.set(name, 1 + Math.max(0, ...direct(name).map(depthOf)));
        return depth.get(name)!;
    };
    const hostByIp = new Map((run.outputs.hosts as { name: string; ipv4: string }[]).map((h) => [h.ipv4, h.name]));
    const ordered = [...steps].sort((a, b) => depthOf(a.name) - depthOf(b.name) || a.name.localeCompare(b.name, undefined, { numeric: true }));
    const rows = ordered.map((s: Registered) => [
        String(depthOf(s.name)),
        s.name,
        stepInputs(s.inputs.stdin).STEP,
        hostByIp.get(s.inputs.connection.host) ?? "",
        direct(s.name).join(", "),
        s.inputs.delete ? "on removal too" : "",
    ]);
    return `## Remote steps (same wave: in parallel)\n\n${table(["wave", "step", "script", "runs on", "after", ""], rows)}`;
}

function outputsSection(run: Run): string {
    const rows = Object.entries(run.outputs).map(([key, value]) => [
        key,
        run.secretOutputs.includes(key)
            ? "[secret]"
            : key === "hosts" || key === "dnsRecords"
              ? "(addresses known after deploy)"
              : key === "baking" && bakesSection(run) !== ""
                ? "(see Golden volumes)"
                : JSON.stringify(value),
    ]);
    return `## Outputs\n\n${table(["output", "value"], rows)}`;
}

export function renderPlan(stack: string, run: Run): string {
    const hosts = run.outputs.hosts as unknown[];
    return [
        `# Plan for stack ${stack}: ${hosts.length} hosts, ${run.resources.filter((r) => r.custom).length} resources`,
        "Evaluated offline: the cloud is assumed to have the network, image and flavors the stack names, and the stack to be deployed for the first time (the cloud is not asked which servers and golden volumes exist).",
        hostsSection(run),
        bakesSection(run),
        firewallSection(run),
        monitoringSection(run),
        streamingSection(run),
        backupsSection(run),
        dnsSection(run),
        stepsSection(run),
        outputsSection(run),
    ]
        .filter(Boolean)
        .join("\n\n");
}

export function argument(args: string[], name: string): string | undefined {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
}

export const USAGE = `usage: npm run plan -- --stack <name> [--ipv6]
Prints, offline (Pulumi's mocks, no cloud), what pulumi up would create for the stack Pulumi.<name>.yaml:
hosts, each host's firewall rules with their reasons, DNS records, the steps in order, the outputs.
--ipv6: as on a network with IPv6. Exit code 0, or 2 when the stack does not evaluate.`;

export async function main(args: string[]): Promise<number> {
    if (helpRequested(args, USAGE)) return 0;
    const stack = argument(args, "--stack");
    if (!stack) {
        console.error(USAGE.split("\n")[0]);
        return 2;
    }
    const config = stackConfig(ROOT, stack);
    if (!config) {
        console.error(`plan: there is no Pulumi.${stack}.yaml`);
        return 2;
    }
    const run = await evaluateProgram(loadProgram(), config, { anyName: true, ipv6: args.includes("--ipv6") }, stack, stackSecretKeys(ROOT, stack));
    if (run.error) {
        console.error(`plan: stack ${stack} does not evaluate:\n${run.error.message}`);
        return 2;
    }
    console.log(renderPlan(stack, run));
    return 0;
}

if (require.main === module) {
    main(process.argv.slice(2)).then((code) => process.exit(code));
}
