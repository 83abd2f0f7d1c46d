// Ready-to-use settings for the tools that consume the API: each takes the URL in the form it wants and,
// in a pool, the secret of its own Scalelite consumer (when `consumers` names it), else bbbSecret.
import * as pulumi from "@pulumi/pulumi";

/** The consumer name whose secret each integration uses. */
export const INTEGRATION_CONSUMERS = { mattermost: "mattermost", pod: "pod", moodle: "moodle" } as const;

export interface IntegrationInputs {
    /** https://<host>/bigbluebutton/api */
    apiUrl: string;
    /** The primary secret (bbbSecret). */
    secret: pulumi.Input<string>;
    /** Secrets by consumer name. */
    consumerSecrets: Record<string, pulumi.Input<string>>;
}

export function integrations(inputs: IntegrationInputs) {
    const base = inputs.apiUrl.replace(/api$/, "");
    const secretOf = (consumer: string) => inputs.consumerSecrets[consumer] ?? inputs.secret;
    return pulumi.secret(
        pulumi.output({
            // Mattermost's BigBlueButton plugin: the API URL and its "salt".
            mattermost: { BASE_URL: inputs.apiUrl, SALT: secretOf(INTEGRATION_CONSUMERS.mattermost) },
            // Esup-Pod's settings_local.py.
            pod: { BBB_API_URL: inputs.apiUrl, BBB_SECRET_KEY: secretOf(INTEGRATION_CONSUMERS.pod) },
            // Moodle's mod_bigbluebuttonbn (Site administration > Plugins > BigBlueButton): the URL without api/.
            moodle: { bigbluebuttonbn_server_url: base, bigbluebuttonbn_shared_secret: secretOf(INTEGRATION_CONSUMERS.moodle) },
        }),
    );
}
