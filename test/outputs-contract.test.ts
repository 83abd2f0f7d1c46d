// The outputs are a public contract: other stacks read them by name (StackReference). Renaming or removing
// one breaks them, so the names are written out here, and examples/consumer reads them under mocks.
import { BASE_CONFIG, evaluate, Run } from "./harness";

const CONTRACT = ["baking", "bbbApiUrl", "bbbSecret", "consumerSecrets", "dnsRecords", "hosts", "integrations", "turnHost"];
/** Present with the feature that makes them: Greenlight; a backed-up host; the monitoring host; the streaming host. */
const OPTIONAL = ["greenlightUrl", "backups", "backupPasswords", "grafanaUrl", "grafanaAdminPassword", "streamingUrl", "streamingApiUrl", "streamingApiPassword"];
const SECRET = ["bbbSecret", "consumerSecrets", "integrations"];
const OPTIONAL_SECRET = ["backupPasswords", "grafanaAdminPassword", "streamingApiPassword"];

let single: Run;
let pool: Run;
beforeAll(async () => {
    single = await evaluate(BASE_CONFIG);
    pool = await evaluate({ ...BASE_CONFIG, scalelite: true, poolSize: 2, greenlight: true, consumers: ["mattermost", "pod"] });
});

test.each(["single", "pool"])("%s topology: exactly the contract's outputs, the secret ones secret", (name) => {
    const run = name === "single" ? single : pool;
    const names = Object.keys(run.outputs).sort();
    expect(names.filter((n) => !OPTIONAL.includes(n))).toEqual(CONTRACT);
    expect(run.secretOutputs.filter((n) => !OPTIONAL_SECRET.includes(n)).sort()).toEqual(SECRET);
});

test("the optional outputs: backups with a database, Grafana with monitoring, streaming's with streaming, their secrets secret", async () => {
    const monitored = await evaluate({ ...BASE_CONFIG, scalelite: true, poolSize: 2, greenlight: true, monitoring: true, streaming: { enabled: true } });
    expect(Object.keys(monitored.outputs).filter((n) => OPTIONAL.includes(n)).sort()).toEqual([...OPTIONAL].sort());
    expect(monitored.secretOutputs.filter((n) => OPTIONAL.includes(n)).sort()).toEqual([...OPTIONAL_SECRET].sort());
    expect(Object.keys(single.outputs).filter((n) => OPTIONAL.includes(n))).toEqual([]);
});

test("integrations: each tool's settings in its own words, with its own consumer secret in a pool", () => {
    const consumers = pool.outputs.consumerSecrets as Record<string, string>;
    expect(pool.outputs.integrations).toEqual({
        mattermost: { BASE_URL: "https://bbb.example.org/bigbluebutton/api", SALT: consumers.mattermost },
        pod: { BBB_API_URL: "https://bbb.example.org/bigbluebutton/api", BBB_SECRET_KEY: consumers.pod },
        // No "moodle" consumer configured: Moodle gets the primary secret.
        moodle: { bigbluebuttonbn_server_url: "https://bbb.example.org/bigbluebutton/", bigbluebuttonbn_shared_secret: pool.outputs.bbbSecret },
    });
    expect((single.outputs.integrations as any).pod).toEqual({ BBB_API_URL: "https://bbb.example.org/bigbluebutton/api", BBB_SECRET_KEY: single.outputs.bbbSecret });
});

describe("examples/consumer, a downstream stack, under mocks", () => {
    let outputs: Record<string, unknown>;
    let secret: Record<string, boolean>;
    let referenced: string | undefined;
    beforeAll(async () => {
        let pulumi!: typeof import("@pulumi/pulumi");
        let consumer!: Record<string, unknown>;
        jest.isolateModules(() => {
            pulumi = require("@pulumi/pulumi");
        });
        await pulumi.runtime.setMocks(
            {
                newResource(args) {
                    if (args.type !== "pulumi:pulumi:StackReference") throw new Error(`unexpected ${args.type}`);
                    referenced = args.inputs.name;
                    return { id: args.inputs.name, state: { name: args.inputs.name, outputs: pool.outputs, secretOutputNames: pool.secretOutputs } };
                },
                call: () => ({}),
            },
            "bbb-consumer",
            "dev",
        );
        pulumi.runtime.setAllConfig({ "bbb-consumer:bbbStack": "myorg/bbb/prod" });
        jest.isolateModules(() => {
            jest.doMock("@pulumi/pulumi", () => pulumi);
            consumer = require("../examples/consumer/index");
        });
        outputs = {};
        secret = {};
        for (const [key, value] of Object.entries(consumer)) {
            const out: import("@pulumi/pulumi").Output<unknown> = pulumi.output(value);
            outputs[key] = await new Promise((resolve) => out.apply(resolve));
            secret[key] = await (out as any).isSecret;
        }
    });

    test("it references the configured stack and reads the outputs by their contract names", () => {
        expect(referenced).toBe("myorg/bbb/prod");
        expect(outputs.bbbApiUrl).toBe("https://bbb.example.org/bigbluebutton/api");
        expect(outputs.podSettings).toEqual((pool.outputs.integrations as any).pod);
        expect(outputs.hostNames).toEqual(["turn.example.org", "scalelite.example.org", "bbb-1.example.org", "bbb-2.example.org", "greenlight.example.org"]);
    });

    test("secrets stay secret downstream", () => {
        expect(secret.podSettings).toBe(true);
        expect(secret.bbbApiUrl).toBe(false);
    });
});
