// Guards on a BBB server's VM, run where `pulumi up` runs (node is there: it runs this program), asking the
// server's API over HTTPS how many meetings it hosts, as lib.sh's guard_meetings does on the host:
//   - before a resize or replacement the configuration asks for (a new flavor or boot volume size, single
//     topology): the VM depends on the check, which runs when those change;
//   - before the VM is deleted or replaced for any reason (`pulumi up --replace`, scale-down): the check's
//     delete, which Pulumi runs before the VM's (it depends on the VM).
// While meetings run, or when the API does not say, it refuses, unless the force setting is on: as the stack
// has it now (`pulumi config get`, since a delete runs with the inputs of the step's last run, and a server
// that left the program gets none; unset or unreadable is false), or as it was at the step's last run where
// there is no Pulumi CLI.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";

/**
 * The check, as node code: stdin is JSON { fqdn, secret, what, force, forceKey, stack, watched? }. The secret goes
 * only into the checksum. With `watched` (the values whose change it guards), its stdout is those values and
 * nothing else: the command's previous stdout (PULUMI_COMMAND_STDOUT, unset on create) tells whether they
 * changed, so that nothing is checked on creation, nor when only other inputs changed (a new secret the
 * server does not answer to yet). Messages go to stderr. Exit 0: no meeting (or forced); 1: refused.
 */
export const MEETINGS_CHECK = `
const crypto = require("crypto");
const https = require("https");
let input = "";
process.stdin.on("data", (d) => (input += d)).on("end", () => {
  const { fqdn, secret, what, force, forceKey, stack, watched } = JSON.parse(input);
  const now = watched === undefined ? "" : JSON.stringify(watched);
  const previous = process.env.PULUMI_COMMAND_STDOUT;
  if (watched !== undefined && (previous === undefined || previous.trim() === now)) return console.log(now);
  // The setting as the stack has it now (a key that is not set, or any error of the CLI: false); as it was at
  // the step's last run only where there is no Pulumi CLI at all.
  const forced = () => {
    try {
      const answer = require("child_process").execFileSync("pulumi", ["config", "get", forceKey, "--stack", stack], { encoding: "utf8", timeout: 30000, stdio: ["ignore", "pipe", "ignore"] });
      return answer.trim() === "true";
    } catch (err) {
      return err.code === "ENOENT" ? force : false;
    }
  };
  const decide = (count, reason) => {
    if (count === 0) console.error(fqdn + " hosts no meeting: " + what);
    else if (forced()) console.error(forceKey + " is set: " + what + " although " + reason);
    else {
      console.error(reason + "; " + what + " would end them. Nothing was changed. Run pulumi up again once they have ended, or set " +
        forceKey + ": true (pulumi config set " + forceKey + " true; pulumi up) to go ahead.");
      process.exit(1);
    }
    if (now) console.log(now);
  };
  const sum = crypto.createHash("sha1").update("getMeetings" + secret).digest("hex");
  const request = https.get("https://" + fqdn + "/bigbluebutton/api/getMeetings?checksum=" + sum, { timeout: 20000 }, (res) => {
    let body = "";
    res.setEncoding("utf8").on("data", (d) => (body += d)).on("end", () => {
      if (!body.includes("<returncode>SUCCESS</returncode>")) return decide(-1, "cannot tell whether meetings run on " + fqdn + " (its API does not answer SUCCESS)");
      const count = (body.match(/<meeting>/g) || []).length;
      decide(count, count + " meeting(s) running on " + fqdn);
    });
  });
  request.on("timeout", () => request.destroy(new Error("no answer within 20 s")));
  request.on("error", (err) => decide(-1, "cannot tell whether meetings run on " + fqdn + " (" + err.message + ")"));
});
`;

export interface MeetingsCheckArgs {
    fqdn: string;
    /** The stack, whose force setting the check asks the Pulumi CLI for. */
    stack: string;
    /** The API secret the server answers to. */
    secret: pulumi.Input<string>;
    /** What would end the meetings, e.g. "resizing the VM (it reboots)". */
    what: string;
    force: boolean;
    /** The setting that forces it, named in the message. */
    forceKey: string;
}

function stdin(args: MeetingsCheckArgs, more: Record<string, unknown> = {}): pulumi.Output<string> {
    return pulumi
        .all([args.secret])
        .apply(([secret]) => JSON.stringify({ fqdn: args.fqdn, secret, what: args.what, force: args.force, forceKey: args.forceKey, stack: args.stack, ...more }));
}

const NODE = ["node", "-e"];

/** Checked before the VM changes as `watched` asks; nothing on creation. The VM depends on it. */
export function checkBeforeChange(name: string, args: MeetingsCheckArgs & { watched: Record<string, unknown> }, opts: pulumi.CustomResourceOptions) {
    return new command.local.Command(
        name,
        { interpreter: NODE, create: MEETINGS_CHECK, update: MEETINGS_CHECK, stdin: stdin(args, { watched: args.watched }) },
        opts,
    );
}

/** Checked when the VM is deleted or replaced: Pulumi deletes this first, since it follows the VM's id. */
export function checkBeforeDelete(name: string, args: MeetingsCheckArgs & { instanceId: pulumi.Input<string> }, opts: pulumi.CustomResourceOptions) {
    return new command.local.Command(
        name,
        { interpreter: NODE, create: "0", delete: MEETINGS_CHECK, stdin: stdin(args), triggers: [args.instanceId] },
        opts,
    );
}
