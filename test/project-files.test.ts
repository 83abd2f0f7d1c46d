// The files users read and the CLI reads must agree with the code: Pulumi.yaml's declarations and
// defaults, the stack files, the README's config table and its test command, and .ci/run.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { satisfies } from "semver";
import { parse } from "yaml";
import { CONFIG_KEYS, CONFIG_SCHEMA, OFFLINE_PRIVATE_KEY, parseConfig } from "../components/config";
import { main as schemaMain, pulumiYaml, readmeWithTable } from "../scripts/schema";

const root = path.join(__dirname, "..");
const read = (file: string) => fs.readFileSync(path.join(root, file), "utf8");
const project = parse(read("Pulumi.yaml"));

describe("Pulumi.yaml", () => {
    test("is the nodejs project bbb", () => {
        expect(project.name).toBe("bbb");
        expect(project.runtime.name).toBe("nodejs");
    });

    test("is what npm run schema writes from the schema (declarations, defaults, descriptions, secrecy)", () => {
        expect(read("Pulumi.yaml")).toBe(pulumiYaml());
    });

    test("declares every key the CLI can type, with the schema's default; lists and objects without one in its header", () => {
        for (const key of CONFIG_KEYS) {
            const spec = CONFIG_SCHEMA[key];
            const declared = project.config[key];
            if (declared === undefined) {
                expect([key, spec.default, ["array", "object"].includes(spec.type)]).toEqual([key, undefined, true]);
                expect(read("Pulumi.yaml")).toContain(`#   bbb:${key}: `);
            } else if ("value" in declared) {
                expect([key, declared.value]).toEqual([key, spec.default]);
            } else {
                expect([key, declared.type, declared.default, declared.secret ?? false]).toEqual([key, spec.type, spec.default, spec.secret ?? false]);
            }
        }
    });

    test("its template makes pulumi new ask for exactly the required keys, secrets as secrets", () => {
        const asked = project.template.config as Record<string, { description: string; secret?: boolean }>;
        const requiredKeys = CONFIG_KEYS.filter((k) => CONFIG_SCHEMA[k].default === undefined && !CONFIG_SCHEMA[k].optional);
        expect(Object.keys(asked)).toEqual(requiredKeys);
        for (const key of requiredKeys) expect([key, asked[key].secret ?? false]).toEqual([key, CONFIG_SCHEMA[key].secret ?? false]);
    });

    test("is a project the CLI accepts (pkg/workspace/project.go, Project.Validate, and the project schema)", () => {
        expect(Object.keys(project).sort()).toEqual(["config", "description", "name", "runtime", "template"]);
        for (const [key, declared] of Object.entries(project.config as Record<string, Record<string, unknown>>)) {
            const problems: string[] = [];
            if ("value" in declared && "default" in declared) problems.push("both a default and a value");
            if ("value" in declared && Object.keys(declared).length !== 1) problems.push("value beside other attributes");
            if (!("value" in declared)) {
                if (!["string", "integer", "boolean", "array"].includes(String(declared.type))) problems.push(`type ${String(declared.type)}`);
                if (declared.type === "array" && (declared.items as { type?: string } | undefined)?.type !== "string") problems.push("an array without items");
                if (declared.type !== "array" && "items" in declared) problems.push("items on a non-array");
                if (declared.secret === true && "default" in declared) problems.push("a secret with a default");
            }
            expect([key, problems]).toEqual([key, []]);
        }
        for (const [key, asked] of Object.entries(project.template.config as Record<string, Record<string, unknown>>)) {
            expect([key, typeof asked.description, Object.keys(asked).every((a) => ["description", "default", "secret"].includes(a))]).toEqual([key, "string", true]);
        }
    });

    test("npm run schema -- --check says when a file differs from the schema, and npm run schema rewrites it", () => {
        const copy = fs.mkdtempSync(path.join(os.tmpdir(), "schema-"));
        const errors = jest.spyOn(console, "error").mockImplementation(() => undefined);
        try {
            for (const file of ["Pulumi.yaml", "README.md"]) fs.copyFileSync(path.join(root, file), path.join(copy, file));
            expect(schemaMain(["--check"], copy)).toBe(0);
            fs.writeFileSync(path.join(copy, "Pulumi.yaml"), read("Pulumi.yaml").replace("default: strict", "default: standard"));
            expect(schemaMain(["--check"], copy)).toBe(1);
            expect(errors).toHaveBeenCalledWith("schema: Pulumi.yaml differs from components/config/schema.ts; run npm run schema");
            expect(schemaMain([], copy)).toBe(0);
            expect(fs.readFileSync(path.join(copy, "Pulumi.yaml"), "utf8")).toBe(read("Pulumi.yaml"));
            // As pulumi new leaves it: another name, no comments, its own pulumi:tags. The name and tags stay.
            const renamed = parse(read("Pulumi.yaml"));
            renamed.name = "my-bbb";
            renamed.config["pulumi:tags"] = { value: { "pulumi:template": "https://github.com/example/bbb" } };
            fs.writeFileSync(path.join(copy, "Pulumi.yaml"), require("yaml").stringify(renamed));
            expect(schemaMain([], copy)).toBe(0);
            const written = parse(fs.readFileSync(path.join(copy, "Pulumi.yaml"), "utf8"));
            expect([written.name, written.config["pulumi:tags"], written.template.config.domain !== undefined]).toEqual(["my-bbb", renamed.config["pulumi:tags"], true]);
            expect(schemaMain(["--check"], copy)).toBe(0);
        } finally {
            errors.mockRestore();
            fs.rmSync(copy, { recursive: true });
        }
    });
});

describe.each(["dev", "prod"])("Pulumi.%s.yaml", (stack) => {
    test("passes validation once the private key is set (it is never committed)", () => {
        const values = parse(read(`Pulumi.${stack}.yaml`)).config as Record<string, unknown>;
        expect(values["bbb:sshPrivateKey"]).toBeUndefined();
        const raw = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
        expect(parseConfig({ ...raw, "bbb:sshPrivateKey": OFFLINE_PRIVATE_KEY }).problems).toEqual([]);
    });
});

describe("components/", () => {
    test("no module imports itself through others (config, names and ports once did)", () => {
        const files: string[] = [];
        const walk = (dir: string) => {
            for (const name of fs.readdirSync(dir)) {
                const at = path.join(dir, name);
                if (fs.statSync(at).isDirectory()) walk(at);
                else if (at.endsWith(".ts")) files.push(at);
            }
        };
        walk(path.join(root, "components"));
        const imports = new Map(
            files.map((file) => [
                file,
                [...fs.readFileSync(file, "utf8").matchAll(/from "(\.[^"]+)"/g)]
                    .map((m) => path.join(path.dirname(file), m[1]))
                    .map((target) => [`${target}.ts`, path.join(target, "index.ts")].find((c) => fs.existsSync(c)) ?? target),
            ]),
        );
        const circles: string[] = [];
        const visit = (file: string, trail: string[]) => {
            if (trail.includes(file)) return void circles.push([...trail.slice(trail.indexOf(file)), file].map((f) => path.relative(root, f)).join(" -> "));
            if (trail.length > files.length) return;
            for (const next of imports.get(file) ?? []) visit(next, [...trail, file]);
        };
        for (const file of files) visit(file, []);
        expect(circles).toEqual([]);
        expect(imports.size).toBeGreaterThan(15);
    });
});

describe("README", () => {
    const readme = read("README.md");

    test("its configuration table is what npm run schema writes from the schema", () => {
        expect(readme).toBe(readmeWithTable(readme));
        for (const key of CONFIG_KEYS) expect(readme).toContain(`| \`${key}\` |`);
    });

    /** The text of a section, from its heading to the next heading of its level or above. */
    const section = (heading: string) => {
        const start = readme.indexOf(`\n${heading}\n`);
        expect([heading, start]).not.toEqual([heading, -1]);
        const level = heading.split(" ")[0];
        const next = readme.slice(start + heading.length + 2).search(new RegExp(`^#{1,${level.length}} `, "m"));
        return readme.slice(start, next === -1 ? undefined : start + heading.length + 2 + next);
    };
    /** The lines of a section's ```sh blocks, comments removed. */
    const shellLines = (text: string) =>
        [...text.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1].split("\n")).map((l) => l.replace(/\s+#.*$/, "").trim()).filter((l) => l !== "" && !l.startsWith("#"));

    test("the test command it gives is the one .ci/run runs, word for word, and it installs what a fresh machine lacks first", () => {
        const ci = read(".ci/run");
        const command = ci.split("\n").filter((l) => !l.startsWith("#") && l.trim() !== "").pop()!;
        expect(command).toBe("bash scripts/system-tools.sh install && npm ci && npm test");
        expect(shellLines(section("### Tests"))).toEqual([command]);
    });

    test("the first thing it gives to try is npm run plan -- --stack dev, which needs no cloud and no Pulumi CLI", () => {
        const setUp = section("## Set-up");
        const lines = shellLines(setUp);
        expect(lines.slice(0, 2)).toEqual(["npm ci", "npm run plan -- --stack dev"]);
        expect(JSON.parse(read("package.json")).scripts.plan).not.toMatch(/\bpulumi\b/);
    });

    test("every npm run command it gives is a script of package.json, for a stack that exists", () => {
        const scripts = JSON.parse(read("package.json")).scripts as Record<string, string>;
        const runs = [...readme.matchAll(/npm run ([\w-]+(?::[\w-]+)*)(?: -- ([^`\n]*))?/g)];
        expect(runs.length).toBeGreaterThan(10);
        for (const [text, script, args] of runs) {
            expect([text, script in scripts]).toEqual([text, true]);
            const stack = /--stack (\S+)/.exec(args ?? "")?.[1];
            if (stack !== undefined && !stack.startsWith("<")) expect([text, fs.existsSync(path.join(root, `Pulumi.${stack}.yaml`))]).toEqual([text, true]);
        }
    });

    describe("its first deploy", () => {
        const walkthrough = section("### First deploy");
        const lines = shellLines(walkthrough);
        const configCommands = lines.filter((l) => l.startsWith("pulumi config "));
        /** The key a `pulumi config set|rm` line names (its first word after the flags), up to the path. */
        const keyOf = (line: string) => {
            const words = line.replace(/'/g, "").split(/\s+/).slice(3);
            const key = words.filter((w, i) => !w.startsWith("-") && words[i - 1] !== "-s")[0];
            return key.split(/[.[]/)[0];
        };

        test("goes in the order a newcomer needs: Node.js, the Pulumi CLI, login, the stack, its settings, credentials, preview, up", () => {
            const order = ["nvm install 20", "get.pulumi.com", "pulumi login", "pulumi stack init dev", "pulumi config set -s dev", "OS_CLOUD", "pulumi preview -s dev", "pulumi up -s dev"];
            const at = order.map((s) => walkthrough.indexOf(s));
            expect(at.every((i) => i >= 0)).toBe(true);
            expect(at).toEqual([...at].sort((a, b) => a - b));
        });

        test("sets every required key of the program, on the dev stack, and names no key the program lacks", () => {
            const required = (Object.keys(CONFIG_SCHEMA) as (keyof typeof CONFIG_SCHEMA)[]).filter((k) => CONFIG_SCHEMA[k].default === undefined && !CONFIG_SCHEMA[k].optional);
            const set = new Set(configCommands.filter((l) => l.startsWith("pulumi config set ")).map(keyOf));
            for (const key of required) expect([key, set.has(key)]).toEqual([key, true]);
            for (const line of configCommands) {
                expect([line, line.includes(" -s dev ")]).toEqual([line, true]);
                const key = keyOf(line);
                expect([line, key in CONFIG_SCHEMA || key.includes(":")]).toEqual([line, true]);
            }
        });

        test("a secret key is set with --secret and its value never on the command line (standard input or the prompt)", () => {
            // Every command naming a secret key, in a code block or in running text (`...`).
            const commands = [...lines, ...[...walkthrough.matchAll(/`(pulumi config set [^`]*)`/g)].map((m) => m[1])];
            const secretSets = commands.filter((c) => c.startsWith("pulumi config set ") && /sshPrivateKey|:apiToken|password/.test(c));
            expect(secretSets.length).toBeGreaterThanOrEqual(2);
            for (const command of secretSets) {
                expect([command, command.includes(" --secret ")]).toEqual([command, true]);
                // After the key nothing but a redirection from a file.
                expect([command, /(sshPrivateKey|cloudflare:apiToken|dialIn\.gateway\.password)(\s*<\s*\S+)?$/.test(command)]).toEqual([command, true]);
            }
        });

        test("a list or an object is removed before its entries are set, so no example entry stays behind", () => {
            for (const [i, line] of configCommands.entries()) {
                if (!line.includes("--path")) continue;
                const key = keyOf(line);
                const firstSet = configCommands.findIndex((l) => l.includes("--path") && keyOf(l) === key);
                const removed = configCommands.findIndex((l) => l.startsWith("pulumi config rm ") && keyOf(l) === key);
                expect([line, removed > -1 && removed < firstSet && firstSet <= i]).toEqual([line, true]);
            }
        });
    });

    test("its outputs table names the outputs contract", () => {
        for (const output of ["bbbApiUrl", "bbbSecret", "consumerSecrets", "greenlightUrl", "turnHost", "hosts", "dnsRecords", "integrations"]) {
            expect(readme).toContain(`| \`${output}\` |`);
        }
    });
});

describe("a fresh machine", () => {
    test("the Node.js that package.json asks for (npm refuses another: .npmrc engine-strict) runs every installed package", () => {
        const wanted = JSON.parse(read("package.json")).engines.node as string;
        expect(read(".npmrc")).toContain("engine-strict=true");
        expect(read("README.md")).toContain(`Node.js ${wanted.replace(">=", "")} or newer`);
        const lowest = wanted.replace(">=", "") + (wanted.split(".").length === 2 ? ".0" : "");
        const refused: string[] = [];
        const walk = (dir: string) => {
            for (const name of fs.readdirSync(dir)) {
                const at = path.join(dir, name);
                if (name.startsWith(".")) continue;
                if (name.startsWith("@")) { walk(at); continue; }
                const manifest = path.join(at, "package.json");
                if (fs.existsSync(manifest)) {
                    const engines = JSON.parse(fs.readFileSync(manifest, "utf8")).engines?.node;
                    if (engines && !satisfies(lowest, engines)) refused.push(`${name} ${engines}`);
                }
                if (fs.existsSync(path.join(at, "node_modules"))) walk(path.join(at, "node_modules"));
            }
        };
        walk(path.join(root, "node_modules"));
        expect(refused).toEqual([]);
    });

    test("npm test without the Debian packages it needs stops at once, naming them and how to install them, in one line", () => {
        const r = spawnSync("/bin/bash", ["scripts/system-tools.sh", "check"], { cwd: root, env: { PATH: "/nonexistent" }, encoding: "utf8" });
        expect(r.status).toBe(1);
        // (sshd is looked for in /usr/sbin and /sbin too, where Debian puts it: this machine may have it.)
        const m = /^npm test needs these Debian packages: ([a-z- ]+); install them as root with: bash scripts\/system-tools\.sh install \(or: apt-get install -y ([a-z- ]+)\)\n$/.exec(r.stderr);
        expect(m).not.toBeNull();
        const packages = m![1].split(" ");
        expect(m![2]).toBe(m![1]);
        expect(packages).toEqual(expect.arrayContaining(["shellcheck", "sudo", "coturn", "pebble", "certbot", "openssl", "postgresql"]));
        expect(new Set(packages).size).toBe(packages.length);
        expect(JSON.parse(read("package.json")).scripts.test).toMatch(/^bash scripts\/system-tools\.sh check && /);
        expect(read(".ci/run")).toMatch(/^bash scripts\/system-tools\.sh install && /m);
    });
});
