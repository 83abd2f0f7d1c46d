#!/usr/bin/env bash
# TURN host: coturn from Ubuntu's packages, configured here (bbb-install.sh's TURN-only mode is broken).
# A Let's Encrypt certificate by certbot HTTP-01, copied for coturn by a deploy hook that also runs on every
# renewal; TLS on TLS_PORT; listening and relaying on the port's own addresses; external-ip when the public
# address is a floating IP; REST-API shared secret auth; relaying only to the BBB servers.
# Inputs: FQDN REALM EMAIL SECRET PRIVATE_IPV4 PUBLIC_IPV4 IPV6 LISTENING_PORT TLS_PORT RELAY_MIN RELAY_MAX
#         ALLOWED_PEERS (space-separated addresses of the BBB servers) LOGGING (file: sessions logged to
#         /var/log/turnserver, rotated daily, kept 7 days; none: nothing logged, as strict privacy wants)
#         DEPARTING_PEERS (space-separated names of servers a rolling upgrade replaces: while a name still
#         resolves, the server may still host meetings, and its addresses stay allowed; may be empty).
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${FQDN:?}" "${REALM:?}" "${EMAIL:?}" "${SECRET:?}" "${PRIVATE_IPV4:?}" "${PUBLIC_IPV4:?}" "${LISTENING_PORT:?}"
: "${TLS_PORT:?}" "${RELAY_MIN:?}" "${RELAY_MAX:?}" "${ALLOWED_PEERS:?}" "${LOGGING:?}"
case $LOGGING in file | none) ;; *) fail "LOGGING must be file or none, not $LOGGING" ;; esac
IPV6=${IPV6:-}
[[ $SECRET =~ ^[0-9a-f]{32,}$ ]] || fail "the TURN secret must be lower-case hex (bbb-install.sh splits -c host:secret on ':')"

conf=$ROOT/etc/turnserver.conf
certs=$ROOT/etc/coturn/certs
hook=$ROOT/etc/letsencrypt/renewal-hooks/deploy/coturn
live=$ROOT/etc/letsencrypt/live/$FQDN

say "installing coturn and certbot"
apt_install coturn certbot
mkdir -p "$certs" "$ROOT/var/log/turnserver" "$(dirname "$hook")" "$ROOT/etc/systemd/system/coturn.service.d" "$ROOT/etc/logrotate.d"
chown turnserver:turnserver "$certs" "$ROOT/var/log/turnserver" || fail "cannot chown the coturn directories"
chmod 0750 "$certs"

# The deploy hook: certbot runs it after every renewal; this step runs it after every issuance.
write_if_changed "$hook" 0755 root:root <<HOOK || true
#!/bin/sh
# Installed by bbb (turn-coturn step): hands a renewed certificate to coturn.
set -e
lineage=\${RENEWED_LINEAGE:-$live}
install -m 0640 -o turnserver -g turnserver "\$lineage/fullchain.pem" "$certs/fullchain.pem"
install -m 0600 -o turnserver -g turnserver "\$lineage/privkey.pem" "$certs/privkey.pem"
if systemctl is-active --quiet coturn.service; then systemctl kill -s USR2 coturn.service; fi
HOOK

say "obtaining a certificate for $FQDN (HTTP-01)"
certbot certonly --standalone --non-interactive --agree-tos --keep-until-expiring \
  -m "$EMAIL" -d "$FQDN" 2>&1 || fail "certbot could not obtain a certificate for $FQDN (is port 80 open and does $FQDN resolve to this host?)"
RENEWED_LINEAGE=$live "$hook" || fail "the certificate deploy hook failed"

# Relay to the BBB servers only: special and private ranges are denied as the BBB docs list them, then
# everything else, and the BBB servers' addresses are allowed again.
denied=(
  0.0.0.0-0.255.255.255 10.0.0.0-10.255.255.255 100.64.0.0-100.127.255.255 127.0.0.0-127.255.255.255
  169.254.0.0-169.254.255.255 172.16.0.0-172.31.255.255 192.0.0.0-192.0.0.255 192.0.2.0-192.0.2.255
  192.88.99.0-192.88.99.255 192.168.0.0-192.168.255.255 198.18.0.0-198.19.255.255
  198.51.100.0-198.51.100.255 203.0.113.0-203.0.113.255 240.0.0.0-255.255.255.255
  ::1 64:ff9b::-64:ff9b::ffff:ffff ::ffff:0.0.0.0-::ffff:255.255.255.255 100::-100::ffff:ffff:ffff:ffff
  2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff 2002::-2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff
  fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff
  0.0.0.0-255.255.255.255 ::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff
)
read -r -a peers <<<"$ALLOWED_PEERS"
read -r -a departing <<<"${DEPARTING_PEERS:-}"
kept=0
for name in "${departing[@]}"; do
  while read -r address; do
    peers+=("$address")
    kept=$((kept + 1))
  done < <(getent ahosts "$name" | awk '{print $1}' | sort -u || true)
done
[ "$kept" -eq 0 ] || say "keeping $kept address(es) of servers being replaced, while they may still host meetings"

config_changed=false
if write_if_changed "$conf" 0640 root:turnserver <<CONF; then config_changed=true; fi
# Managed by bbb (Pulumi, turn-coturn step); changes here are overwritten.
listening-port=$LISTENING_PORT
tls-listening-port=$TLS_PORT
listening-ip=$PRIVATE_IPV4
relay-ip=$PRIVATE_IPV4
${IPV6:+listening-ip=$IPV6
relay-ip=$IPV6
}$([ "$PUBLIC_IPV4" != "$PRIVATE_IPV4" ] && echo "external-ip=$PUBLIC_IPV4/$PRIVATE_IPV4")
min-port=$RELAY_MIN
max-port=$RELAY_MAX
fingerprint
use-auth-secret
static-auth-secret=$SECRET
realm=$REALM
cert=$certs/fullchain.pem
pkey=$certs/privkey.pem
no-cli
no-tlsv1
no-tlsv1_1
no-loopback-peers
no-multicast-peers
no-stdout-log
simple-log
log-file=$([ "$LOGGING" = file ] && echo "$ROOT/var/log/turnserver/turnserver.log" || echo /dev/null)
$(printf 'denied-peer-ip=%s\n' "${denied[@]}")
$(printf 'allowed-peer-ip=%s\n' "${peers[@]}")
CONF

# Port 443 needs CAP_NET_BIND_SERVICE: coturn runs as the turnserver user.
if write_if_changed "$ROOT/etc/systemd/system/coturn.service.d/override.conf" 0644 root:root <<UNIT; then config_changed=true; systemctl daemon-reload; fi
[Service]
AmbientCapabilities=CAP_NET_BIND_SERVICE
LimitNOFILE=1048576
Restart=always
UNIT

write_if_changed "$ROOT/etc/logrotate.d/coturn" 0644 root:root <<ROTATE || true
$ROOT/var/log/turnserver/*.log {
  daily
  rotate 7
  missingok
  notifempty
  compress
  postrotate
    systemctl kill -s HUP coturn.service
  endscript
}
ROTATE

systemctl enable --quiet coturn.service || fail "cannot enable coturn"
if [ "$config_changed" = true ]; then
  say "configuration changed; restarting coturn"
  systemctl restart coturn.service || fail "coturn did not restart (see: journalctl -u coturn)"
else
  systemctl start coturn.service || fail "coturn did not start (see: journalctl -u coturn)"
fi
systemctl is-active --quiet coturn.service || fail "coturn is not running (see: journalctl -u coturn)"
say "coturn is running on $FQDN, relaying to ${#peers[@]} BBB address(es)"
