// A downstream stack: reads a bbb stack's outputs through a StackReference and hands on what an integration
// needs (here as its own outputs; a real stack would feed them to its Mattermost, Esup-Pod or Moodle).
// Run: cd examples/consumer && npm install && pulumi config set bbbStack myorg/bbb/prod && pulumi up
import * as pulumi from "@pulumi/pulumi";

interface Integrations {
    mattermost: { BASE_URL: string; SALT: string };
    pod: { BBB_API_URL: string; BBB_SECRET_KEY: string };
    moodle: { bigbluebuttonbn_server_url: string; bigbluebuttonbn_shared_secret: string };
}

const bbb = new pulumi.StackReference(new pulumi.Config().require("bbbStack"));

/** Where the API is: public. */
export const bbbApiUrl = bbb.requireOutput("bbbApiUrl") as pulumi.Output<string>;
/** Esup-Pod's BBB_API_URL and BBB_SECRET_KEY: secret, as in the bbb stack. */
export const podSettings = pulumi.secret((bbb.requireOutput("integrations") as pulumi.Output<Integrations>).apply((i) => i.pod));
/** The hosts, e.g. for a monitoring stack. */
export const hostNames = (bbb.requireOutput("hosts") as pulumi.Output<{ fqdn: string }[]>).apply((hosts) => hosts.map((h) => h.fqdn));
