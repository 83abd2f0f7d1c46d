// Running a step of scripts/remote/ on a host over SSH.
//
// The command line is always `sudo -n bash -s`: it never carries an input or a secret, so the command text
// Pulumi prints on a failure is harmless. Inputs and the script travel on stdin, inputs first as quoted
// shell assignments, then lib.sh and the script inside `{ ... } </dev/null` so that bash has read all of
// it before anything runs and no command in it can swallow the rest of stdin. Because stdin holds both the inputs
// and the script, a changed input or a changed script runs the step again (update); nothing else does.
// The instance id rides in `triggers`, so a replaced VM is provisioned again. A step may also run on
// delete, with an action word as its argument (the delete gets the stdin of the step's last run).
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";

export const SSH_USER = "ubuntu";
export const REMOTE_COMMAND = "sudo -n bash -s";
/** scripts/remote/: beside components/ in the source tree, two levels up from a compiled copy in bin/. */
export const SCRIPTS_DIR = [path.join(__dirname, "..", "scripts", "remote"), path.join(__dirname, "..", "..", "scripts", "remote")].find(
    (dir) => fs.existsSync(dir),
)!;

/** SSH dial settings: a fresh VM takes minutes before sshd answers. */
const DIAL = { dialErrorLimit: 90, perDialTimeout: 10 };

export function connectionTo(host: pulumi.Input<string>, privateKey: pulumi.Input<string>): command.types.input.remote.ConnectionArgs {
    return { host, user: SSH_USER, privateKey, ...DIAL };
}

export function shellQuote(value: string): string {
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

const scripts = new Map<string, string>();

/** A script of scripts/remote/ (read once: every step of every host sends one). */
export function readScript(name: string): string {
    if (!scripts.has(name)) scripts.set(name, fs.readFileSync(path.join(SCRIPTS_DIR, `${name}.sh`), "utf8"));
    return scripts.get(name)!;
}

/**
 * The stdin of a step: its inputs (and STEP, its name) as shell assignments, then lib.sh and its script.
 * Pure but for reading the two files; tests pipe it to bash.
 */
export function stepStdin(step: string, inputs: Record<string, string>, script = readScript(step)): string {
    const lines = Object.entries({ STEP: step, ...inputs }).map(([name, value]) => {
        if (!/^[A-Z][A-Z0-9_]*$/.test(name)) throw new Error(`remote step input name ${name} is not an upper-case shell name`);
        if (value.includes("\0")) throw new Error(`remote step input ${name} contains a NUL byte`);
        return `${name}=${shellQuote(value)}`;
    });
    return `${lines.join("\n")}\n{\n${readScript("lib")}\n${script}\n} </dev/null\n`;
}

export interface RemoteStepArgs {
    /** File name (without .sh) in scripts/remote/. */
    step: string;
    connection: command.types.input.remote.ConnectionArgs;
    /** Named inputs; a secret input keeps the whole stdin secret. */
    inputs: Record<string, pulumi.Input<string>>;
    /** Replacing any of these runs the step anew (e.g. the instance id). */
    triggers: pulumi.Input<unknown>[];
    /** A word the step gets as its first argument on create and update (e.g. `maintenance`). */
    action?: string;
    /** A word for create only, instead of `action` (create runs when the step is new, or replaced). */
    createAction?: string;
    /**
     * When the resource is deleted, run the step again (with the inputs it last ran with) and this word as
     * its first argument, e.g. `remove`. Without it, deleting the resource runs nothing.
     */
    deleteAction?: string;
}

export function remoteStep(name: string, args: RemoteStepArgs, opts: pulumi.CustomResourceOptions): command.remote.Command {
    const stdin = pulumi.all(args.inputs).apply((inputs) => stepStdin(args.step, inputs as Record<string, string>));
    const line = (word?: string) => `${REMOTE_COMMAND}${word ? ` ${word}` : ""} # ${args.step}`;
    return new command.remote.Command(
        name,
        {
            connection: args.connection,
            create: line(args.createAction ?? args.action),
            update: line(args.action),
            ...(args.deleteAction ? { delete: line(args.deleteAction) } : {}),
            stdin,
            triggers: args.triggers,
            // Stock sshd refuses environment variables (AcceptEnv); passing the previous output would
            // only add a warning to every update.
            addPreviousOutputInEnv: false,
        },
        opts,
    );
}
