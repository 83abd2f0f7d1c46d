// The rules of policy/rules.ts as CrossGuard resource policies. No side effect: policy/index.ts hands them
// to a PolicyPack (whose constructor starts the analyzer's gRPC server); the tests use them directly.
import * as cloudflare from "@pulumi/cloudflare";
import * as command from "@pulumi/command";
import * as openstack from "@pulumi/openstack";
import { Policies, PolicyResource, ReportViolation, ResourceValidationArgs, validateResourceOfType } from "@pulumi/policy";
import {
    DESTRUCTIVE_KEY,
    PROD_STACK,
    ResourceDescription,
    STRICT_PRIVACY,
    TYPES,
    privacyRecordingViolations,
    privacySetting,
    destructiveChangesAllowed,
    proxiedDnsViolations,
    stackFromUrn,
    unprotectedProdServerViolations,
    unprotectedProdVolumeViolations,
    widerThanMatrixViolations,
    worldAdminPortViolations,
    worldInPiecesViolations,
} from "./rules";

export const POLICY_NAMES = {
    worldAdminPort: "no-admin-port-open-to-world",
    worldInPieces: "no-port-open-to-world-in-pieces",
    widerThanMatrix: "no-rule-wider-than-port-matrix",
    proxiedDns: "no-proxied-dns-record",
    prodVolume: "no-unprotected-data-volume-in-prod",
    prodServer: "no-unprotected-bbb-server-in-prod",
    recordings: "recordings-off-when-privacy-strict",
} as const;

// The provider inputs the rules read, checked against the providers' args at compile time.
export const SEC_GROUP_RULE_FIELDS: readonly (keyof openstack.networking.SecGroupRuleArgs)[] = [
    "direction",
    "protocol",
    "portRangeMin",
    "portRangeMax",
    "remoteIpPrefix",
    "remoteGroupId",
];
export const DNS_RECORD_FIELDS: readonly (keyof cloudflare.DnsRecordArgs)[] = ["proxied"];
export const REMOTE_COMMAND_FIELDS: readonly (keyof command.remote.CommandArgs)[] = ["create", "stdin"];
export const INSTANCE_FIELDS: readonly (keyof openstack.compute.InstanceArgs)[] = ["metadata"];

/** What the pack reads of its environment: the engine sets PULUMI_CONFIG (stack config) and PULUMI_STACK. */
export type PolicyEnv = Readonly<Record<string, string | undefined>>;

/** A resource as the rules see it. `props` is the policy SDK's proxy: rules read fields lazily. */
function describe(args: ResourceValidationArgs, env: PolicyEnv): ResourceDescription {
    return {
        type: args.type,
        urn: args.urn,
        name: args.name,
        props: args.props,
        protect: args.opts?.protect,
        stack: stackFromUrn(args.urn) ?? env.PULUMI_STACK,
    };
}

function reportAll(messages: string[], reportViolation: ReportViolation): void {
    for (const message of messages) reportViolation(message);
}

/**
 * The pack's policies. `recordings-off-when-privacy-strict` is there only when the stack's privacy setting
 * can be known (privacySetting: `bbb:privacy` in PULUMI_CONFIG, or the schema's default once the program
 * declares the key); it then judges the bbb-configure steps' PROPERTIES.
 */
export function bbbPolicies(env: PolicyEnv = process.env): Policies {
    const destructive = destructiveChangesAllowed(env.PULUMI_CONFIG);
    const policies: Policies = [
        {
            name: POLICY_NAMES.worldAdminPort,
            description:
                "An ingress security group rule open to the world (0.0.0.0/0, ::/0 or no source) must be exactly a world row of the port matrix (components/ports.ts); SSH and anything else is refused.",
            enforcementLevel: "mandatory",
            validateResource: validateResourceOfType(openstack.networking.SecGroupRule, (_rule, args, reportViolation) =>
                reportAll(worldAdminPortViolations(describe(args, env)), reportViolation),
            ),
        },
        {
            name: POLICY_NAMES.worldInPieces,
            description:
                "Ingress rules of one security group for the same protocol and ports must not reach every public address together (0.0.0.0/1 and 128.0.0.0/1), unless the port matrix opens those ports to the world.",
            enforcementLevel: "mandatory",
            validateStack: (args, reportViolation) =>
                reportAll(
                    worldInPiecesViolations(
                        args.resources.filter((r) => r.type === TYPES.secGroupRule).map((r: PolicyResource) => ({ type: r.type, urn: r.urn, name: r.name, props: r.props, parent: r.parent?.urn })),
                    ),
                    reportViolation,
                ),
        },
        {
            name: POLICY_NAMES.widerThanMatrix,
            description:
                "An ingress security group rule must name a protocol and a port range that are exactly a row of the port matrix (components/ports.ts), whatever its source.",
            enforcementLevel: "mandatory",
            validateResource: validateResourceOfType(openstack.networking.SecGroupRule, (_rule, args, reportViolation) =>
                reportAll(widerThanMatrixViolations(describe(args, env)), reportViolation),
            ),
        },
        {
            name: POLICY_NAMES.proxiedDns,
            description: "DNS records of the hosts must not be proxied by Cloudflare (media, TURN and the installers need the hosts' own addresses).",
            enforcementLevel: "mandatory",
            validateResource: validateResourceOfType(cloudflare.DnsRecord, (_record, args, reportViolation) =>
                reportAll(proxiedDnsViolations(describe(args, env)), reportViolation),
            ),
        },
        {
            name: POLICY_NAMES.prodVolume,
            description: `Data volumes of the ${PROD_STACK} stack must be protected from deletion (protectData), unless ${DESTRUCTIVE_KEY} is true.`,
            enforcementLevel: "mandatory",
            validateResource: validateResourceOfType(openstack.blockstorage.Volume, (_volume, args, reportViolation) =>
                reportAll(unprotectedProdVolumeViolations(describe(args, env), destructive), reportViolation),
            ),
        },
        {
            name: POLICY_NAMES.prodServer,
            description: `BigBlueButton servers' VMs of the ${PROD_STACK} stack must be protected from replacement and deletion, unless ${DESTRUCTIVE_KEY} is true.`,
            enforcementLevel: "mandatory",
            validateResource: validateResourceOfType(openstack.compute.Instance, (_instance, args, reportViolation) =>
                reportAll(unprotectedProdServerViolations(describe(args, env), destructive), reportViolation),
            ),
        },
    ];
    const privacy = privacySetting(env.PULUMI_CONFIG);
    if (privacy !== undefined) {
        policies.push({
            name: POLICY_NAMES.recordings,
            description: `With privacy ${STRICT_PRIVACY}, the BigBlueButton properties the configure step writes must turn recordings off (disableRecordingDefault=true).`,
            enforcementLevel: "mandatory",
            validateResource: validateResourceOfType(command.remote.Command, (_step, args, reportViolation) =>
                reportAll(privacyRecordingViolations(privacy, describe(args, env)), reportViolation),
            ),
        });
    }
    return policies;
}
