// npm run coverage's own logic: which lines of a script count as commands, and how traces map back to them.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { commandsOf, tracedLines } from "../scripts/coverage";

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
