// npm run coverage's own logic: which lines of a script count as commands, and how traces map back to them.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { commandsOf, renderCoverage, scriptCoverage, tracedLines } from "../scripts/coverage";

test("a here-string (<<<\"word\") is no here-document: the commands after it count", () => {
    const commands = commandsOf(['cat <<<"access_log off;" || fail "x"', "echo next", 'read -r a <<<"$b"', "echo last", ""].join("\n"));
    expect(commands.map((c) => c.first)).toEqual([1, 2, 3, 4]);
});

test("commands: not comments, blank lines, here-document bodies or block keywords; a continued command is one", () => {
    const script = [
        "#!/usr/bin/env bash", // 1
        "# a comment", // 2
        "x=1", // 3
        "if [ -n \"$x\" ]; then", // 4
        "  fail \"a\" \\", // 5
        "    \"b\"", // 6
        "fi", // 7
        "cat <<EOF", // 8
        "not a command", // 9
        "EOF", // 10
        "case $x in", // 11
        "  1)", // 12
        "    echo one ;;", // 13
        "esac", // 14
        "f() {", // 15
        "  true", // 16
        "}", // 17
        "list=(", // 18
        "  a b", // 19
        ")", // 20
        "while read -r l; do", // 21
        "  :", // 22
        "done <<<\"$x\"", // 23
    ].join("\n");
    expect(commandsOf(script).map((c) => [c.first, c.last])).toEqual([[3, 3], [4, 4], [5, 6], [8, 8], [11, 11], [13, 13], [16, 16], [18, 20], [21, 21], [22, 22]]);
});

test("traces: a line of the step's stdin maps to its script; a fail site counts only when fail itself ran", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bbb-coverage-test-"));
    try {
        const trace = path.join(dir, "trace-1");
        fs.writeFileSync(trace, "+3:STEP=x\n+12:true\n++13:fail 'no'\n+40:echo outside\n");
        fs.writeFileSync(path.join(dir, "runs.jsonl"), `${JSON.stringify({ trace, segments: [{ script: "x.sh", start: 10, lines: 20 }] })}\n`);
        const { ran, failed } = tracedLines(dir);
        expect([...ran.get("x.sh")!].sort()).toEqual([3, 4]);
        expect([...failed.get("x.sh")!]).toEqual([4]);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test("fail sites (also on a line of their own after `||`, or in a case arm): one marked with its reason on the line above is listed apart with it; an unmarked one still counts; a reached mark is stale", () => {
    const script = [
        "#!/usr/bin/env bash", // 1
        "mkdir -p /x || fail \"cannot create /x\"", // 2
        "# coverage: not reached in tests: needs the kernel to refuse a removal root may always make", // 3
        "rm -rf /x || fail \"cannot remove /x\"", // 4
        "# a comment that is no mark", // 5
        "ln -s /x /y || fail \"cannot link /y\"", // 6
        "# coverage: not reached in tests: a mark that a test reaches all the same", // 7
        "[ -d /y ] ||", // 8
        "  fail \"/y is gone\"", // 9
        "case $1 in a) ;; *) fail \"not a\" ;; esac", // 10
    ].join("\n");
    const ran = new Set([2, 4, 6, 8, 9, 10]);
    const row = scriptCoverage("x.sh", script, ran, new Set([9]));
    expect(row.unreachedFails).toEqual([
        { line: 2, text: 'mkdir -p /x || fail "cannot create /x"' },
        { line: 6, text: 'ln -s /x /y || fail "cannot link /y"' },
        { line: 10, text: 'case $1 in a) ;; *) fail "not a" ;; esac' },
    ]);
    expect(row.markedFails).toEqual([{ line: 4, text: 'rm -rf /x || fail "cannot remove /x"', reason: "needs the kernel to refuse a removal root may always make" }]);
    expect(row.staleMarks).toEqual([{ line: 9, text: 'fail "/y is gone"' }]);
    const text = renderCoverage([row]);
    expect(text).toContain("every fail site reached: NOT MET (3 not reached, below) (1 listed with the reason no test reaches them, below)");
    expect(text).toContain("  x.sh:4  rm -rf /x || fail \"cannot remove /x\"\n      reason: needs the kernel to refuse a removal root may always make");
    expect(text).toContain("fail sites marked as not reached that a test reaches (remove their mark):\n  x.sh:9  fail \"/y is gone\"");
    // Once the unmarked ones are reached, the goal is met, the marked one still listed with its reason.
    const met = renderCoverage([scriptCoverage("x.sh", script, ran, new Set([2, 6, 9, 10]))]);
    expect(met).toContain("every fail site reached: met (1 listed with the reason no test reaches them, below)");
    expect(met).toContain("reason: needs the kernel to refuse a removal root may always make");
});
