// bbb: BigBlueButton on OpenStack. Reads the configuration once, builds the topology, exports the outputs.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { loadConfig } from "./components/config";
import { lookupCloud } from "./components/cloud";
import { integrations } from "./components/integrations";
import { rolesOf, topologyOf } from "./components/names";
import { bakesInCloud, Platform } from "./components/topology";

export = async () => {
    // Nothing is declared before the configuration and the cloud lookups have passed.
    const settings = loadConfig();
    const cloud = await lookupCloud(settings, rolesOf(settings));
    const baking = await bakesInCloud(settings, cloud, pulumi.getStack());

    // bbb-1's own secret in the single topology, so it rotates with secretGeneration there; in a pool it is
    // Scalelite's primary secret, which consumers hold: it stays, also when a single server grows into a pool
    // (its keepers are ignored there, so the secret consumers have keeps working against Scalelite).
    const single = topologyOf(settings) === "single";
    const apiSecret = pulumi.secret(
        new random.RandomPassword(
            "api-secret",
            { length: 40, special: false, ...(single ? { keepers: { generation: String(settings.secretGeneration) } } : {}) },
            { ignoreChanges: single ? [] : ["keepers"] },
        ).result,
    );
    const platform = new Platform("bbb", { settings, cloud, stack: pulumi.getStack(), apiSecret, baking });

    const bbbApiUrl = `https://${platform.apiHost}/bigbluebutton/api`;
    // The output names are a public contract for other stacks (README "Outputs"; a test pins them).
    return {
        bbbApiUrl,
        bbbSecret: apiSecret,
        ...(platform.greenlightUrl ? { greenlightUrl: platform.greenlightUrl } : {}),
        ...(platform.monitoring ? { grafanaUrl: platform.monitoring.url, grafanaAdminPassword: platform.monitoring.adminPassword } : {}),
        // npm run stream reads these (and bbbApiUrl, bbbSecret: the worker joins through the API name, Scalelite in a pool).
        ...(platform.streaming
            ? { streamingUrl: platform.streaming.url, streamingApiUrl: platform.streaming.apiUrl, streamingApiPassword: platform.streaming.apiPassword }
            : {}),
        consumerSecrets: pulumi.secret(platform.consumerSecrets),
        turnHost: platform.turnHost,
        hosts: platform.summary,
        dnsRecords: platform.dnsRecords,
        integrations: integrations({ apiUrl: bbbApiUrl, secret: apiSecret, consumerSecrets: platform.consumerSecrets }),
        // For people and the plan (the next run asks the cloud, not this): which golden volume each BBB server booted from.
        baking: platform.baking,
        // Where each backed-up host's restic repository is, and (secret) the passwords that read them, kept while
        // backups are off.
        ...(Object.values(platform.backups).some((b) => b.enabled)
            ? {
                  backups: Object.fromEntries(
                      Object.entries(platform.backups)
                          .filter(([, b]) => b.enabled)
                          .map(([host, b]) => [host, { repository: b.repository, container: b.container }]),
                  ),
              }
            : {}),
        ...(Object.keys(platform.backupPasswords).length > 0 ? { backupPasswords: pulumi.secret(pulumi.all(platform.backupPasswords)) } : {}),
    };
};
