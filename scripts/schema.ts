// Writes what users and the Pulumi CLI read of the configuration schema (components/config/schema.ts):
// Pulumi.yaml's `config:` and `template:` blocks, and the README's configuration table.
//   npm run schema             rewrites Pulumi.yaml and the README's table
//   npm run schema -- --check  exits 1, naming the file, when either differs from the schema
import * as fs from "fs";
import * as path from "path";
import { parse, stringify } from "yaml";
import { CONFIG_KEYS, CONFIG_SCHEMA, ConfigKey, KeySpec } from "../components/config";
import { helpRequested } from "./cli";
import { projectRoot } from "./offline";

export const USAGE = `usage: npm run schema [-- --check]
Writes Pulumi.yaml's config and template blocks and the README's configuration table from the schema
(components/config/schema.ts). --check: changes nothing; exit 1 when a file differs from the schema.`;

const README_START = "<!-- configuration table: written by npm run schema from components/config/schema.ts -->";
const README_END = "<!-- end of the configuration table -->";

const required = (spec: KeySpec) => spec.default === undefined && !spec.optional;

/**
 * How Pulumi.yaml declares a key. The CLI types string, integer and boolean keys and lists with a default
 * (`type`, `default`, `secret`; a list needs `items`: pkg/workspace project.go, Project.Validate). Objects are
 * typed only by Pulumi CLI 3.187 and later, so objects with a default are declared by `value:` with their
 * description as a comment, and keys without a default that are lists or objects (the CLI would refuse the
 * text `pulumi new` sets for a typed list) only in the header.
 */
function declaration(key: ConfigKey): Record<string, unknown> | undefined {
    const spec = CONFIG_SCHEMA[key];
    if (spec.type === "object" || (spec.type === "array" && spec.default === undefined)) {
        return spec.default === undefined ? undefined : { value: spec.default };
    }
    return {
        type: spec.type,
        ...(spec.type === "array" ? { items: { type: "string" } } : {}),
        ...(spec.default !== undefined ? { default: spec.default } : {}),
        ...(spec.secret ? { secret: true } : {}),
        description: spec.description,
    };
}

/**
 * What `pulumi new` says when it asks for a key. It stores every answer as text; the program reads a list's or an
 * object's as JSON, and `pulumi config set --path` can change it only once it is set again as a whole.
 */
function templateDescription(key: string, spec: KeySpec): string {
    if (spec.prompt) return spec.prompt;
    if (spec.type !== "array" && spec.type !== "object") return spec.description;
    return `${spec.description} As JSON, e.g. ${JSON.stringify(spec.example)} (to change one entry later, set the key again: pulumi config rm ${key}, then pulumi config set --path)`;
}

/**
 * Pulumi.yaml, for the project `name` (bbb, or what `pulumi new` named it), keeping `others`: the file's
 * entries of other namespaces (`pulumi:tags`, which `pulumi new` adds).
 */
export function pulumiYaml(name = "bbb", others: Record<string, unknown> = {}): string {
    const undeclared = CONFIG_KEYS.filter((key) => declaration(key) === undefined);
    const header = [
        `name: ${name}`,
        "runtime:",
        "  name: nodejs",
        "  options:",
        "    typescript: true",
        "description: Self-hosted BigBlueButton on OpenStack - TURN, BBB 3.0 servers, Scalelite, Greenlight, DNS.",
        "# Written by `npm run schema` from components/config/schema.ts: change the schema, not this file.",
        "# Keys with a default are optional; the program applies the same defaults. Objects are not typed here (older",
        "# CLIs cannot), so those with a default are declared by `value:`; these keys, lists and objects without a",
        "# default, are set per stack (as YAML in Pulumi.<stack>.yaml, or JSON text) and checked by the program:",
        ...undeclared.flatMap((key) => [
            `#   bbb:${key}: ${JSON.stringify(CONFIG_SCHEMA[key].example)}${CONFIG_SCHEMA[key].optional ? " (optional)" : ""}`,
            `#     ${CONFIG_SCHEMA[key].description}`,
        ]),
    ];
    const config = CONFIG_KEYS.filter((key) => declaration(key) !== undefined).map((key) => {
        const block = stringify({ [key]: declaration(key) }, { lineWidth: 0 }).trimEnd().replace(/^/gm, "  ");
        return "value" in declaration(key)! ? `  # ${CONFIG_SCHEMA[key].description}\n${block}` : block;
    });
    // `pulumi new <this repository>` asks for the required keys, secrets as secrets (pkg/cmd/pulumi/project/newcmd/config.go),
    // in the project's namespace, whatever name it is given.
    const template = {
        template: {
            displayName: "BigBlueButton on OpenStack",
            description: "A TURN server, BigBlueButton 3.0 (one server or a Scalelite pool), optional Greenlight, DNS.",
            config: Object.fromEntries(
                CONFIG_KEYS.filter((key) => required(CONFIG_SCHEMA[key])).map((key) => [
                    key,
                    { description: templateDescription(key, CONFIG_SCHEMA[key]), ...(CONFIG_SCHEMA[key].secret ? { secret: true } : {}) },
                ]),
            ),
        },
    };
    const kept = Object.keys(others).length > 0 ? [stringify(others, { lineWidth: 0 }).trimEnd().replace(/^/gm, "  ")] : [];
    return [...header, "config:", ...config, ...kept, stringify(template, { lineWidth: 0 }).trimEnd(), ""].join("\n");
}

export function readmeTable(): string {
    const rows = CONFIG_KEYS.map((key) => {
        const spec = CONFIG_SCHEMA[key];
        const shown = spec.optional ? "none" : spec.default === undefined ? "required" : `\`${JSON.stringify(spec.default)}\``;
        const type = `${spec.type}${spec.secret ? " (secret)" : ""}`;
        return `| \`${key}\` | ${shown} | ${type} | ${(spec.readme ?? spec.description).replace(/\|/g, "\\|")} |`;
    });
    return [README_START, "| key | default | type | description |", "|---|---|---|---|", ...rows, README_END].join("\n");
}

/** The README with its table replaced by the schema's. */
export function readmeWithTable(readme: string): string {
    const start = readme.indexOf(README_START);
    const end = readme.indexOf(README_END);
    if (start < 0 || end < start) throw new Error(`README.md has no configuration table between "${README_START}" and "${README_END}"`);
    return readme.slice(0, start) + readmeTable() + readme.slice(end + README_END.length);
}

export function main(args: string[], root = projectRoot()): number {
    if (helpRequested(args, USAGE)) return 0;
    const files: Record<string, (text: string) => string> = {
        "Pulumi.yaml": (text) => {
            const project = parse(text) ?? {};
            const others = Object.fromEntries(Object.entries((project.config ?? {}) as Record<string, unknown>).filter(([key]) => key.includes(":")));
            return pulumiYaml(String(project.name ?? "bbb"), others);
        },
        "README.md": readmeWithTable,
    };
    let differs = false;
    for (const [file, render] of Object.entries(files)) {
        const at = path.join(root, file);
        const now = fs.readFileSync(at, "utf8");
        const wanted = render(now);
        if (now === wanted) continue;
        differs = true;
        if (args.includes("--check")) console.error(`schema: ${file} differs from components/config/schema.ts; run npm run schema`);
        else fs.writeFileSync(at, wanted);
    }
    return args.includes("--check") && differs ? 1 : 0;
}

if (require.main === module) process.exit(main(process.argv.slice(2)));
