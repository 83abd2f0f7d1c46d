// The tools' command lines (npm run plan, impact, firewall:diff, bench, coverage): `--help` or `-h` prints the
// tool's usage and exits 0 before anything runs.
export function helpRequested(args: string[], usage: string): boolean {
    if (!args.includes("--help") && !args.includes("-h")) return false;
    console.log(usage);
    return true;
}
