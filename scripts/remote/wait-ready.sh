#!/usr/bin/env bash
# Readiness of a fresh host, before any installer runs: cloud-init has finished, and the host's name
# resolves through OpenDNS (the resolver bbb-install.sh asks for its public address) to exactly this
# host's public addresses.
# Inputs (assignments on stdin, see components/remote.ts): FQDN, IPV4, IPV6 (empty when the host has
# none), TIMEOUT_SECONDS, POLL_SECONDS.
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

RESOLVER=resolver1.opendns.com

: "${FQDN:?}" "${IPV4:?}" "${TIMEOUT_SECONDS:?}" "${POLL_SECONDS:?}"
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

if ! command -v dig >/dev/null; then
  say "installing dig (bind9-dnsutils)"
  apt_install bind9-dnsutils
fi

# Addresses the public resolver gives for a record type, sorted, one line, CNAME targets left out.
lookup() {
  dig +short +time=3 +tries=1 "$1" "$FQDN" "@$RESOLVER" 2>/dev/null | grep -v '\.$' | sort | paste -sd ' ' - || true
}

say "waiting for $FQDN to resolve to ${IPV4}${IPV6:+ and $IPV6} through $RESOLVER"
while :; do
  a=$(lookup A)
  aaaa=$(lookup AAAA)
  if [ "$a" = "$IPV4" ] && [ "$aaaa" = "$IPV6" ]; then
    say "$FQDN resolves to ${IPV4}${IPV6:+ and $IPV6}; ready"
    exit 0
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    fail "$FQDN does not resolve to this host through $RESOLVER after ${TIMEOUT_SECONDS}s:" \
      "A is '${a}' (expected '${IPV4}'), AAAA is '${aaaa}' (expected '${IPV6}')." \
      "Create or correct the records (the stack output dnsRecords lists them) and run pulumi up again."
  fi
  sleep "$POLL_SECONDS"
done
