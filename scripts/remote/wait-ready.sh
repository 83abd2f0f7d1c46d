#!/usr/bin/env bash
# Readiness of a fresh host, before any installer runs: cloud-init has finished, and the host's name
# resolves through OpenDNS (the resolver bbb-install.sh asks for its public address) to exactly this
# host's public addresses. A host without a DNS name (FQDN empty: a bake's builder) waits for cloud-init only.
# Inputs (assignments on stdin, see components/remote.ts): FQDN (may be empty), IPV4, IPV6 (empty when the host has
# none), TIMEOUT_SECONDS, POLL_SECONDS.
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${IPV4:?}" "${TIMEOUT_SECONDS:?}" "${POLL_SECONDS:?}"
FQDN=${FQDN:-}
IPV6=${IPV6:-}
deadline=$((SECONDS + TIMEOUT_SECONDS))

say "waiting for cloud-init to finish"
set +e
timeout "$TIMEOUT_SECONDS" cloud-init status --wait >/dev/null
rc=$?
set -e
case $rc in
  0) ;;
  2) say "warning: cloud-init finished with recoverable errors (see: cloud-init status --long)" ;;
  124) fail "cloud-init did not finish within ${TIMEOUT_SECONDS}s (see /var/log/cloud-init-output.log)" ;;
  *) fail "cloud-init failed with exit code $rc (see: cloud-init status --long, /var/log/cloud-init-output.log)" ;;
esac

if [ -z "$FQDN" ]; then
  say "cloud-init is done; ready (no DNS name to wait for)"
  exit 0
fi
wait_resolves "$FQDN" "$IPV4" "$IPV6" "$((deadline - SECONDS))" "$POLL_SECONDS"
say "$FQDN resolves to ${IPV4}${IPV6:+ and $IPV6}; ready"
