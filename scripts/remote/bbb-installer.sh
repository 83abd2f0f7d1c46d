#!/usr/bin/env bash
# BBB host: runs the pinned bbb-install.sh with -v VERSION -s FQDN -e EMAIL -c TURN_HOST:TURN_SECRET
# (and -g for Greenlight), the value of -c off every command line (below: the installer reads it from a root-only
# file into its own arguments). Runs the installer only when its inputs changed since its last success (re-running
# the same command upgrades the packages and restarts everything), and refuses to while meetings are running
# or when it cannot tell (guard_meetings), unless FORCE_REINSTALL is true; a run that did not finish is run
# again. With UPGRADE_IN_PLACE false (a pool, whose servers are upgraded by replacement) it also refuses a new
# VERSION on a server installed with another one, unless FORCE_REINSTALL.
# With GREENLIGHT true, Greenlight runs on Docker Compose v2 from the image tag GREENLIGHT_VERSION (lib.sh,
# greenlight_compose); the tag alone does not re-run the installer (bbb-configure recreates Greenlight).
# Behind a floating IP (PUBLIC_IPV4 not PRIVATE_IPV4, the VM's own), bbb-install.sh takes the NAT set-up only when
# the VM reaches its public address on 443 (get_IP, v3.0.x-release 26ce2d16): where the router does not hairpin,
# FreeSWITCH and the media server announce the private address, and browsers and phones get no media. So the
# installer is given both addresses (IP, INTERNAL_IP: get_IP then detects nothing), and what the server
# announces is checked after every run, and before deciding there is nothing to do: a server that announces
# another address is installed again (guarded as any other run).
# A server booted from a clone of a bake's golden volume (bbb-bake.sh; docs/bake.md) holds BigBlueButton's packages
# and the marker /var/lib/bbb-deploy/baked, and no record of an installer run: it is finalised (finalise_baked,
# below) before the installer runs as above, over the installed packages, and checked for anything of the bake
# left afterwards (baked_leftovers); the marker goes once that passed. Such a server has never hosted a meeting:
# no meetings check.
# Inputs: FQDN EMAIL VERSION INSTALLER_URL TURN_HOST TURN_SECRET GREENLIGHT (GREENLIGHT_VERSION) FORCE_REINSTALL
#         UPGRADE_IN_PLACE TIMEOUT_SECONDS PUBLIC_IPV4 PRIVATE_IPV4; for a server booted from a bake only, BAKE_KEY
#         (the bake's; must be the marker's). The API secret and the bbb-web properties a finalise writes come from
#         the bbb-seed step's root-only files (/var/lib/bbb-deploy/seed/secret, properties), not from the inputs:
#         a later secret or properties must not run this step again. Without them the finalise leaves both to
#         bbb-configure (which then restarts BigBlueButton once more).
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${FQDN:?}" "${EMAIL:?}" "${VERSION:?}" "${INSTALLER_URL:?}" "${TURN_HOST:?}" "${TURN_SECRET:?}"
: "${GREENLIGHT:?}" "${FORCE_REINSTALL:?}" "${UPGRADE_IN_PLACE:?}" "${TIMEOUT_SECONDS:?}" "${PUBLIC_IPV4:?}" "${PRIVATE_IPV4:?}"
ipv4_inputs PUBLIC_IPV4 PRIVATE_IPV4
BAKE_KEY=${BAKE_KEY:-}

done_file=$ROOT/var/lib/bbb-deploy/installer.sha256
url_file=$ROOT/var/lib/bbb-deploy/installer-url
version_file=$ROOT/var/lib/bbb-deploy/installed-version
turn_xml=$ROOT/etc/bigbluebutton/turn-stun-servers.xml
[[ $TURN_SECRET =~ ^[0-9a-f]+$ ]] || fail "the TURN secret must be lower-case hex"
[ "$GREENLIGHT" != true ] || [[ ${GREENLIGHT_VERSION:-} =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] ||
  fail "GREENLIGHT_VERSION '${GREENLIGHT_VERSION:-}' is not an image tag"

# What the installed BigBlueButton announces that is not PUBLIC_IPV4, a line each: FreeSWITCH (vars.xml, which
# check_nat writes), the media server (bbb-webrtc-sfu's production.yml, which install_ssl writes) and, behind NAT,
# the public address on lo (FreeSWITCH and the media server bind it), also at boot (check_nat's dummy-nic.service).
announced() { case $1 in "" | null) echo nothing ;; *) echo "$1" ;; esac; }
misannounced() {
  local vars=$ROOT/opt/freeswitch/etc/freeswitch/vars.xml sfu=$ROOT/etc/bigbluebutton/bbb-webrtc-sfu/production.yml key value webrtc plain
  for key in external_rtp_ip external_sip_ip; do
    value=$(sed -n "s/.*data=\"$key=\([^\"]*\)\".*/\1/p" "$vars" 2>/dev/null | tail -n1)
    [ "$value" = "$PUBLIC_IPV4" ] || echo "FreeSWITCH ($key in vars.xml) announces $(announced "$value"), not $PUBLIC_IPV4"
  done
  # Where FreeSWITCH binds SIP and RTP (sip-ip, rtp-ip): without the line it finds the address itself.
  value=$(local_ip "$vars")
  [ -z "$value" ] || [ "$value" = "$PRIVATE_IPV4" ] || echo "FreeSWITCH binds $value (local_ip_v4 in vars.xml), not $PRIVATE_IPV4"
  # yq prints null for a key that is not there.
  { read -r webrtc && read -r plain; } < <(yq e '.mediasoup.webrtc.listenIps[0].announcedIp, .mediasoup.plainRtp.listenIp.announcedIp' "$sfu" 2>/dev/null) || true
  [ "${webrtc:-}" = "$PUBLIC_IPV4" ] || echo "the media server (bbb-webrtc-sfu) announces $(announced "${webrtc:-}"), not $PUBLIC_IPV4"
  [ "${plain:-}" = "$PUBLIC_IPV4" ] || echo "bbb-webrtc-sfu's RTP with FreeSWITCH (plainRtp) announces $(announced "${plain:-}"), not $PUBLIC_IPV4"
  if [ "$PUBLIC_IPV4" != "$PRIVATE_IPV4" ]; then
    ip -4 -o addr show dev lo | grep -q " inet $PUBLIC_IPV4/32 " || echo "$PUBLIC_IPV4 is not on lo (bbb-install.sh's NAT set-up)"
    grep -q "ip addr add $PUBLIC_IPV4 dev lo" "$ROOT/lib/systemd/system/dummy-nic.service" 2>/dev/null ||
      echo "dummy-nic.service does not put $PUBLIC_IPV4 on lo at boot"
  fi
  return 0
}

# What -c makes bbb-install.sh write for bbb-web (configure_coturn, L1699-1753): the TURN servers it hands to
# browsers, TURN_HOST on 3478 and TLS on 443, with the TURN secret. Compared in bash alone (no command line).
turn_servers_ok() {
  local xml
  [ -f "$turn_xml" ] || return 1
  xml=$(<"$turn_xml")
  [[ $xml == *"value=\"$TURN_SECRET\""* && $xml == *"value=\"turn:$TURN_HOST:3478\""* && $xml == *"value=\"turns:$TURN_HOST:443?transport=tcp\""* ]]
}

# local_ip_v4 in FreeSWITCH's vars.xml, empty when the file has no such line.
local_ip() {
  sed -n 's/.*data="local_ip_v4=\([^"]*\)".*/\1/p' "$1" 2>/dev/null | tail -n1
}

bbb_install_init

# A server booted from a clone of a bake: the marker bbb-bake.sh left (BAKE_KEY, BAKE_NAME and the builder's
# PUBLIC_IPV4 and PRIVATE_IPV4, a line each) says which bake, and that it is not finalised yet.
marker=$ROOT/var/lib/bbb-deploy/baked
baked=false
if [ -f "$marker" ]; then
  baked=true
  bake_key=$(sed -n 's/^BAKE_KEY=//p' "$marker")
  bake_name=$(sed -n 's/^BAKE_NAME=//p' "$marker")
  bake_addresses=$(sed -n 's/^P[A-Z]*_IPV4=//p' "$marker")
  [ "$BAKE_KEY" = "$bake_key" ] ||
    fail "$FQDN was booted from the bake $bake_name (key $bake_key), not from ${BAKE_KEY:-a bake} as this program says (BAKE_KEY):" \
      "its disk is another bake's clone. Nothing was changed; replace the server (its boot volume) to boot it from the right bake."
  seed=$ROOT/var/lib/bbb-deploy/seed
  SECRET=$(cat "$seed/secret" 2>/dev/null || true)
  # shellcheck disable=SC2034  # read by lib.sh's bbb_stale_properties
  PROPERTIES=$(cat "$seed/properties" 2>/dev/null || true)
  [ -z "$SECRET" ] || [[ $SECRET =~ ^[A-Za-z0-9]{32,}$ ]] || fail "the seeded API secret ($seed/secret) is not 32 or more letters and digits"
elif [ -n "$BAKE_KEY" ] && [ ! -f "$done_file" ]; then
  fail "BAKE_KEY is given, but $FQDN holds no bake marker (/var/lib/bbb-deploy/baked) and no record of an installer run:" \
    "it was not booted from that bake. Nothing was changed."
fi

# What the last successful run was given: a hash of the inputs but the installer's URL ($done_file), and that
# URL ($url_file). Another URL alone does not run the installer again: it would restart every service to
# install the same packages; it is used the next time the installer runs. An earlier version of this program
# recorded one hash with the URL first, the release branch of the version's line (v3.0.x-release for
# jammy-30x) unless bbbInstallerRef said otherwise: such a record is read as that.
fingerprint=$(printf '%s\n' "$VERSION" "$FQDN" "$EMAIL" "$TURN_HOST" "$TURN_SECRET" "$GREENLIGHT" | sha256sum | cut -d' ' -f1)
recorded=$(cat "$done_file" 2>/dev/null || true)
last_url=$(cat "$url_file" 2>/dev/null || true)
if [ -n "$recorded" ] && [ ! -f "$url_file" ]; then
  branch_url=$(sed -E "s|/[^/]+/bbb-install\.sh\$|/v${VERSION:${#VERSION}-3:1}.${VERSION:${#VERSION}-2:1}.x-release/bbb-install.sh|" <<<"$INSTALLER_URL")
  for url in "$INSTALLER_URL" "$branch_url"; do
    if [ "$(printf '%s\n' "$url" "$VERSION" "$FQDN" "$EMAIL" "$TURN_HOST" "$TURN_SECRET" "$GREENLIGHT" | sha256sum | cut -d' ' -f1)" = "$recorded" ]; then
      recorded=$fingerprint last_url=$url
    fi
  done
fi
# A new URL alone waits for the next run, forceReinstall or not: that is set for other reasons (a restart
# through running meetings), and in a pool would reinstall every server at once.
if [ "$baked" = false ] && [ "$recorded" = "$fingerprint" ]; then
  wrong=$(misannounced)
  if [ -n "$wrong" ]; then
    while IFS= read -r line; do say "$line"; done <<<"$wrong"
    say "running bbb-install.sh again, so that the server announces $PUBLIC_IPV4"
    # In a pool nothing takes the server out of service for this reason (the pool's maintenance knows only of
    # changed inputs): it runs once the server hosts no meeting, never forced (forceReinstall, set for another
    # reason, would reinstall every such server at once). Until then the server goes on as it is.
    if [ "$UPGRADE_IN_PLACE" != true ] && ! { count=$(meetings_here) && [ "$count" -eq 0 ]; }; then
      say "$FQDN hosts meetings (or does not say): bbb-install.sh runs again once it hosts none, at a later pulumi up" \
        "(to empty it, add its place in the pool, e.g. bbb-2, to drain)"
      exit 0
    fi
  elif [ "$last_url" = "$INSTALLER_URL" ]; then
    say "bbb-install.sh already ran with these inputs; nothing to do"
    exit 0
  else
    say "bbb-install.sh last ran from ${last_url:-an unrecorded URL}; $INSTALLER_URL runs the next time it runs (a new bbbVersion, a new server)"
    exit 0
  fi
fi

installed=$(cat "$version_file" 2>/dev/null || true)
if [ "$UPGRADE_IN_PLACE" != true ] && [ -n "$installed" ] && [ "$installed" != "$VERSION" ] && [ "$FORCE_REINSTALL" != true ]; then
  fail "$FQDN runs $installed: in a pool, $VERSION comes with new servers, one at a time." \
    "Raise bbbRelease and roll it out with upgrade (README, runbook: Upgrades in a pool), or set bbbVersion back to $installed;" \
    "forceReinstall: true upgrades the servers in place instead."
fi

# Before the installer, on a server booted from a bake: what nothing in bbb-install.sh writes, and what makes its
# run restart BigBlueButton once, not twice. install_ssl runs `bbb-conf --setip` only when the host's name is not in
# bigbluebutton.yml (bbb-install.sh 26ce2d16 L1422-1424); main runs it anyway (L385-389). So the server's URL
# (setip keeps its protocol) and playback_host are written first, and with them the secrets the bake left at
# their package defaults: Hasura's admin secret (bbb-graphql-server's postinst generates it only while it is the
# default, docs/bake.md §2.3) and Etherpad's API key; and the API secret and the properties as bbb-configure
# writes them, so that the bbb-configure step after this one finds nothing to change and restarts nothing.
# The ESL password is ClueCon in the bake: the installer's setip makes a new one (§2.2).
finalise_baked() {
  local yml=$ROOT/usr/local/bigbluebutton/core/scripts/bigbluebutton.yml hasura
  say "finalising a server booted from the bake $bake_name: its name, addresses and secrets"
  bbb_write_properties "bigbluebutton.web.serverURL=https://$FQDN"
  set_line "$yml" "playback_host:" "playback_host: $FQDN" || fail "cannot write playback_host into $yml"
  hasura=$(random_hex 32)
  if ! set_line "$ROOT/etc/default/bbb-graphql-server" HASURA_GRAPHQL_ADMIN_SECRET= "HASURA_GRAPHQL_ADMIN_SECRET=$hasura" ||
    ! set_line "$ROOT/usr/share/bbb-graphql-server/config.yaml" "admin_secret:" "admin_secret: $hasura"; then
    fail "cannot write Hasura's admin secret (/etc/default/bbb-graphql-server, /usr/share/bbb-graphql-server/config.yaml)"
  fi
  printf '%s\n' "$(random_hex 32)" >"$ROOT/usr/share/etherpad-lite/APIKEY.txt" || fail "cannot write Etherpad's API key"
  if [ -n "$SECRET" ]; then
    mapfile -t stale < <(bbb_stale_properties)
    bbb_write_properties "${stale[@]}"
    bbb_set_secret "$SECRET" || fail "cannot write the API secret (bbb-web.properties, bbb-apps-akka.conf)"
  else
    say "no seed (bbb-seed step): the API secret and properties are left to bbb-configure"
  fi
}

# FreeSWITCH binds SIP and RTP to local_ip_v4 in vars.xml (sip-ip, rtp-ip), which neither bbb-install.sh nor
# bbb-conf writes (docs/bake.md §3.3): a line that holds another address (a package's postinst wrote it on another
# host) gets this host's; a baked server gets the line.
set_local_ip() {
  local vars=$ROOT/opt/freeswitch/etc/freeswitch/vars.xml line="  <X-PRE-PROCESS cmd=\"set\" data=\"local_ip_v4=$PRIVATE_IPV4\"/>"
  if grep -q 'data="local_ip_v4=' "$vars" 2>/dev/null; then
    [ "$(local_ip "$vars")" != "$PRIVATE_IPV4" ] || return 0
    sed -i "s|^.*data=\"local_ip_v4=.*\$|$line|" "$vars"
  elif [ "$baked" = true ]; then
    sed -i "0,/<include>/s|<include>|&\n$line|" "$vars"
  else
    return 0
  fi
  say "FreeSWITCH binds $PRIVATE_IPV4 (local_ip_v4 in vars.xml)"
}

# After the installer on a server booted from a bake, what of the bake is left, a line each (docs/bake.md §3.4):
# FreeSWITCH's local_ip_v4; the ESL password, which setip makes anew from ClueCon, the same in its three files;
# and the bake's placeholder name and the builder's addresses (but for the ones that are this server's own, as a
# reused address may be) in the configuration BigBlueButton reads. Allowed to keep them: bbb-webrtc-sfu's package
# config/default.yml, which its postinst writes from the host's address on every configure and which every key
# of /etc/bigbluebutton/bbb-webrtc-sfu/production.yml overrides (docs/bake.md §2.2).
baked_leftovers() {
  local vars=$ROOT/opt/freeswitch/etc/freeswitch/vars.xml esl fsesl sfu patterns=(-e "$bake_name") address file
  [ "$(local_ip "$vars")" = "$PRIVATE_IPV4" ] || echo "FreeSWITCH binds $(announced "$(local_ip "$vars")") (local_ip_v4 in vars.xml), not $PRIVATE_IPV4"
  esl=$(sed -n 's/.*name="password"[[:space:]]*value="\([^"]*\)".*/\1/p' "$ROOT/opt/freeswitch/etc/freeswitch/autoload_configs/event_socket.conf.xml" 2>/dev/null | head -n1)
  fsesl=$(sed -n 's/.*password="\([^"]*\)".*/\1/p' "$ROOT/etc/bigbluebutton/bbb-fsesl-akka.conf" 2>/dev/null | head -n1)
  sfu=$(yq e '.freeswitch.esl_password' "$ROOT/etc/bigbluebutton/bbb-webrtc-sfu/production.yml" 2>/dev/null || true)
  case $esl in "" | ClueCon) echo "FreeSWITCH's event socket password is $(announced "$esl"), as baked: bbb-conf --setip made no new one" ;; esac
  [ "$esl" = "$fsesl" ] && [ "$esl" = "$sfu" ] ||
    echo "the event socket password differs between event_socket.conf.xml, bbb-fsesl-akka.conf and bbb-webrtc-sfu's production.yml"
  for address in $bake_addresses; do
    [ "$address" = "$PUBLIC_IPV4" ] || [ "$address" = "$PRIVATE_IPV4" ] || patterns+=(-e "$address")
  done
  while IFS= read -r file; do
    case ${file#"$ROOT"} in
      /usr/local/bigbluebutton/bbb-webrtc-sfu/config/default.yml) ;;
      *) echo "${file#"$ROOT"} still holds the bake's name ($bake_name) or the builder's address" ;;
    esac
  done < <(grep -rIlwF "${patterns[@]}" "$ROOT/etc" "$ROOT/opt/freeswitch/etc" "$ROOT/usr/share/bigbluebutton" "$ROOT/usr/local/bigbluebutton" 2>/dev/null | sort)
  return 0
}

# The installer restarts every BigBlueButton service: it runs only on a server that hosts no meeting (a server
# booted from a bake has never hosted one, and its API cannot answer before it is finalised: no meetings check). A run
# of bbb-install.sh that started and did not finish (it failed, or was killed) may have left BigBlueButton
# down and half installed: its API does not answer, and running the installer again is what finishes it,
# once dpkg's own unfinished work is done.
if [ "$baked" = true ]; then
  finalise_baked
elif pending install && ! meetings_here >/dev/null && bbb_down; then
  say "an earlier bbb-install.sh run did not finish and BigBlueButton is down; running it again"
else
  guard_meetings "re-running bbb-install.sh (it restarts every BigBlueButton service)" "$FORCE_REINSTALL" forceReinstall
fi
set_local_ip

# -c stands alone here: its value, TURN_HOST:TURN_SECRET, is read from a root-only file and put right after it
# (lib.sh, bbb_install_run). The order is bbb-install.sh's own: check_coturn, run as getopts meets -c, checks the
# TURN host against this host's address unless -s came first (check_host, v3.0.x-release 26ce2d16 L589-616).
args=(-v "$VERSION" -s "$FQDN" -e "$EMAIL" -c)
if [ "$GREENLIGHT" = true ]; then
  args+=(-g)
  greenlight_compose "$GREENLIGHT_VERSION" || true
fi
bbb_install_run "$INSTALLER_URL" "$PUBLIC_IPV4" "$PRIVATE_IPV4" "$TURN_HOST" "$TURN_SECRET" \
  "$done_file" "$fingerprint" "$url_file" "$INSTALLER_URL" "$version_file" "$VERSION" -- "${args[@]}"
chmod 0600 "$done_file" "$url_file" "$version_file"
if ! turn_servers_ok; then
  # Not done: the next run installs again.
  rm -f "$done_file"
  fail "bbb-install.sh ran, but bbb-web's TURN servers (/etc/bigbluebutton/turn-stun-servers.xml) are not $TURN_HOST with the" \
    "stack's TURN secret, as -c asks (docs/upstream.md: bbb-install.sh's -c; the installer from another bbbInstallerRef may not take it)"
fi
wrong=$(misannounced)
[ -z "$wrong" ] || fail "bbb-install.sh ran, but:" "$wrong" \
  "(docs/upstream.md: bbb-install.sh's addresses; the installer from another bbbInstallerRef may not take them)"
if [ "$baked" = true ]; then
  wrong=$(baked_leftovers)
  if [ -n "$wrong" ]; then
    # Not done: the marker stays, and the next run finalises again.
    rm -f "$done_file"
    fail "bbb-install.sh ran, but what the bake $bake_name left is still there:" "$wrong" "(docs/bake.md §3.4)"
  fi
  rm -rf "$marker" "$seed"
  say "finalised: $FQDN holds nothing of the bake $bake_name"
fi
say "bbb-install.sh finished"
