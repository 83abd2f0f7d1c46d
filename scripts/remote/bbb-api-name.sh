#!/usr/bin/env bash
# The names bbb-install.sh's certificate covers on a BBB server: its own name, and, where this server answers
# the stack's API name alone (the single topology), that name too; in a pool, Scalelite answers it and the
# server's certificate drops it again (a name that no longer points here would fail every renewal).
# bbb-install.sh's nginx site has one server on port 443 and one on port 80, so both answer any name; its
# certificate is the certbot lineage named after the host, renewed by HTTP-01 through
# /var/www/bigbluebutton-default/assets (bbb-install.sh v3.0.x install_ssl). certbot --cert-name with a new
# set of names renews that lineage for exactly those names (certbot 2.x _internal/main.py,
# _find_lineage_for_domains_and_certname); its deploy hook reloads nginx, which keeps running meetings.
# Inputs (assignments on stdin, see components/remote.ts): FQDN, API_FQDN (empty: the server's own name
# only), EMAIL, IPV4, IPV6 (empty when the host has none), RESOLVE_TIMEOUT_SECONDS, POLL_SECONDS.
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${FQDN:?}" "${EMAIL:?}" "${IPV4:?}" "${RESOLVE_TIMEOUT_SECONDS:?}" "${POLL_SECONDS:?}"
API_FQDN=${API_FQDN:-}
IPV6=${IPV6:-}
WEBROOT=/var/www/bigbluebutton-default/assets/

[ -d "$ROOT/etc/letsencrypt/live/$FQDN" ] ||
  fail "no certificate for $FQDN in /etc/letsencrypt/live: bbb-install.sh makes it (did the installer step run?)"

wanted=("$FQDN")
[ -n "$API_FQDN" ] && wanted+=("$API_FQDN")
have=$(cert_names "$FQDN")
want=$(printf '%s\n' "${wanted[@]}" | sort | paste -sd ' ' -)
if [ "$have" = "$want" ]; then
  say "the certificate of $FQDN names ${want// /, }; nothing to do"
  exit 0
fi
[ -n "$have" ] || fail "certbot reports no certificate named $FQDN (see: certbot certificates)"

# Let's Encrypt checks each name over HTTP: a new name must point here first.
[ -z "$API_FQDN" ] || [[ " $have " == *" $API_FQDN "* ]] ||
  wait_resolves "$API_FQDN" "$IPV4" "$IPV6" "$RESOLVE_TIMEOUT_SECONDS" "$POLL_SECONDS"

say "renewing the certificate of $FQDN for ${want// /, } (it named ${have// /, })"
domains=()
for name in "${wanted[@]}"; do domains+=(-d "$name"); done
certbot certonly --webroot -w "$WEBROOT" --cert-name "$FQDN" "${domains[@]}" --non-interactive --agree-tos \
  -m "$EMAIL" --rsa-key-size 4096 --deploy-hook "systemctl reload nginx" 2>&1 ||
  fail "certbot could not renew the certificate of $FQDN for ${want// /, } (does each name resolve to this host, and is port 80 open?)"
say "the certificate of $FQDN names ${want// /, }"
