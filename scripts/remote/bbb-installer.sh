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
# Inputs: FQDN EMAIL VERSION INSTALLER_URL TURN_HOST TURN_SECRET GREENLIGHT (GREENLIGHT_VERSION) FORCE_REINSTALL
#         UPGRADE_IN_PLACE TIMEOUT_SECONDS PUBLIC_IPV4 PRIVATE_IPV4
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${FQDN:?}" "${EMAIL:?}" "${VERSION:?}" "${INSTALLER_URL:?}" "${TURN_HOST:?}" "${TURN_SECRET:?}"
: "${GREENLIGHT:?}" "${FORCE_REINSTALL:?}" "${UPGRADE_IN_PLACE:?}" "${TIMEOUT_SECONDS:?}" "${PUBLIC_IPV4:?}" "${PRIVATE_IPV4:?}"
for input in PUBLIC_IPV4 PRIVATE_IPV4; do
  [[ ${!input} =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]] || fail "$input '${!input}' is not an IPv4 address"
done

state=$ROOT/var/lib/bbb-deploy
installer=$state/bbb-install.sh
done_file=$state/installer.sha256
url_file=$state/installer-url
version_file=$state/installed-version
runner=$state/bbb-install-run.sh
masking=$state/bbb-install-mask.sed
coturn=$state/bbb-install-coturn
turn_xml=$ROOT/etc/bigbluebutton/turn-stun-servers.xml
result=$state/bbb-install.result
log=$ROOT/var/log/bbb-deploy/bbb-install.log
unit=bbb-deploy-install
mkdir -p "$state" "$(dirname "$log")"
chmod 0700 "$state"
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

# bbb-install.sh runs as its own systemd unit, detached from this SSH session: a dropped session or a cancelled
# pulumi up does not kill it halfway, and the next run of this step waits for it instead of starting another.
installer_running() {
  case $(systemctl is-active "$unit" 2>/dev/null) in active | activating | deactivating | reloading) return 0 ;; esac
  return 1
}
wait_for_installer() {
  local deadline=$((SECONDS + TIMEOUT_SECONDS + 60)) tenths=1
  while installer_running; do
    # coverage: not reached in tests: the installer must outlive its own timeout by a minute: a test would wait over 60 s
    [ "$SECONDS" -lt "$deadline" ] ||
      fail "bbb-install.sh (unit $unit) still runs after ${TIMEOUT_SECONDS}s (see: journalctl -u $unit; /var/log/bbb-deploy/bbb-install.log)"
    # Looks again after 0.1 s, then twice as long each time, 10 s at most.
    sleep "$((tenths / 10)).$((tenths % 10))"
    tenths=$((tenths * 2 > 100 ? 100 : tenths * 2))
  done
}
if installer_running; then
  say "bbb-install.sh runs already (started by an earlier, interrupted run of this step); waiting for it"
  wait_for_installer
fi
# The masking script and the value of -c of an earlier run hold the TURN secret: gone once no installer runs.
rm -f "$runner" "$masking" "$coturn"

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
if [ "$recorded" = "$fingerprint" ]; then
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

# The installer restarts every BigBlueButton service: it runs only on a server that hosts no meeting. A run
# of bbb-install.sh that started and did not finish (it failed, or was killed) may have left BigBlueButton
# down and half installed: its API does not answer, and running the installer again is what finishes it,
# once dpkg's own unfinished work is done.
if pending install && ! meetings_here >/dev/null && bbb_down; then
  say "an earlier bbb-install.sh run did not finish and BigBlueButton is down; running it again"
else
  guard_meetings "re-running bbb-install.sh (it restarts every BigBlueButton service)" "$FORCE_REINSTALL" forceReinstall
fi
: >"$log"
chmod 0600 "$log"
if pending install; then
  say "finishing what an interrupted run left to dpkg (dpkg --configure -a)"
  DEBIAN_FRONTEND=noninteractive dpkg --configure -a >>"$log" 2>&1 ||
    fail "dpkg --configure -a failed; the package database needs a hand (log: /var/log/bbb-deploy/bbb-install.log)"
fi

say "downloading $INSTALLER_URL"
curl -fsSL --retry 5 --max-time 120 -o "$installer.new" "$INSTALLER_URL" || fail "cannot download $INSTALLER_URL"
head -n1 "$installer.new" | grep -q '^#!.*bash' || fail "$INSTALLER_URL is not a bash script"
mv -f "$installer.new" "$installer"

# The addresses, as get_IP would find them with a hairpinning router. Behind NAT, check_nat puts the public one on
# lo with `ip addr add`, which fails when it is there (from the run before, or dummy-nic.service at boot) and,
# under -e, stops the installer: it goes first (BigBlueButton is idle, and restarts with the installer), and
# comes back when the installer fails before check_nat (FreeSWITCH's websockets and nginx's sip.nginx use it).
addresses=(IP="$PUBLIC_IPV4")
take_lo=":" restore_lo=":"
if [ "$PUBLIC_IPV4" != "$PRIVATE_IPV4" ]; then
  addresses+=(INTERNAL_IP="$PRIVATE_IPV4")
  # In the runner, right before the installer: nothing else can fail in between.
  take_lo="if ip -4 -o addr show dev lo | grep -q ' inet $PUBLIC_IPV4/32 '; then ip addr del $PUBLIC_IPV4/32 dev lo 2>>$(printf '%q' "$log") || { echo lo >$(printf '%q' "$result"); exit; }; fi"
  restore_lo="ip addr replace $PUBLIC_IPV4/32 dev lo"
fi
# -c stands alone here: its value, TURN_HOST:TURN_SECRET, is read from $coturn and put right after it by the
# loader below. The order is bbb-install.sh's own: check_coturn, run as getopts meets -c, checks the TURN host
# against this host's address unless -s came first (check_host, v3.0.x-release 26ce2d16 L589-616).
args=(-v "$VERSION" -s "$FQDN" -e "$EMAIL" -c)
if [ "$GREENLIGHT" = true ]; then
  args+=(-g)
  greenlight_compose "$GREENLIGHT_VERSION" || true
fi
# bbb-install.sh takes the TURN secret only as an argument (-c host:secret, parsed by getopts into COTURN; no
# file, no variable of the environment). So it is not started with it: a bash started with the other arguments
# reads the value of -c from its root-only file, inserts it after -c into its own positional parameters and
# then sources bbb-install.sh, which reads them as its arguments ("$@", main "$@" on its last line) as if it
# had been started with them: the same script, options and checks, but on no command line (ps,
# /proc/<pid>/cmdline), which every user of the host can read. It runs under bash -e as before: its first
# line asks for -e, which `bash script` does not read.
# shellcheck disable=SC2016  # expanded by the bash that runs it
loader='coturn=$(<"$1"); shift; for a; do shift; set -- "$@" "$a"; [ "$a" != -c ] || set -- "$@" "$coturn"; done; unset a coturn; . "$0"'
# The masking script and the value of -c hold the TURN secret: root only, and only while the installer runs
# (sed reads it from its script, bbb-install.sh from the file, as above). The installer's output (thousands of
# lines) goes to a root-only log with the secret masked, not into the Pulumi state; its exit code to $result;
# its success is recorded.
(
  umask 077
  printf 's/%s/[secret]/g\n' "$TURN_SECRET" >"$masking"
  printf '%s:%s\n' "$TURN_HOST" "$TURN_SECRET" >"$coturn"
  cat >"$runner" <<RUNNER
#!/usr/bin/env bash
# Written by the bbb-installer step (bbb, Pulumi); run as systemd unit $unit.
set -o pipefail
$take_lo
# From here until it succeeds, a run of bbb-install.sh is unfinished (lib.sh's pending work).
mkdir -p $(printf '%q' "$(dirname "$(pending_file install)")")
: >$(printf '%q' "$(pending_file install)")
# bbb-install.sh, its -c read from a root-only file (see the bbb-installer step).
$(printf '%q ' "${addresses[@]}")timeout $TIMEOUT_SECONDS bash -e -c $(printf '%q' "$loader") $(printf '%q' "$installer") $(printf '%q' "$coturn") $(printf '%q ' "${args[@]}")2>&1 | sed -f $(printf '%q' "$masking") >>$(printf '%q' "$log")
rc=\$?
[ "\$rc" -eq 0 ] || $restore_lo
if [ "\$rc" -eq 0 ]; then
  printf '%s\\n' $fingerprint >$(printf '%q' "$done_file")
  printf '%s\\n' $(printf '%q' "$INSTALLER_URL") >$(printf '%q' "$url_file")
  printf '%s\\n' $(printf '%q' "$VERSION") >$(printf '%q' "$version_file")
  rm -f $(printf '%q' "$(pending_file install)")
fi
echo "\$rc" >$(printf '%q' "$result")
RUNNER
)
chmod 0700 "$runner"
rm -f "$result"
shown=()
for arg in "${args[@]}"; do
  shown+=("$arg")
  [ "$arg" != -c ] || shown+=("$TURN_HOST:[secret]")
done
say "running bbb-install.sh ${shown[*]} as unit $unit (output: /var/log/bbb-deploy/bbb-install.log)"
systemd-run --unit="$unit" --collect --quiet "$runner" || {
  rm -f "$runner" "$masking" "$coturn"
  fail "cannot start bbb-install.sh as the systemd unit $unit"
}
wait_for_installer

rc=$(cat "$result" 2>/dev/null || echo none)
rm -f "$runner" "$masking" "$coturn"
if [ "$rc" != 0 ]; then
  tail -n 40 "$log" >&2
  [ "$rc" = lo ] && fail "cannot take $PUBLIC_IPV4 off lo for bbb-install.sh's NAT set-up (see: journalctl -u $unit)"
  [ "$rc" = 124 ] && fail "bbb-install.sh did not finish within ${TIMEOUT_SECONDS}s (log: /var/log/bbb-deploy/bbb-install.log)"
  if [ "$rc" = none ]; then
    $restore_lo
    fail "bbb-install.sh ended without an exit code (killed? see: journalctl -u $unit)"
  fi
  fail "bbb-install.sh failed with exit code $rc (last lines above; log: /var/log/bbb-deploy/bbb-install.log)"
fi
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
say "bbb-install.sh finished"
