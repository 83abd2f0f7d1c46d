// npm run impact -- --stack <name> [--base <git-ref>]: what `pulumi up` will do to each host of a stack, and
// what is at stake (meetings, data volumes), going from the program and Pulumi.<stack>.yaml at a git ref
// (default HEAD) to the working tree. No cloud, no Pulumi CLI, no credentials: both sides are evaluated under
// mocks (scripts/trees.ts) and compared here resource by resource, as the engine and the providers would.
// Exit 0: nothing happens on any host; 1: steps run again or hosts change, no meeting at risk; 2: a
// BigBlueButton server restarts, is replaced, resized or removed, or a data volume is deleted or replaced;
// 3: error.
//
// A step's stdin holds secrets: its inputs are named here, never shown.
import { helpRequested } from "./cli";
import { createHash } from "crypto";
import { changedInputs, parseStep, Registered, Run } from "./offline";
import { argument, table } from "./plan";
import { evaluateBoth } from "./trees";

/** 0: nothing happens on a host; 1: something runs or changes, no meeting at risk; 2: meetings at risk or data lost. */
export type Level = 0 | 1 | 2;
export const EXIT_ERROR = 3;

type Action = "create" | "delete" | "replace" | "update" | "same";

/** What `pulumi up` does to one resource. */
export interface ResourceChange {
    key: string;
    type: string;
    name: string;
    action: Action;
    before?: Registered;
    after?: Registered;
    /** Top-level inputs whose values differ between the runs (ignoreChanges left out). */
    changed: string[];
    /**
     * Inputs that take a value from a resource that is created, replaced or run again (input -> those
     * resources' keys): they change whatever the mocks' values say (a new random secret looks like the old).
     */
    inherited: Record<string, string[]>;
}

const INSTANCE = "openstack:compute/instance:Instance";
const VOLUME = "openstack:blockstorage/volume:Volume";
const ATTACHMENT = "openstack:compute/volumeAttach:VolumeAttach";
const COMMAND = "command:remote:Command";
/** Runs where `pulumi up` runs: the meetings checks that guard a BBB server's VM (components/guard.ts). */
const LOCAL_COMMAND = "command:local:Command";
const RANDOM = ["random:index/randomPassword:RandomPassword", "random:index/randomBytes:RandomBytes"];
const FIREWALL = ["openstack:networking/secGroup:SecGroup", "openstack:networking/secGroupRule:SecGroupRule"];

/**
 * Inputs whose change replaces the resource: ForceNew in terraform-provider-openstack v1.54.1 (bridged by
 * @pulumi/openstack 3.15.2), `triggers` of @pulumi/command 1.2.1, every input of a random resource.
 * Any other input is updated in place.
 */
export const REPLACED_ON: Record<string, string[] | "any"> = {
    [INSTANCE]: ["region", "userData", "availabilityZone", "availabilityZoneHints", "networkMode", "networks", "configDrive", "keyPair", "blockDevices", "schedulerHints"],
    [VOLUME]: ["region", "availabilityZone", "snapshotId", "sourceVolId", "imageId", "backupId", "volumeType", "consistencyGroupId", "sourceReplica", "schedulerHints"],
    [ATTACHMENT]: "any",
    "openstack:networking/port:Port": ["region", "networkId", "macAddress", "tenantId", "deviceOwner", "deviceId", "valueSpecs"],
    "openstack:networking/floatingIp:FloatingIp": ["region", "address", "pool", "tenantId", "valueSpecs", "dnsName", "dnsDomain"],
    "openstack:networking/floatingIpAssociate:FloatingIpAssociate": ["region", "floatingIp"],
    "openstack:compute/keypair:Keypair": "any",
    "openstack:networking/secGroup:SecGroup": ["region", "tenantId", "deleteDefaultRules"],
    "openstack:networking/secGroupRule:SecGroupRule": "any",
    "cloudflare:index/dnsRecord:DnsRecord": ["zoneId"],
    // terraform-provider-openstack v1.54.1: openstack/resource_openstack_objectstorage_container_v1.go (region,
    // storage_policy ForceNew; the name is not) and resource_openstack_identity_application_credential_v3.go (every argument).
    "openstack:objectstorage/container:Container": ["region", "storagePolicy"],
    "openstack:identity/applicationCredential:ApplicationCredential": "any",
    [COMMAND]: ["triggers"],
    [LOCAL_COMMAND]: ["triggers"],
    ...Object.fromEntries(RANDOM.map((type) => [type, "any" as const])),
};
/** Instance inputs updated by rebuilding the server from an image (its disk is rewritten), and by resizing it (a reboot). */
export const REBUILT_ON = ["imageId", "imageName", "personality"];
const RESIZED_ON = ["flavorName", "flavorId"];

/**
 * What running a step again stops or restarts, per script (read from scripts/remote/*.sh): on a change of one
 * of `inputs` (any change, or a new step, when absent). `meetings`: running meetings would end, so the step
 * does it only when the server is idle (while meetings run, it refuses and `pulumi up` stops there), unless
 * the operator's force setting (the step input `force`) is on.
 */
const RESTARTS: Record<string, { inputs?: string[]; except?: string[]; does: string; why: string; meetings: boolean; force?: string }> = {
    // bbb-install.sh runs again only when one of these (its fingerprint) changed, or the server announces
    // another address than its public one; another INSTALLER_URL alone is noted for the next run.
    "bbb-installer": {
        inputs: ["VERSION", "FQDN", "EMAIL", "TURN_HOST", "TURN_SECRET", "GREENLIGHT", "PUBLIC_IPV4", "PRIVATE_IPV4"],
        does: "restart BigBlueButton",
        why: "bbb-install.sh runs again and restarts every service",
        meetings: true,
        force: "FORCE_REINSTALL",
    },
    "bbb-configure": { inputs: ["SECRET", "PROPERTIES"], does: "restart BigBlueButton", why: "new secret or properties", meetings: true, force: "FORCE_RESTART" },
    "bbb-data-policy": {
        inputs: ["PRIVACY"],
        does: "restart bbb-webrtc-sfu",
        why: "its log level: cameras, screen shares and audio reconnect",
        meetings: true,
        force: "FORCE_RESTART",
    },
    "bbb-storage": { inputs: ["VOLUME_ID"], does: "stop BigBlueButton", why: "its recordings move onto the data volume", meetings: true, force: "FORCE_RESTART" },
    "turn-coturn": { does: "coturn restarts if its configuration changed", why: "relayed calls reconnect", meetings: false },
    // The data volume, its size (the filesystem grows online), the force flag and the e-mail (certbot) leave the containers alone.
    "scalelite-setup": {
        except: ["VOLUME_ID", "VOLUME_SIZE", "FORCE_REMOVE", "EMAIL", "HEALTH_WAIT_SECONDS"],
        does: "containers whose settings changed are re-created",
        why: "Scalelite's API pauses, running meetings go on",
        meetings: false,
    },
    "backup-setup": {
        does: "restic's settings, the bbb-backup and bbb-restore programs and the nightly timer are rewritten (ENABLED false: the timer, settings and secrets removed)",
        why: "the databases are not touched; the backups stay in the container",
        meetings: false,
    },
    "node-exporter": { does: "the node exporter restarts if its settings changed", why: "Prometheus misses a scrape", meetings: false },
    "bbb-exporter": { does: "the BigBlueButton exporter restarts if its settings changed", why: "Prometheus misses a scrape", meetings: false },
    "monitoring-setup": { does: "Prometheus, Alertmanager, Grafana and nginx reload what changed", why: "dashboards pause, alerts wait", meetings: false },
    "streaming-setup": {
        except: ["EMAIL", "FORCE"],
        does: "nginx reloads a changed viewer site (streams go on); a changed ingest restarts nginx and changed workers are re-created",
        why: "those two would cut a live stream: the step refuses them while one runs, unless forceReinstall",
        meetings: false,
    },
    "greenlight-setup": {
        except: ["VOLUME_ID", "VOLUME_SIZE", "EMAIL", "HEALTH_WAIT_SECONDS"],
        does: "containers whose settings changed are re-created",
        why: "Greenlight pauses",
        meetings: false,
    },
};

/** What a host's role loses while its VM is down. */
const ROLE_DOWN: Record<string, string> = {
    turn: "TURN-relayed media stops until coturn runs on the new VM",
    scalelite: "no new meeting starts until Scalelite runs on the new VM; running ones go on",
    greenlight: "Greenlight is down until it runs on the new VM",
    streaming: "live streams stop (meetings go on) until the streaming host runs again",
};

const keyOf = (r: Registered) => `${r.type}::${r.name}`;

/** Not an input: the resource's URN changed with no alias to carry it over. */
const URN = "urn";

function actionOf(change: ResourceChange): Action {
    const inputs = [...change.changed, ...Object.keys(change.inherited)];
    if (inputs.length === 0) return "same";
    const replacedOn = REPLACED_ON[change.type] ?? [];
    return replacedOn === "any" || inputs.some((input) => input === URN || replacedOn.includes(input)) ? "replace" : "update";
}

/** A resource whose new outputs are not the old ones: created, replaced, or a step whose stdin (an output too) changes. */
function passesOn(change: ResourceChange): boolean {
    if (change.action === "create" || change.action === "replace") return true;
    return change.type === COMMAND && change.action === "update" && (change.changed.includes("stdin") || "stdin" in change.inherited);
}

/**
 * What `pulumi up` does to every custom resource going from `before` to `after`: the inputs that differ,
 * and, through the inputs' dependencies (propertyDependencies; dependsOn only orders), those that take a value
 * from a created, replaced or re-run resource, until nothing more changes.
 */
export function resourceChanges(before: Pick<Run, "resources">, after: Pick<Run, "resources">): Map<string, ResourceChange> {
    const old = new Map(before.resources.filter((r) => r.custom).map((r) => [keyOf(r), r]));
    const now = new Map(after.resources.filter((r) => r.custom).map((r) => [keyOf(r), r]));
    // A new name with an alias takes the old resource over (the engine compares the two).
    const previous = new Map<string, string>();
    for (const [key, r] of now) {
        const alias = old.has(key) ? undefined : r.aliases.find((a) => old.has(a) && !now.has(a));
        if (alias) previous.set(key, alias);
    }
    const takenOver = new Set(previous.values());
    const changes = new Map<string, ResourceChange>();
    for (const key of new Set([...now.keys(), ...[...old.keys()].filter((k) => !takenOver.has(k))])) {
        const [b, a] = [old.get(previous.get(key) ?? key), now.get(key)];
        const { type, name } = (a ?? b)!;
        const action: Action = !b ? "create" : !a ? "delete" : "same";
        const changed = a && b ? changedInputs(b, a) : [];
        // Another URN (a new parent) without an alias is another resource to the engine: created, the old deleted.
        if (a && b && a.urn !== b.urn && a.aliases.length === 0) changed.push(URN);
        changes.set(key, { key, type, name, action, before: b, after: a, changed, inherited: {} });
    }
    const keyByUrn = new Map(after.resources.filter((r) => r.custom).map((r) => [r.urn, keyOf(r)]));
    for (let moved = true; moved; ) {
        moved = false;
        for (const change of changes.values()) {
            if (!change.after || !change.before) continue;
            const action = actionOf(change);
            if (action !== change.action) {
                change.action = action;
                moved = true;
            }
            for (const [input, urns] of Object.entries(change.after.propertyDependencies)) {
                if (change.after.ignoreChanges.includes(input)) continue;
                for (const urn of urns) {
                    const dep = changes.get(keyByUrn.get(urn) ?? "");
                    if (!dep || dep === change || !passesOn(dep)) continue;
                    const from = (change.inherited[input] ??= []);
                    if (!from.includes(dep.key)) {
                        from.push(dep.key);
                        moved = true;
                    }
                }
            }
        }
    }
    return changes;
}

/** Every string in a value (nested arrays and objects too). */
function strings(value: unknown): string[] {
    if (typeof value === "string") return [value];
    if (value === null || typeof value !== "object") return [];
    return Object.values(value).flatMap(strings);
}

/** The values a resource hands on: its id and computed outputs, and a step's stdin hash (what INSTALL_ID is made of). */
function valuesOf(resource: Registered): string[] {
    const values = strings(resource.outputs);
    if (resource.type === COMMAND) values.push(createHash("sha256").update(String(resource.inputs.stdin ?? "")).digest("hex"));
    return values.filter((v) => v.length >= 6);
}

/** The value holds `candidate`: equal, or one of its words or `:`-separated parts (lists of secrets, of addresses). */
function carries(value: string, candidate: string): boolean {
    return value === candidate || value.split(/[\s,;]+/).includes(candidate) || value.split(":").includes(candidate);
}

interface StepDelta {
    script: string;
    /** Inputs (names) whose values change. */
    inputs: string[];
    /** lib.sh or the step's own script changed. */
    scriptChanged: boolean;
    /** Other inputs of the command resource: connection, triggers, create/update/delete. */
    other: string[];
    /** Resources whose new values reach the stdin without a step input to name (cannot tell which). */
    unnamed: string[];
}

/** Splits a step's stdin into its inputs and the script part (lib.sh and the step). */
function stdinParts(stdin: unknown): { inputs: Record<string, string>; script: string } {
    return parseStep(String(stdin ?? ""));
}

function stepDelta(change: ResourceChange, changes: Map<string, ResourceChange>): StepDelta {
    const b = stdinParts(change.before?.inputs.stdin);
    const a = stdinParts(change.after?.inputs.stdin);
    const names = new Set([...Object.keys(a.inputs), ...Object.keys(b.inputs)].filter((n) => n !== "STEP" && a.inputs[n] !== b.inputs[n]));
    const unnamed: string[] = [];
    for (const key of change.inherited.stdin ?? []) {
        const values = valuesOf(changes.get(key)!.after!);
        const carried = Object.keys(a.inputs).filter((n) => n !== "STEP" && values.some((v) => carries(a.inputs[n], v)));
        carried.forEach((n) => names.add(n));
        if (carried.length === 0) unnamed.push(changes.get(key)!.name);
    }
    return {
        script: a.inputs.STEP ?? b.inputs.STEP ?? "?",
        inputs: [...names].sort(),
        scriptChanged: change.before !== undefined && change.after !== undefined && a.script !== b.script,
        other: [...new Set([...change.changed, ...Object.keys(change.inherited)])].filter((i) => i !== "stdin").sort(),
        unnamed,
    };
}

/** One thing `pulumi up` does on a host, what it puts at stake, and how much. */
export interface Row {
    does: string;
    stake: string;
    level: Level;
}

export interface HostImpact {
    host: string;
    role: string;
    /** Empty when nothing happens on the host. */
    rows: Row[];
}

export interface Impact {
    /** Every host of either side, the working tree's first. */
    hosts: HostImpact[];
    /** What changes beside the hosts: secrets, outputs, the key pair, the firewall. */
    stack: Row[];
    /** BigBlueButton servers whose meetings are at risk, and how many there are. */
    meetingsAtRisk: string[];
    bbbServers: number;
    /** Data volumes deleted or replaced. */
    dataAtRisk: string[];
    level: Level;
}

/** What the whole stack knows that a row needs. */
interface Context {
    changes: Map<string, ResourceChange>;
    /** A public IPv4 -> the host it belongs to (where a step runs). */
    hostByAddress: Map<string, string>;
    forceRemove: boolean;
}

const quote = (s: string) => `\`${s}\``;
const list = (items: string[]) => items.map(quote).join(", ");

/** A meetings check that runs before the VM changes (its `update`) or goes (its `delete`), and whether it is forced. */
interface Guard {
    force: boolean;
    forceKey: string;
}

/** The guards of a VM: a local command the VM depends on that runs now, and one with a delete that follows the VM. */
function guardsOf(vm: ResourceChange, locals: ResourceChange[]): { change?: Guard; remove?: Guard } {
    const guard = (c: ResourceChange): Guard => {
        try {
            const { force, forceKey } = JSON.parse(String((c.after ?? c.before)!.inputs.stdin ?? "{}"));
            return { force: force === true, forceKey: String(forceKey ?? "the force setting") };
        } catch {
            return { force: false, forceKey: "the force setting" };
        }
    };
    const follows = (r: Registered | undefined, urn: string) => r !== undefined && [...r.dependsOn, ...Object.values(r.propertyDependencies).flat()].includes(urn);
    const change = locals.find((c) => c.after && c.action !== "same" && vm.after?.dependsOn.includes(c.after.urn));
    const remove = locals.find((c) => (c.before ?? c.after)!.inputs.delete && (follows(c.before, vm.before?.urn ?? "") || follows(c.after, vm.after?.urn ?? "")));
    return { change: change && guard(change), remove: remove && guard(remove) };
}

/** What a BBB server's meetings see when its VM goes down for `why`: they end, or it waits until they have (a guard). */
function meetingsStake(why: string, guard: Guard | undefined): string {
    if (!guard) return `**meetings on it end**: ${why}`;
    if (guard.force) return `**meetings on it end**: ${why} (${guard.forceKey} is on)`;
    return `when idle: ${why}; a meetings check first refuses while meetings run (${guard.forceKey} ends them)`;
}

function vmRows(vm: ResourceChange, role: string, dataVolume: boolean, guards: { change?: Guard; remove?: Guard }, boot?: ResourceChange): Row[] {
    const bbb = role === "bbb";
    const inputs = [...vm.changed, ...Object.keys(vm.inherited)];
    if (vm.action === "replace") {
        const replacedOn = REPLACED_ON[INSTANCE] as string[];
        const reasons = inputs
            .filter((i) => i === URN || replacedOn.includes(i))
            .map((i) => {
                if (i === URN) return "its URN changed, with no alias";
                const [b, a] = [vm.before!.inputs.blockDevices?.[0]?.volumeSize, vm.after!.inputs.blockDevices?.[0]?.volumeSize];
                if (i === "blockDevices" && b !== a) return `boot volume ${b} → ${a} GB`;
                if (i in vm.inherited && !vm.changed.includes(i)) return `its ${i === "networks" ? "port" : i} is replaced`;
                return `${quote(i)} changed`;
            });
        // The engine checks a replacement against the program's inputs as they are, ignoreChanges aside
        // (pulumi/pulumi pkg/resource/deploy/step_generator.go: a diff-driven replacement is checked again on
        // goal.Properties, "we need to recompute the default values"; a `--replace` target or a tainted
        // resource is checked on goal.Properties from the start, "if the resource has been targeted for
        // replacement, ignore its old state"): what the old VM kept, the new one does not.
        const [b, a] = [vm.before!.inputs, vm.after!.inputs];
        const today = [
            b.blockDevices?.[0]?.uuid !== a.blockDevices?.[0]?.uuid ? "image" : "",
            b.keyPair !== a.keyPair ? "key pair" : "",
        ].filter(Boolean);
        return [
            {
                does: `replace the VM (${reasons.join(", ")}), then run every step on the new one`,
                stake: [
                    bbb ? meetingsStake("the VM is replaced", guards.change ?? guards.remove) : ROLE_DOWN[role] ?? `${role} is down`,
                    "what is on the boot volume is lost",
                    dataVolume ? "the data volume moves to the new VM" : "",
                    today.length ? `the new VM is made from today's ${today.join(" and ")}` : "",
                ]
                    .filter(Boolean)
                    .join("; "),
                level: bbb ? 2 : 1,
            },
        ];
    }
    const rows: Row[] = [];
    const resized = inputs.filter((i) => RESIZED_ON.includes(i));
    if (resized.length) {
        const flavor = (r: Registered) => r.inputs.flavorName ?? r.inputs.flavorId;
        rows.push({
            does: `resize the VM: flavor ${flavor(vm.before!)} → ${flavor(vm.after!)}`,
            stake: bbb ? meetingsStake("the VM reboots", guards.change) : `${role} is down while the VM reboots`,
            level: bbb ? 2 : 1,
        });
    }
    const rebuilt = inputs.filter((i) => REBUILT_ON.includes(i));
    if (rebuilt.length) {
        rows.push({
            does: `rebuild the VM from another image (${list(rebuilt)} changed)`,
            stake: bbb ? meetingsStake("the VM is rebuilt, its disk rewritten", guards.change) : `${ROLE_DOWN[role] ?? `${role} is down`}; its disk is rewritten`,
            level: bbb ? 2 : 1,
        });
    }
    const rest = inputs.filter((i) => !RESIZED_ON.includes(i) && !REBUILT_ON.includes(i));
    if (rest.length) rows.push({ does: `update the VM in place (${list(rest)})`, stake: "", level: 1 });
    const kept = keptByIgnoreChanges(vm, boot);
    if (kept.length) {
        const [old, now] = [kept.map(([o]) => o).join(" and "), kept.map(([, n]) => n).join(" and ")];
        rows.push({ does: `nothing on the VM (ignoreChanges): it keeps its ${old}; new VMs get ${now}`, stake: "", level: 0 });
    }
    return rows;
}

/**
 * What the program changes on a VM (or its own boot volume, a baked server's) but the VM keeps, its ignoreChanges
 * saying so: [what it keeps, what new VMs get].
 */
function keptByIgnoreChanges(vm: ResourceChange, boot?: ResourceChange): [string, string][] {
    if (!vm.before || !vm.after) return [];
    const ignored = vm.after.ignoreChanges;
    const [b, a] = [vm.before.inputs, vm.after.inputs];
    const disk = (inputs: Record<string, any>, key: string) => inputs.blockDevices?.[0]?.[key];
    const kept: [string, string][] = [];
    if (ignored.includes("flavorName") && b.flavorName !== a.flavorName) kept.push([`flavor ${b.flavorName}`, a.flavorName]);
    if (ignored.includes("blockDevices[0].volumeSize") && disk(b, "volumeSize") !== disk(a, "volumeSize")) {
        kept.push([`boot volume of ${disk(b, "volumeSize")} GB`, `${disk(a, "volumeSize")} GB`]);
    }
    if (ignored.includes("blockDevices[0].uuid") && disk(b, "uuid") !== disk(a, "uuid")) kept.push(["image", "the new image"]);
    if (boot?.before && boot.after?.ignoreChanges.includes("size") && boot.before.inputs.size !== boot.after.inputs.size) {
        kept.push([`boot volume of ${boot.before.inputs.size} GB`, `${boot.after.inputs.size} GB`]);
    }
    return kept;
}

function volumeRows(volume: ResourceChange): Row[] {
    const size = (r?: Registered) => r?.inputs.size as number;
    const isProtected = (volume.before ?? volume.after)!.protect;
    const lost = isProtected
        ? "protected: `pulumi up` refuses and stops there (set `protectData: false` first, after a snapshot, to let it go)"
        : "**DATA LOST**: it is not protected";
    switch (volume.action) {
        case "create":
            return [{ does: `new data volume (${size(volume.after)} GB${volume.after!.protect ? ", protected" : ""}), attached to the VM`, stake: "", level: 1 }];
        case "delete":
            return [{ does: `delete the data volume (${size(volume.before)} GB)`, stake: lost, level: 2 }];
        case "replace": {
            const inputs = [...volume.changed, ...Object.keys(volume.inherited)];
            return [{ does: `replace the data volume by an empty one (${list(inputs)} changed)`, stake: lost, level: 2 }];
        }
        case "update": {
            const rows: Row[] = [];
            if (volume.before!.protect !== volume.after!.protect) {
                rows.push({
                    does: `the data volume is ${volume.after!.protect ? "protected" : "no longer protected"}`,
                    stake: volume.after!.protect ? "" : "a later deletion or replacement of it is no longer stopped",
                    level: 0,
                });
            }
            const [b, a] = [size(volume.before), size(volume.after)];
            if (a > b) rows.push({ does: `grow the data volume: ${b} → ${a} GB`, stake: "online; its data is kept", level: 1 });
            if (a < b) {
                rows.push({
                    does: `shrink the data volume: ${b} → ${a} GB`,
                    stake: "Cinder cannot shrink a volume: `pulumi up` fails at it and nothing is lost; set the size back",
                    level: 1,
                });
            }
            const rest = volume.changed.filter((i) => i !== "size");
            if (rest.length) rows.push({ does: `update the data volume in place (${list(rest)})`, stake: "", level: 1 });
            return rows;
        }
        default:
            return volume.before!.protect === volume.after!.protect ? [] : volumeRows({ ...volume, action: "update" });
    }
}

/** The row of a step that leaves the program (its delete action runs, with the inputs of its last run). */
function removedStepRow(step: ResourceChange, suffix: string, role: string, ctx: Context): Row {
    const script = stdinParts(step.before!.inputs.stdin).inputs.STEP ?? "?";
    if (script === "scalelite-node" && /\sremove\s/.test(step.before!.inputs.delete ?? "")) {
        return {
            does: "removal from Scalelite: cordoned, then removed once it hosts no meeting",
            stake: ctx.forceRemove
                ? "**meetings on it end** (forceRemove is on: `servers:panic`)"
                : "while meetings run on it, `pulumi up` stops there and the server stays, cordoned (forceRemove is off)",
            level: role === "bbb" ? 2 : 1,
        };
    }
    return {
        does: `step ${quote(suffix)} (${script}) leaves${step.before!.inputs.delete ? ": its removal action runs" : "; nothing runs on the host"}`,
        stake: "",
        level: 1,
    };
}

function stepRow(step: ResourceChange, suffix: string, owner: string, ctx: Context): Row {
    const delta = stepDelta(step, ctx.changes);
    const runsOn = ctx.hostByAddress.get(step.after!.inputs.connection?.host);
    const where = runsOn && runsOn !== owner ? `, on ${runsOn}` : "";
    const inputs = stdinParts(step.after!.inputs.stdin).inputs;
    const isNew = step.action === "create";
    const why = [
        delta.inputs.length ? `${delta.inputs.join(", ")} changed` : "",
        delta.scriptChanged ? "its script changed" : "",
        delta.other.includes("connection") ? "its SSH connection changed" : "",
        delta.other.includes("triggers") ? "its triggers changed" : "",
        delta.other.includes(URN) ? "its URN changed, with no alias: a new step" : "",
        delta.other.some((i) => ["create", "update", "delete"].includes(i)) ? "its command changed" : "",
        delta.unnamed.length ? `new values from ${list(delta.unnamed)}` : "",
    ].filter(Boolean);
    const does = isNew ? `run the new step ${quote(suffix)} (${delta.script}${where})` : `re-run ${quote(suffix)} (${delta.script}${where}): ${why.join("; ")}`;

    const rule = RESTARTS[delta.script];
    // A new step, a value it cannot tell, or one of the rule's inputs (when it names none: any input but its
    // exceptions, or its script).
    const restarts =
        rule !== undefined &&
        (isNew ||
            delta.unnamed.length > 0 ||
            (rule.inputs
                ? delta.inputs.some((n) => rule.inputs!.includes(n))
                : delta.inputs.some((n) => !(rule.except ?? []).includes(n)) || delta.scriptChanged));
    if (restarts && rule.meetings) {
        const forced = rule.force !== undefined && inputs[rule.force] === "true";
        return {
            does,
            stake: forced ? `**meetings on it end**: ${rule.does} now, forceReinstall is on (${rule.why})` : `${rule.does} when idle (${rule.why})`,
            level: 2,
        };
    }
    // A replaced step with a removal action: Pulumi creates the new one, then runs the old one's removal.
    const removal = step.action === "replace" && step.before!.inputs.delete ? "then the old step's removal action runs" : "";
    if (restarts) return { does, stake: [`${rule.does}: ${rule.why}`, removal].filter(Boolean).join("; "), level: 1 };
    if (removal) return { does, stake: removal, level: 1 };
    if (delta.script === "scalelite-node") return { does, stake: scaleliteNodeStake(step.after!, delta, inputs), level: 1 };
    // bbb-configure recreates Greenlight on bbb-1 (single topology) for its image or log level.
    if (delta.script === "bbb-configure" && delta.inputs.some((n) => n.startsWith("GREENLIGHT_"))) {
        return { does, stake: "Greenlight's containers are recreated (Greenlight pauses; running meetings go on)", level: 1 };
    }
    return { does, stake: "", level: 1 };
}

/** What re-running a server's Scalelite step means to it: its action (the word `update` passes) and what changed. */
function scaleliteNodeStake(step: Registered, delta: StepDelta, inputs: Record<string, string>): string {
    const action = /bash -s (\w+)/.exec(String(step.inputs.update))?.[1] ?? "apply";
    const changed = (...names: string[]) => delta.unnamed.length > 0 || delta.inputs.some((n) => names.includes(n));
    if (action !== "apply") {
        return changed("CHANGE", "SECRET") ? "cordoned in Scalelite before its own steps run: no new meeting on it meanwhile, running ones go on" : "";
    }
    if (delta.inputs.includes("DRAIN")) {
        return inputs.DRAIN === "true" ? "drained: no new meeting on it, running ones go on" : "enabled again: it takes new meetings";
    }
    if (changed("SECRET")) return "its new secret is set in Scalelite, then it is enabled again";
    return changed("CHANGE") ? "enabled again in Scalelite once its change is applied" : "";
}

/** A volume of a bake (components/bake.ts): a golden volume, a builder's disk or a baked server's boot disk, never user data. */
const ofBake = (c: ResourceChange) => (c.after ?? c.before)!.inputs.metadata?.["bbb-bake"] !== undefined;
const isDataVolume = (c: ResourceChange) => c.type === VOLUME && !ofBake(c);

/** Rows of the resources that serve a host: its VM, data volume, network and DNS, and steps (a boot disk goes with its VM). */
function hostRows(host: string, role: string, resources: ResourceChange[], ctx: Context): Row[] {
    const vm = resources.find((c) => c.type === INSTANCE);
    const volumes = resources.filter(isDataVolume);
    const steps = resources.filter((c) => c.type === COMMAND && c.action !== "same");
    const attachments = resources.filter((c) => c.type === ATTACHMENT);
    // The meetings checks run where `pulumi up` runs: they change nothing on the host, they guard its VM.
    const guards = vm ? guardsOf(vm, resources.filter((c) => c.type === LOCAL_COMMAND)) : {};
    const others = resources.filter((c) => c !== vm && ![VOLUME, ATTACHMENT, COMMAND, LOCAL_COMMAND].includes(c.type) && c.action !== "same");
    const suffix = (c: ResourceChange) => c.name.slice(host.length + 1);

    if (vm?.action === "create") {
        return [{ does: "new host: create the VM, then run every step on it", stake: "", level: 1 }, ...volumes.flatMap(volumeRows)];
    }
    // A protected VM (a BBB server of the prod stack) is neither deleted nor replaced: Pulumi refuses, and so
    // does its removal from Scalelite. A replacement goes ahead once this run lifts the protection; a resource
    // that leaves the program keeps the protection of its last run, which only an earlier run can lift
    // (pulumi/pulumi pkg/resource/deploy: step_generator.go `new.Protect && old.Protect`, step.go DeleteStep).
    if (vm?.action === "delete" && vm.before?.protect) {
        return [
            {
                does: "nothing: deleting the VM is refused, it is protected (the prod stack)",
                stake: "`pulumi up` stops there; to go ahead, run `pulumi up` with allowDestructiveChanges: true first (it lifts the protection), then this change",
                level: 1,
            },
        ];
    }
    if (vm?.action === "replace" && vm.before?.protect && vm.after?.protect) {
        return [
            {
                does: "nothing: replacing the VM is refused, it is protected (the prod stack)",
                stake: "`pulumi up` stops there; set allowDestructiveChanges: true (in this change or before) to go ahead",
                level: 1,
            },
        ];
    }
    if (vm?.action === "delete") {
        // Its other steps go with it: only those with a removal action run, before the VM goes.
        // (A server's retire step, which takes it out of service before its VM goes, is the removal's own first part.)
        const removed = steps.filter((s) => s.action === "delete" && s.before!.inputs.delete && !/\sretire\s/.test(s.before!.inputs.delete));
        const removal = removed.map((s) => removedStepRow(s, suffix(s), role, ctx));
        // Only Scalelite's removal (scalelite-node) waits for the server's meetings; an exporter's removal does not.
        const leavesScalelite = removed.some((s) => stdinParts(s.before!.inputs.stdin).inputs.STEP === "scalelite-node");
        const stake =
            role !== "bbb"
                ? "what runs there stops"
                : leavesScalelite
                  ? "only once that removal succeeded"
                  : meetingsStake("the VM is deleted", guards.remove);
        return [...removal, { does: "delete the host: its VM and boot volume", stake, level: role === "bbb" ? 2 : 1 }, ...volumes.flatMap(volumeRows)];
    }
    const boot = resources.find((c) => c.type === VOLUME && c.name === `${host}-boot`);
    const rows = [...(vm ? vmRows(vm, role, volumes.length > 0, guards, boot) : []), ...volumes.flatMap(volumeRows)];
    if (vm?.action === "replace") return rows;
    // A new or deleted attachment goes with its volume; one replaced alone is a detach and an attach.
    if (attachments.some((c) => c.action === "replace")) {
        rows.push({ does: "detach the data volume and attach it again", stake: "what keeps its data there stops meanwhile", level: 1 });
    }
    // A resource retained on delete (the backups' containers) is only forgotten by Pulumi: it stays in the cloud.
    const retained = (c: ResourceChange) => c.action === "delete" && c.before?.retainOnDelete === true;
    const network = others.map((c) => (retained(c) ? `forget ${quote(suffix(c))} (${c.type.split(":").pop()}: kept in the cloud, with its data)` : `${c.action} ${quote(suffix(c))} (${c.type.split(":").pop()})`));
    if (network.length) {
        const moved = others.some((c) => c.action === "replace" && /floatingIp:|port:/.test(c.type));
        rows.push({ does: network.join(", "), stake: moved ? "its address changes" : "", level: 1 });
    }
    for (const step of steps) rows.push(step.action === "delete" ? removedStepRow(step, suffix(step), role, ctx) : stepRow(step, suffix(step), host, ctx));
    return rows;
}

/** Rows for what changes beside the hosts: new secrets (and the outputs they reach), other resources, outputs. */
function stackRows(before: Run, after: Run, shared: ResourceChange[]): Row[] {
    const rows: Row[] = [];
    const secrets = shared.filter((c) => RANDOM.includes(c.type) && (c.action === "replace" || c.action === "create"));
    if (secrets.length) {
        const values = secrets.flatMap((c) => valuesOf(c.after!));
        const outputs = after.secretOutputs.filter((o) => strings(after.outputs[o]).some((s) => values.some((v) => carries(s, v))));
        const inputs = [...new Set(secrets.flatMap((c) => c.changed))];
        rows.push({
            does: `new secrets ${list(secrets.map((c) => c.name))}${inputs.length ? ` (${list(inputs)} changed)` : ""}`,
            stake: outputs.length ? `outputs ${list(outputs)} change: consumers need the new values` : "",
            level: 1,
        });
    }
    // A restic password that goes (its host keeps no database any more) leaves the backups its container keeps unreadable.
    for (const c of shared.filter((c) => c.action === "delete" && c.name.endsWith("-backup-password"))) {
        rows.push({
            does: `delete ${quote(c.name)}: the restic password of ${c.name.replace(/-backup-password$/, "")}'s backups`,
            stake: "**the backups its Swift container keeps can no longer be read**: save it first (`pulumi stack output --show-secrets backupPasswords`)",
            level: 2,
        });
    }
    const firewall = shared.filter((c) => FIREWALL.includes(c.type) && c.action !== "same");
    if (firewall.length) rows.push({ does: `security groups: ${firewall.length} resources change`, stake: "see `npm run firewall:diff`", level: 1 });
    // A bake's builder's disk comes and goes with its golden volume (its row).
    const builderDisk = (c: ResourceChange) => c.type === VOLUME && (c.after ?? c.before)!.inputs.metadata?.purpose === "builder";
    for (const c of shared.filter((c) => !RANDOM.includes(c.type) && !FIREWALL.includes(c.type) && c.action !== "same" && !builderDisk(c))) {
        rows.push(c.type === VOLUME && ofBake(c) ? goldenRow(c) : { does: `${c.action} ${quote(c.name)} (${c.type.split(":").pop()})`, stake: "", level: 1 });
    }
    const plain = Object.keys(after.outputs).filter((o) => !after.secretOutputs.includes(o) && JSON.stringify(after.outputs[o]) !== JSON.stringify(before.outputs[o]));
    if (plain.length && before.resources.length) rows.push({ does: `outputs ${list(plain)} change`, stake: "", level: 0 });
    return rows;
}

/** A golden volume made (a bake: its builder comes first) or deleted (no server boots from it any more). */
function goldenRow(c: ResourceChange): Row {
    const about = String((c.after ?? c.before)!.inputs.description ?? "").split(";")[0];
    if (c.action === "create") {
        return {
            does: `bake golden volume ${quote(c.name)} (${about}): a builder VM installs BigBlueButton's packages (about 30 min), new servers boot from clones of it`,
            stake: "the builder is deleted by the next `pulumi up`",
            level: 1,
        };
    }
    return {
        does: `${c.action} golden volume ${quote(c.name)} (${about})${c.action === "delete" ? " and the builder's disk it was cloned from" : ""}`,
        stake: c.action === "delete" ? "no server boots from it any more" : "",
        level: 1,
    };
}

/** The hosts of a run: one VM each, named `<host>-vm`, its role in the VM's metadata. */
function hostsOf(run: Run): [string, string][] {
    return run.resources.filter((r) => r.type === INSTANCE).map((r) => [r.name.replace(/-vm$/, ""), String(r.inputs.metadata?.role ?? "")]);
}

/** What `pulumi up` does to each host going from the `before` run to `after`, and what it puts at stake. */
export function assessImpact(before: Run, after: Run): Impact {
    const changes = resourceChanges(before, after);
    const hosts = new Map([...hostsOf(before), ...hostsOf(after)]);
    // The working tree's hosts first, then those it removes.
    const order = [...new Set([...hostsOf(after).map(([h]) => h), ...hosts.keys()])];
    const names = [...hosts.keys()].sort((a, b) => b.length - a.length);
    const ownerOf = (c: ResourceChange) =>
        RANDOM.includes(c.type) || FIREWALL.includes(c.type) ? undefined : names.find((h) => c.name.startsWith(`${h}-`));
    const setup = [...changes.values()].find((c) => c.after && c.type === COMMAND && stdinParts(c.after.inputs.stdin).inputs.STEP === "scalelite-setup");
    const ctx: Context = {
        changes,
        hostByAddress: new Map(((after.outputs.hosts ?? []) as { name: string; ipv4: string }[]).map((h) => [h.ipv4, h.name])),
        forceRemove: setup !== undefined && stdinParts(setup.after!.inputs.stdin).inputs.FORCE_REMOVE === "true",
    };
    const all = [...changes.values()];
    const impacts = order.map((host): HostImpact => {
        const role = hosts.get(host)!;
        return { host, role, rows: hostRows(host, role, all.filter((c) => ownerOf(c) === host), ctx) };
    });
    const stack = stackRows(before, after, all.filter((c) => ownerOf(c) === undefined));
    const levelOf = (rows: Row[]) => Math.max(0, ...rows.map((r) => r.level)) as Level;
    return {
        hosts: impacts,
        stack,
        meetingsAtRisk: impacts.filter((h) => h.role === "bbb" && levelOf(h.rows) === 2).map((h) => h.host),
        bbbServers: [...hosts.values()].filter((role) => role === "bbb").length,
        dataAtRisk: all.filter((c) => isDataVolume(c) && (c.action === "delete" || c.action === "replace")).map((c) => c.name),
        level: levelOf([...impacts.flatMap((h) => h.rows), ...stack]),
    };
}

/** The report: a summary line, then per host (hosts with the same rows together) what happens and what is at stake. */
export function renderImpact(stack: string, base: string, impact: Impact): string {
    const title = `### Impact on stack \`${stack}\` against \`${base}\``;
    const summary: string[] = [];
    if (impact.meetingsAtRisk.length) {
        summary.push(`**Meetings at risk** on ${impact.meetingsAtRisk.length} of ${impact.bbbServers} BigBlueButton servers: ${impact.meetingsAtRisk.join(", ")}.`);
    }
    if (impact.dataAtRisk.length) summary.push(`**Data volumes deleted or replaced**: ${impact.dataAtRisk.join(", ")}.`);
    if (impact.level === 1) summary.push("Steps run again or hosts change; no meeting is at risk.");
    if (impact.level === 0) summary.push("Nothing happens on any host.");
    summary.push(`Exit code ${impact.level}.`);

    const groups = new Map<string, { hosts: string[]; role: string; rows: Row[] }>();
    for (const h of impact.hosts.filter((h) => h.rows.length)) {
        const key = JSON.stringify([h.role, h.rows]);
        const group = groups.get(key) ?? { hosts: [], role: h.role, rows: h.rows };
        group.hosts.push(h.host);
        groups.set(key, group);
    }
    const rows = [...groups.values()].flatMap((g) => g.rows.map((r) => [g.hosts.join(", "), g.role, r.does, r.stake]));
    const parts = [title, summary.join(" ")];
    if (rows.length) parts.push(table(["host", "role", "what `pulumi up` does", "at stake"], rows));
    const idle = impact.hosts.filter((h) => !h.rows.length).map((h) => h.host);
    if (idle.length && rows.length) parts.push(`Nothing happens on ${idle.join(", ")}.`);
    if (impact.stack.length) parts.push(["Beside the hosts:", ...impact.stack.map((r) => `- ${r.does}${r.stake ? `: ${r.stake}` : ""}`)].join("\n"));
    return parts.join("\n\n");
}

/** A run with nothing in it: the side of a ref that has no such stack. */
export const NO_RUN: Run = { resources: [], outputs: {}, secretOutputs: [], logs: [] };

export const USAGE = `usage: npm run impact -- --stack <name> [--base <git-ref>]
Says what pulumi up would do to each host of the stack, going from Pulumi.<name>.yaml at <git-ref> (HEAD) to
the working tree, and what is at stake for meetings and data, offline. Exit code 0: nothing happens;
1: changes, no meeting at risk; 2: meetings at risk (or data); 3: error.`;

export async function main(args: string[]): Promise<number> {
    if (helpRequested(args, USAGE)) return 0;
    const stack = argument(args, "--stack");
    if (!stack) {
        console.error(USAGE.split("\n")[0]);
        return EXIT_ERROR;
    }
    const base = argument(args, "--base") ?? "HEAD";
    const { before, after } = await evaluateBoth(base, stack);
    const impact = assessImpact(before ?? NO_RUN, after);
    console.log(renderImpact(stack, base, impact));
    return impact.level;
}

if (require.main === module) {
    main(process.argv.slice(2)).then(
        (code) => process.exit(code),
        (err) => {
            console.error(`impact: ${err instanceof Error ? err.message : String(err)}`);
            process.exit(EXIT_ERROR);
        },
    );
}
