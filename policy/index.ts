// The bbb policy pack: `pulumi preview --policy-pack policy` (from the project root) loads this folder.
// Constructing the PolicyPack starts the analyzer's gRPC server for the engine, so nothing else imports
// this file; the policies themselves are in policies.ts and rules.ts.
import { PolicyPack } from "@pulumi/policy";
import { bbbPolicies } from "./policies";

export const pack = new PolicyPack("bbb", {
    description: "bbb: firewall rules within the port matrix, no proxied DNS, protected prod data, recordings off under strict privacy.",
    enforcementLevel: "mandatory",
    policies: bbbPolicies(process.env),
});
