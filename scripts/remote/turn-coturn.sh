#!/usr/bin/env bash
# TURN host: coturn from Ubuntu's packages, configured here (bbb-install.sh's TURN-only mode is broken).
# A Let's Encrypt certificate by certbot HTTP-01, copied for coturn by a deploy hook that also runs on every
# renewal; TLS on TLS_PORT; listening and relaying on the port's own addresses; external-ip when the public
# address is a floating IP; REST-API shared secret auth; relaying only to the BBB servers.
# Inputs: FQDN REALM EMAIL SECRET PRIVATE_IPV4 PUBLIC_IPV4 IPV6 LISTENING_PORT TLS_PORT RELAY_MIN RELAY_MAX
#         PEERS (the BBB servers, one a line: `fqdn address [address...]`) LOGGING (file: sessions logged to
#         /var/log/turnserver, rotated daily, kept 7 days; none: nothing logged, as strict privacy wants)
# A server that leaves PEERS (scale-down, the old server of an upgrade round) may still host meetings: Pulumi
# removes it from Scalelite only at the end of `pulumi up`, and that removal refuses while meetings run. So
# this step remembers the servers coturn relays to (/var/lib/bbb-deploy/turn-peers, root only, no secret,
# written once coturn runs with them) and keeps relaying to a server that left PEERS while its name still
# resolves to the addresses it had: Pulumi deletes a server's DNS records only after its removal from
# Scalelite succeeded. Once the name no longer resolves, or resolves to other addresses, it is dropped.
# Whatever PEERS or the remembered servers hold, an address in a range coturn denies as a peer for what it is
# (loopback, private, link-local, ...; not_peer below) is never allowed: the step says which it drops and why.
# coturn restarts only when its configuration changed; a restart that did not succeed is redone by the next
# run (lib.sh's pending work).
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${FQDN:?}" "${REALM:?}" "${EMAIL:?}" "${SECRET:?}" "${PRIVATE_IPV4:?}" "${PUBLIC_IPV4:?}" "${LISTENING_PORT:?}"
: "${TLS_PORT:?}" "${RELAY_MIN:?}" "${RELAY_MAX:?}" "${PEERS:?}" "${LOGGING:?}"
case $LOGGING in file | none) ;; *) fail "LOGGING must be file or none, not $LOGGING" ;; esac
IPV6=${IPV6:-}
[[ $SECRET =~ ^[0-9a-f]{32,}$ ]] || fail "the TURN secret must be lower-case hex (bbb-install.sh splits -c host:secret on ':')"

conf=$ROOT/etc/turnserver.conf
certs=$ROOT/etc/coturn/certs
hook=$ROOT/etc/letsencrypt/renewal-hooks/deploy/coturn
live=$ROOT/etc/letsencrypt/live/$FQDN
state=$ROOT/var/lib/bbb-deploy
remembered_file=$state/turn-peers

# Sorted, one a line, without duplicates: the form peer addresses are compared and written in.
addresses_of() {
  tr ' ' '\n' | sed '/^$/d' | LC_ALL=C sort -u
}

# The BBB servers coturn relays to: name -> addresses (space-separated). PEERS first, then the servers that
# left it but may still host meetings (below).
declare -A peer=()
name_re='^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$'
addresses_re='^[0-9a-f.: ]+$'
while read -r name addresses; do
  [ -n "$name" ] || continue
  [[ $name =~ $name_re ]] || fail "PEERS: '$name' is not a host name"
  [[ -n $addresses && $addresses =~ $addresses_re ]] || fail "PEERS: $name needs its addresses (canonical IPv4 and IPv6), not '$addresses'"
  peer[$name]=$(addresses_of <<<"$addresses" | paste -sd' ' -)
done <<<"$PEERS"
[ "${#peer[@]}" -gt 0 ] || fail "PEERS names no BBB server"

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

# Addresses that are never a BBB server's to relay to, with what they are: the special ranges of the deny list above,
# and multicast (no-multicast-peers) and the unspecified address, which it leaves to coturn. An allowed-peer-ip
# there would let every TURN user relay into the TURN host itself, its private network or the cloud's metadata
# service (169.254.169.254). The documentation ranges, denied above too, are left out: no host has one, and they
# stand for public addresses in examples and tests.
not_peers=(
  "0.0.0.0-0.255.255.255 this network (0.0.0.0/8)"
  "10.0.0.0-10.255.255.255 private (10.0.0.0/8)"
  "100.64.0.0-100.127.255.255 shared address space of carrier-grade NAT (100.64.0.0/10)"
  "127.0.0.0-127.255.255.255 loopback (127.0.0.0/8)"
  "169.254.0.0-169.254.255.255 link-local, where the cloud's metadata service is (169.254.0.0/16)"
  "172.16.0.0-172.31.255.255 private (172.16.0.0/12)"
  "192.0.0.0-192.0.0.255 IETF protocol assignments (192.0.0.0/24)"
  "192.88.99.0-192.88.99.255 6to4 relay anycast (192.88.99.0/24)"
  "192.168.0.0-192.168.255.255 private (192.168.0.0/16)"
  "198.18.0.0-198.19.255.255 benchmarking (198.18.0.0/15)"
  "224.0.0.0-239.255.255.255 multicast (224.0.0.0/4)"
  "240.0.0.0-255.255.255.255 reserved, or broadcast (240.0.0.0/4)"
  ":: the unspecified address (::)"
  "::1 loopback (::1)"
  "::-::ffff:ffff IPv4-compatible, deprecated: an IPv4 address in IPv6 (::/96)"
  "64:ff9b::-64:ff9b::ffff:ffff NAT64, a way to IPv4 addresses (64:ff9b::/96)"
  "64:ff9b:1::-64:ff9b:1:ffff:ffff:ffff:ffff:ffff local-use NAT64 (64:ff9b:1::/48)"
  "::ffff:0.0.0.0-::ffff:255.255.255.255 IPv4-mapped (::ffff:0:0/96)"
  "::ffff:0:0:0-::ffff:0:ffff:ffff IPv4-translated (::ffff:0:0:0/96)"
  "100::-100::ffff:ffff:ffff:ffff discard-only (100::/64)"
  "2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff IETF protocol assignments, Teredo among them (2001::/23)"
  "2002::-2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff 6to4, a way to IPv4 addresses (2002::/16)"
  "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff unique local, private (fc00::/7)"
  "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff link-local (fe80::/10)"
  "fec0::-feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff site-local, deprecated, private (fec0::/10)"
  "ff00::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff multicast (ff00::/8)"
)

# address_key ADDRESS: sets address_key to a key that compares (as a string, in the C locale) as the address does
# within its family: v4: and 8 hex digits, v6: and 32; returns 1 when ADDRESS is no IPv4 or IPv6 address.
address_key() {
  local a=$1 part head tail i n key=""
  local -a h=() t=() groups=()
  if [[ $a =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]]; then
    for i in 1 2 3 4; do
      ((10#${BASH_REMATCH[i]} <= 255)) || return 1
      printf -v part '%02x' "$((10#${BASH_REMATCH[i]}))"
      key+=$part
    done
    address_key=v4:$key
    return 0
  fi
  [[ $a == *:* ]] || return 1
  # An IPv4 address in the last 32 bits (::ffff:192.0.2.1) as two groups.
  if [[ $a =~ ^(.*:)([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]]; then
    head=${BASH_REMATCH[1]}
    for i in 2 3 4 5; do ((10#${BASH_REMATCH[i]} <= 255)) || return 1; done
    printf -v part '%x:%x' "$((10#${BASH_REMATCH[2]} * 256 + 10#${BASH_REMATCH[3]}))" "$((10#${BASH_REMATCH[4]} * 256 + 10#${BASH_REMATCH[5]}))"
    a=$head$part
  fi
  case $a in *::*::* | *:::*) return 1 ;; esac
  if [[ $a == *::* ]]; then
    head=${a%%::*} tail=${a#*::}
    [ -z "$head" ] || IFS=: read -r -a h <<<"$head"
    [ -z "$tail" ] || IFS=: read -r -a t <<<"$tail"
    n=$((8 - ${#h[@]} - ${#t[@]}))
    ((n >= 1)) || return 1
  else
    IFS=: read -r -a h <<<"$a"
    [ "${#h[@]}" -eq 8 ] && [[ $a != *: ]] || return 1
    n=0
  fi
  groups=("${h[@]}")
  for ((i = 0; i < n; i++)); do groups+=(0); done
  groups+=("${t[@]}")
  for part in "${groups[@]}"; do
    [[ $part =~ ^[0-9a-f]{1,4}$ ]] || return 1
    printf -v part '%04x' "0x$part"
    key+=$part
  done
  address_key=v6:$key
}

# The keys of not_peers' ranges, first and last address, and what each range is.
declare -a not_first=() not_last=() not_what=()
for entry in "${not_peers[@]}"; do
  range=${entry%% *}
  address_key "${range%-*}" && not_first+=("$address_key")
  address_key "${range#*-}" && not_last+=("$address_key")
  not_what+=("${entry#* }")
done

# not_peer ADDRESS: prints why coturn must not relay to ADDRESS (nothing when it may).
not_peer() {
  local key i LC_ALL=C
  address_key "$1" || {
    echo "not an IP address"
    return 0
  }
  key=$address_key
  for i in "${!not_first[@]}"; do
    [ "${key:0:3}" = "${not_first[i]:0:3}" ] || continue
    if [[ ! $key < ${not_first[i]} && ! $key > ${not_last[i]} ]]; then
      echo "${not_what[i]}"
      return 0
    fi
  done
}

# The servers coturn relayed to after its last successful (re)start.
declare -A remembered=()
if [ -f "$remembered_file" ]; then
  while read -r name addresses; do
    case $name in '' | '#'*) continue ;; esac
    remembered[$name]=$addresses
  done <"$remembered_file"
fi

# The addresses NAME resolves to on this host (getent ahosts: the system's resolver), one a line. Returns
# getent's status: 2 when the name does not resolve (or the lookup failed), 0 when it does.
resolve() {
  local out rc=0
  out=$(getent ahosts "$1" 2>/dev/null) || rc=$?
  [ "$rc" -eq 0 ] || return "$rc"
  awk '{print $1}' <<<"$out" | LC_ALL=C sort -u
}

# Whether this host resolves names at all: one of PEERS' names resolves. A departing name that does not
# resolve while no other does either says nothing about that server: "cannot tell" keeps it.
resolver=""
resolver_works() {
  local name
  if [ -z "$resolver" ]; then
    resolver=broken
    for name in "${!peer[@]}"; do
      if resolve "$name" >/dev/null; then
        resolver=works
        break
      fi
    done
  fi
  [ "$resolver" = works ]
}

# A remembered server that left PEERS is departing: kept while its name resolves to its own addresses only.
while read -r name; do
  if [ -z "$name" ] || [ -n "${peer[$name]+set}" ]; then continue; fi
  had=" ${remembered[$name]} "
  rc=0
  now=$(resolve "$name") || rc=$?
  if [ "$rc" -eq 0 ]; then
    other=""
    for address in $now; do [[ $had == *" $address "* ]] || other+=" $address"; done
    if [ -z "$other" ]; then
      peer[$name]=${remembered[$name]}
      say "keeping $name (left the pool): its name still resolves to it, so it may still host meetings; dropped once its name is gone"
    else
      say "dropping $name (left the pool): its name now resolves to other addresses ($(paste -sd' ' - <<<"$now"))"
    fi
  elif [ "$rc" -eq 2 ] && resolver_works; then
    say "dropping $name (left the pool): its name no longer resolves"
  else
    peer[$name]=${remembered[$name]}
    say "keeping $name (left the pool): cannot tell whether its name still resolves (getent exit $rc; no BBB server's name resolves here)"
  fi
done < <(printf '%s\n' "${!remembered[@]}" | LC_ALL=C sort)

# Every server's addresses, those coturn must never relay to left out (saying which and why).
while read -r name; do
  kept=""
  for address in ${peer[$name]}; do
    why=$(not_peer "$address")
    if [ -n "$why" ]; then
      say "not relaying to $address ($name): $why"
    else
      kept+="${kept:+ }$address"
    fi
  done
  [ -n "$kept" ] || say "$name has no address coturn may relay to: TURN-relayed media cannot reach it"
  peer[$name]=$kept
done < <(printf '%s\n' "${!peer[@]}" | LC_ALL=C sort)

mapfile -t peers < <(printf '%s\n' "${peer[@]}" | addresses_of)

# The restart is owed from before the files change until coturn runs with them: a run cut short in between, or
# a restart that failed, is redone by the next run even though the files are then up to date.
mkdir -p "$state"
chmod 0700 "$state"
owed=false
pending restart && owed=true
pending_add restart
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
$(for address in "${peers[@]}"; do [ -n "$address" ] && echo "allowed-peer-ip=$address"; done)
CONF

# Port 443 needs CAP_NET_BIND_SERVICE: coturn runs as the turnserver user.
if write_if_changed "$ROOT/etc/systemd/system/coturn.service.d/override.conf" 0644 root:root <<UNIT; then config_changed=true; fi
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
if [ "$config_changed" = true ] || [ "$owed" = true ]; then
  if [ "$config_changed" = true ]; then
    say "configuration changed; restarting coturn"
  else
    say "an earlier run changed the configuration but coturn did not restart then; restarting coturn"
  fi
  systemctl daemon-reload || fail "systemctl daemon-reload failed"
  systemctl restart coturn.service || fail "coturn did not restart (see: journalctl -u coturn); the next run restarts it again"
else
  systemctl start coturn.service || fail "coturn did not start (see: journalctl -u coturn)"
fi
systemctl is-active --quiet coturn.service || fail "coturn is not running (see: journalctl -u coturn)"

# coturn runs with these servers: remember them (names and addresses only), then the restart is no longer owed.
write_if_changed "$remembered_file" 0600 root:root < <(
  echo "# turn-coturn: the BBB servers coturn relays to since its last successful (re)start: name addresses..."
  for name in "${!peer[@]}"; do printf '%s %s\n' "$name" "${peer[$name]}"; done | LC_ALL=C sort
) || true
pending_done restart
say "coturn is running on $FQDN, relaying to ${#peer[@]} BBB server(s), ${#peers[@]} address(es)"
