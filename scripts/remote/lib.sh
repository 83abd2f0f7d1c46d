#!/usr/bin/env bash
# Functions every remote step may use. components/remote.ts sends this file ahead of each step's script,
# after the step's inputs (STEP, the step's name, is one of them). ROOT (default empty) prefixes every
# path a step writes, so tests can run the steps in a temporary directory.
# shellcheck disable=SC2034  # ROOT is read by the step scripts
ROOT=${ROOT:-}

# Prints a message naming the step on stderr and stops.
fail() {
  echo "${STEP:-step}: error: $*" >&2
  exit 1
}

say() {
  echo "${STEP:-step}: $*"
}

# Copies stdin to stdout with every given secret replaced by [secret]. Used on installer output.
mask() {
  local line secret
  while IFS= read -r line || [ -n "$line" ]; do
    for secret in "$@"; do
      [ -n "$secret" ] && line=${line//"$secret"/[secret]}
    done
    printf '%s\n' "$line"
  done
}

# Installs Ubuntu packages, refreshing the package lists once if they are stale or empty.
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if ! timeout 900 apt-get install -y -q "$@" >/dev/null 2>&1; then
    timeout 900 apt-get update -q >/dev/null 2>&1 || fail "apt-get update failed"
    timeout 900 apt-get install -y -q "$@" >/dev/null || fail "apt-get install $* failed"
  fi
}

# Writes stdin to FILE (mode MODE, owner OWNER) only when the content differs. Returns 0 when it wrote.
write_if_changed() {
  local file=$1 mode=$2 owner=$3 tmp
  tmp=$(mktemp "${file}.XXXXXX") || fail "cannot write next to $file"
  cat >"$tmp"
  chmod "$mode" "$tmp"
  chown "$owner" "$tmp" || {
    rm -f "$tmp"
    fail "cannot chown $owner $file"
  }
  if [ -f "$file" ] && diff -q "$tmp" "$file" >/dev/null; then
    rm -f "$tmp"
    return 1
  fi
  mv -f "$tmp" "$file"
  return 0
}

# Fails unless each named input is an IPv4 address.
ipv4_inputs() {
  local input
  for input; do
    [[ ${!input} =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]] || fail "$input '${!input}' is not an IPv4 address"
  done
}

# set_line FILE PREFIX LINE: puts LINE in place of FILE's lines that start with PREFIX (or at its end, when none
# does), in bash alone (LINE may hold a secret: on no command line); FILE keeps its owner and mode.
set_line() {
  local file=$1 prefix=$2 new=$3 line out="" found=false
  [ -f "$file" ] || return 1
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ $line == "$prefix"* ]]; then
      $found || out+=$new$'\n'
      found=true
    else
      out+=$line$'\n'
    fi
  done <"$file"
  $found || out+=$new$'\n'
  printf '%s' "$out" >"$file"
}

# bbb-web's property overrides, which bbb-configure writes and a baked server's finalise writes ahead of it:
# bbb_stale_properties prints the lines of PROPERTIES (key=value lines) that /etc/bigbluebutton/bbb-web.properties
# lacks; bbb_write_properties LINE... writes each, in place of its key's line, else appended (properties hold no
# secret).
bbb_stale_properties() {
  local line props=$ROOT/etc/bigbluebutton/bbb-web.properties
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    grep -qxF -- "$line" "$props" || printf '%s\n' "$line"
  done <<<"$PROPERTIES"
}
bbb_write_properties() {
  local line key props=$ROOT/etc/bigbluebutton/bbb-web.properties
  for line; do
    key=${line%%=*}
    if grep -q "^$key=" "$props"; then
      sed -i "s|^$key=.*|$line|" "$props"
    else
      printf '%s\n' "$line" >>"$props"
    fi
    say "set $line"
  done
}

# bbb_set_secret SECRET: what `bbb-conf --setsecret SECRET` writes (bigbluebutton-config/bin/bbb-conf, v3.0.x,
# "Set Shared Secret": its sed has the secret on its command line, which every user of the host can read):
# securitySalt in bbb-web.properties (every securitySalt line, commented or not, when there is an uncommented one;
# else a line appended); sharedSecret in bbb-webhooks' config/default.yml and in bbb-apps-akka.conf, shared_secret
# in bbb-webhooks' extra/post_catcher.js, each where the file is. Edited in place by sed as bbb-conf does (owner
# and mode kept), its script, which holds the secret, in a root-only file.
bbb_set_secret() {
  local secret=$1 dir=$ROOT/var/lib/bbb-deploy props=$ROOT/etc/bigbluebutton/bbb-web.properties script file rc=0
  mkdir -p "$dir" && chmod 0700 "$dir" || return 1
  rm -f "$dir"/setsecret.* # a run cut short may have left one
  script=$(mktemp "$dir/setsecret.XXXXXX") || return 1
  file=$ROOT/usr/local/bigbluebutton/bbb-webhooks/config/default.yml
  if [ -f "$file" ]; then
    sed_secret "$script" "s/^\([[:blank:]#]*\)sharedSecret: .*/\1sharedSecret: $secret/" "$file" || rc=1
  fi
  file=$ROOT/usr/local/bigbluebutton/bbb-webhooks/extra/post_catcher.js
  if [ "$rc" = 0 ] && [ -f "$file" ]; then
    sed_secret "$script" "s/^\([[:blank:]]*var shared_secret[ =]*\)[^;]*/\1\"$secret\"/" "$file" || rc=1
  fi
  file=$ROOT/etc/bigbluebutton/bbb-apps-akka.conf
  if [ "$rc" = 0 ] && [ -f "$file" ]; then
    sed_secret "$script" "s/sharedSecret[ ]*=[ ]*\"[^\"]*\"/sharedSecret=\"$secret\"/g" "$file" || rc=1
  fi
  # bbb-web.properties last: whether the secret is new is read from it, so a run that stops before it
  # writes every file again next time.
  if [ "$rc" = 0 ] && grep -q '^securitySalt' "$props"; then
    sed_secret "$script" "s/^[[:blank:]#]*securitySalt.*/securitySalt=$secret/" "$props" || rc=1
  elif [ "$rc" = 0 ]; then
    printf 'securitySalt=%s\n' "$secret" >>"$props" || rc=1
  fi
  rm -f "$script"
  return "$rc"
}
# sed_secret SCRIPT EXPRESSION FILE: edits FILE in place with EXPRESSION, which sed reads from SCRIPT.
sed_secret() {
  printf '%s\n' "$2" >"$1" && sed -i -f "$1" "$3"
}

# A random lower-case hex string of 2N characters (N bytes of the kernel's randomness), made without putting it
# on any command line (it reaches stdout only).
random_hex() {
  head -c "$1" /dev/urandom | sha256sum | cut -c "1-$(($1 * 2))"
}

# bbb-install.sh (the pinned one, from a URL), run by a step as its own systemd unit, detached from the SSH session:
# a dropped session or a cancelled pulumi up does not kill it halfway, and the next run of a step waits for it
# instead of starting another. bbb_install_init sets the paths (and waits for a run an earlier step left running);
# bbb_install_run runs it. Uses TIMEOUT_SECONDS.
bbb_install_init() {
  state=$ROOT/var/lib/bbb-deploy
  installer=$state/bbb-install.sh
  runner=$state/bbb-install-run.sh
  masking=$state/bbb-install-mask.sed
  coturn=$state/bbb-install-coturn
  result=$state/bbb-install.result
  log=$ROOT/var/log/bbb-deploy/bbb-install.log
  unit=bbb-deploy-install
  mkdir -p "$state" "$(dirname "$log")"
  chmod 0700 "$state"
  if installer_running; then
    say "bbb-install.sh runs already (started by an earlier, interrupted run of this step); waiting for it"
    wait_for_installer
  fi
  # The masking script and the value of -c of an earlier run hold the TURN secret: gone once no installer runs.
  rm -f "$runner" "$masking" "$coturn"
}
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

# bbb_install_run URL PUBLIC_IPV4 PRIVATE_IPV4 TURN_HOST TURN_SECRET [FILE VALUE]... -- ARG...: downloads
# bbb-install.sh from URL and runs it with ARG... (-c standing alone: its value, TURN_HOST:TURN_SECRET, is put
# after it on no command line, below), IP and, behind NAT (PUBLIC_IPV4 not PRIVATE_IPV4), INTERNAL_IP in its
# environment; once it succeeded, the unit writes each VALUE into its FILE (what the step records of the run).
# Returns once it succeeded; else fails, saying why.
bbb_install_run() {
  local url=$1 public=$2 private=$3 turn_host=$4 turn_secret=$5 record="" addresses take_lo=":" restore_lo=":" loader shown arg rc
  shift 5
  while [ "$1" != -- ]; do
    record+="  printf '%s\\n' $(printf '%q' "$2") >$(printf '%q' "$1")"$'\n'
    shift 2
  done
  shift
  : >"$log"
  chmod 0600 "$log"
  if pending install; then
    say "finishing what an interrupted run left to dpkg (dpkg --configure -a)"
    DEBIAN_FRONTEND=noninteractive dpkg --configure -a >>"$log" 2>&1 ||
      fail "dpkg --configure -a failed; the package database needs a hand (log: /var/log/bbb-deploy/bbb-install.log)"
  fi

  say "downloading $url"
  curl -fsSL --retry 5 --max-time 120 -o "$installer.new" "$url" || fail "cannot download $url"
  head -n1 "$installer.new" | grep -q '^#!.*bash' || fail "$url is not a bash script"
  mv -f "$installer.new" "$installer"

  # The addresses, as get_IP would find them with a hairpinning router. Behind NAT, check_nat puts the public one on
  # lo with `ip addr add`, which fails when it is there (from the run before, or dummy-nic.service at boot) and,
  # under -e, stops the installer: it goes first (BigBlueButton is idle, and restarts with the installer), and
  # comes back when the installer fails before check_nat (FreeSWITCH's websockets and nginx's sip.nginx use it).
  addresses=(IP="$public")
  if [ "$public" != "$private" ]; then
    addresses+=(INTERNAL_IP="$private")
    # In the runner, right before the installer: nothing else can fail in between.
    take_lo="if ip -4 -o addr show dev lo | grep -q ' inet $public/32 '; then ip addr del $public/32 dev lo 2>>$(printf '%q' "$log") || { echo lo >$(printf '%q' "$result"); exit; }; fi"
    restore_lo="ip addr replace $public/32 dev lo"
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
    printf 's/%s/[secret]/g\n' "$turn_secret" >"$masking"
    printf '%s:%s\n' "$turn_host" "$turn_secret" >"$coturn"
    cat >"$runner" <<RUNNER
#!/usr/bin/env bash
# Written by the $STEP step (bbb, Pulumi); run as systemd unit $unit.
set -o pipefail
$take_lo
# From here until it succeeds, a run of bbb-install.sh is unfinished (lib.sh's pending work).
mkdir -p $(printf '%q' "$(dirname "$(pending_file install)")")
: >$(printf '%q' "$(pending_file install)")
# bbb-install.sh, its -c read from a root-only file (see lib.sh, bbb_install_run).
$(printf '%q ' "${addresses[@]}")timeout $TIMEOUT_SECONDS bash -e -c $(printf '%q' "$loader") $(printf '%q' "$installer") $(printf '%q' "$coturn") $(printf '%q ' "$@")2>&1 | sed -f $(printf '%q' "$masking") >>$(printf '%q' "$log")
rc=\$?
[ "\$rc" -eq 0 ] || $restore_lo
if [ "\$rc" -eq 0 ]; then
$record  rm -f $(printf '%q' "$(pending_file install)")
fi
echo "\$rc" >$(printf '%q' "$result")
RUNNER
  )
  chmod 0700 "$runner"
  rm -f "$result"
  shown=()
  for arg; do
    shown+=("$arg")
    [ "$arg" != -c ] || shown+=("$turn_host:[secret]")
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
    [ "$rc" = lo ] && fail "cannot take $public off lo for bbb-install.sh's NAT set-up (see: journalctl -u $unit)"
    [ "$rc" = 124 ] && fail "bbb-install.sh did not finish within ${TIMEOUT_SECONDS}s (log: /var/log/bbb-deploy/bbb-install.log)"
    if [ "$rc" = none ]; then
      $restore_lo
      fail "bbb-install.sh ended without an exit code (killed? see: journalctl -u $unit)"
    fi
    fail "bbb-install.sh failed with exit code $rc (last lines above; log: /var/log/bbb-deploy/bbb-install.log)"
  fi
  return 0
}

# The BigBlueButton API checksum: sha1(call + query + secret). The secret never reaches an argv.
bbb_checksum() {
  printf '%s%s%s' "$1" "$2" "$3" | sha1sum | cut -d' ' -f1
}

# Calls the local BigBlueButton API as https://FQDN (resolved to this host) and prints the XML answer.
bbb_api() {
  local call=$1 query=$2 secret=$3 sum
  sum=$(bbb_checksum "$call" "$query" "$secret")
  curl -sS --max-time 20 --resolve "$FQDN:443:127.0.0.1" \
    "https://$FQDN/bigbluebutton/api/$call?${query:+$query&}checksum=$sum"
}

# Calls a BigBlueButton API at API_URL (https://host/bigbluebutton/api) and prints the XML answer.
bbb_api_at() {
  local url=$1 call=$2 query=$3 secret=$4 sum
  sum=$(bbb_checksum "$call" "$query" "$secret")
  curl -sS --max-time 20 "$url/$call?${query:+$query&}checksum=$sum"
}

# The one meetings check of a BBB server: how many meetings it hosts, asked through its own API (getMeetings
# signed with the secret it answers to now, as `bbb-conf --secret` prints it, or else with one of the given
# secrets: a secret written but not yet restarted into). Prints the number. Returns 1 when it cannot tell (no
# answer, a refused checksum, anything but SUCCESS): callers count that as "meetings are running", never as
# "none". A host where BigBlueButton is not installed (no bbb-conf) hosts none.
meetings_here() {
  local secret answer
  command -v bbb-conf >/dev/null || {
    echo 0
    return 0
  }
  for secret in "$(bbb-conf --secret 2>/dev/null | sed -n 's/^ *Secret: *//p' | head -n1)" "$@"; do
    [ -n "$secret" ] || continue
    answer=$(bbb_api getMeetings "" "$secret" 2>/dev/null) || continue
    if [[ $answer == *"<returncode>SUCCESS</returncode>"* ]]; then
      { grep -o '<meeting>' <<<"$answer" || true; } | wc -l
      return 0
    fi
  done
  return 1
}

# True when systemd says bbb-apps-akka, which holds every meeting's state, is not running: then the server
# hosts no meeting, though its API does not answer (an unfinished install or restart left it down).
bbb_down() {
  ! systemctl is-active --quiet bbb-apps-akka
}

# Before anything that would end meetings on this BBB server (a restart, reinstall or stop; WHAT says which):
# goes ahead only when the server hosts none. While meetings run, or when it cannot tell, it stops with
# their number and the ways out, unless FORCE is true: the operator's force setting FORCE_KEY (e.g.
# forceReinstall). More arguments are secrets the server may still answer to (see meetings_here).
guard_meetings() {
  local what=$1 force=$2 force_key=$3 count reason
  shift 3
  if count=$(meetings_here "$@"); then
    [ "$count" -eq 0 ] && return 0
    reason="$count meeting(s) running on $FQDN"
  else
    reason="cannot tell whether meetings run on $FQDN (its API does not answer)"
  fi
  if [ "$force" = true ]; then
    say "$force_key is set: $what although $reason"
    return 0
  fi
  fail "$reason; $what would end them. Nothing was changed." \
    "Run pulumi up again once they have ended, or set $force_key: true (pulumi config set $force_key true) to go ahead now."
}

# Work a step has started but not finished survives a failed run: `pending_add WORK [NOTE]` before changing
# what needs WORK (a restart, a reload), `pending_done WORK` once it succeeded; `pending WORK` tells whether an
# earlier run left it undone, `pending_note WORK` prints the note of the run that started it (kept from the
# first of several unfinished runs). Kept root-only in /var/lib/bbb-deploy/pending/<step>.<work>.
pending_file() {
  printf '%s/var/lib/bbb-deploy/pending/%s.%s' "$ROOT" "${STEP:-step}" "$1"
}
pending() {
  [ -e "$(pending_file "$1")" ]
}
pending_add() {
  local file
  file=$(pending_file "$1")
  [ -e "$file" ] && return 0
  mkdir -p "$(dirname "$file")"
  chmod 0700 "$(dirname "$file")"
  (umask 077 && printf '%s' "${2:-}" >"$file") || fail "cannot record pending work in $file"
}
pending_note() {
  cat "$(pending_file "$1")" 2>/dev/null || true
}
pending_done() {
  rm -f "$(pending_file "$1")"
}

# Attaches an OpenStack data volume of SIZE_GB at MOUNTPOINT: finds its disk (Nova gives the disk the first 20
# characters of the volume id as serial), makes a filesystem only on a blank disk, never on one that holds
# anything, mounts it through /etc/fstab by UUID, and grows the filesystem to the volume's size (a volume
# grown in Cinder is extended online; the disk shows its new size shortly after).
mount_data_volume() {
  local volume_id=$1 mountpoint=$2 size_gb=$3 serial=${1:0:20} device="" link deadline uuid have out
  deadline=$((SECONDS + ${VOLUME_WAIT_SECONDS:-300}))
  while :; do
    for link in "$ROOT/dev/disk/by-id/virtio-$serial" "$ROOT/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_$serial"; do
      if [ -e "$link" ]; then
        device=$(readlink -f "$link")
        break 2
      fi
    done
    [ "$SECONDS" -lt "$deadline" ] || fail "data volume $volume_id is not attached (no /dev/disk/by-id/*$serial)"
    sleep 2
  done
  # blkid -p exits 2 only when it finds no signature at all: only then is the disk blank.
  local rc=0
  blkid -p -o export "$device" >/dev/null 2>&1 || rc=$?
  case $rc in
    0) ;;
    2)
      say "making a filesystem on the blank data volume $volume_id"
      mkfs.ext4 -q -L bbb-data "$device" || fail "mkfs.ext4 failed on $device"
      ;;
    *) fail "cannot tell what data volume $volume_id ($device) holds (blkid exit $rc); refusing to format it" ;;
  esac
  uuid=$(blkid -o value -s UUID "$device" || true)
  [ -n "$uuid" ] || fail "data volume $volume_id ($device) holds something without a filesystem UUID; refusing to touch it"
  mkdir -p "$ROOT$mountpoint"
  if ! grep -q "^UUID=$uuid " "$ROOT/etc/fstab" 2>/dev/null; then
    printf 'UUID=%s %s ext4 defaults,nofail 0 2\n' "$uuid" "$mountpoint" >>"$ROOT/etc/fstab"
  fi
  mountpoint -q "$ROOT$mountpoint" || mount "$ROOT$mountpoint" || fail "cannot mount the data volume at $mountpoint"
  while have=$(blockdev --getsize64 "$device") && [ "$have" -lt $((size_gb * 1073741824)) ]; do
    [ "$SECONDS" -lt "$deadline" ] ||
      fail "data volume $volume_id shows $((have / 1073741824)) GB on $device, not the $size_gb GB it was given (is its extension still running? see: openstack volume show $volume_id)"
    sleep 2
  done
  # resize2fs grows a mounted ext4 online, and does nothing when the filesystem fills the disk already.
  out=$(resize2fs "$device" 2>&1) || {
    printf '%s\n' "$out" >&2
    fail "cannot grow the filesystem of data volume $volume_id to its $size_gb GB (resize2fs)"
  }
  [[ $out != *" is now "* ]] || say "grew the filesystem of data volume $volume_id to its $size_gb GB"
}

# The names of certbot's certificate lineage NAME, sorted, on one line (empty when there is no such lineage), as
# `certbot certificates` reports them ("Domains: a b" under "Certificate Name: NAME", certbot's
# _internal/cert_manager.py).
cert_names() {
  certbot certificates --cert-name "$1" 2>/dev/null |
    awk -v name="$1" '/Certificate Name:/ { mine = ($3 == name) } mine && /Domains:/ { for (i = 2; i <= NF; i++) print $i; exit }' |
    sort | paste -sd ' ' -
}

# Let's Encrypt for a host whose own nginx answers on port 80 (the monitoring and streaming hosts): certbot's webroot
# authenticator puts the HTTP-01 challenges into ACME_WEBROOT, which nginx serves (the streaming host's port-80 server
# is components/streaming-config.ts viewerSite's, the monitoring host's its step's own); nginx is never stopped for it, on
# renewals neither (the streaming host's nginx carries the live RTMP streams too).
ACME_WEBROOT=/var/www/bbb-acme

# webroot_certificate FQDN EMAIL WEBROOT HOOK: a certificate for FQDN (certbot's lineage FQDN) through the webroot
# authenticator, whose challenges nginx must serve from WEBROOT already; kept until it nears its
# expiry. A renewed one reaches nginx through the deploy hook HOOK (certbot runs renewal-hooks/deploy/* after every
# renewal), which reloads nginx.
webroot_certificate() {
  local host=$1 email=$2 webroot=$3 hook=$4
  mkdir -p "$webroot" "$ROOT/etc/letsencrypt/renewal-hooks/deploy"
  write_if_changed "$ROOT/etc/letsencrypt/renewal-hooks/deploy/$hook" 0755 root:root <<HOOK || true
#!/bin/sh
# Installed by bbb ($STEP step): nginx serves a renewed certificate after a reload.
set -e
if systemctl is-active --quiet nginx; then systemctl reload nginx; fi
HOOK
  say "obtaining a certificate for $host (HTTP-01)"
  certbot certonly --webroot -w "$webroot" --non-interactive --agree-tos --keep-until-expiring \
    -m "$email" -d "$host" --cert-name "$host" 2>&1 ||
    fail "certbot could not obtain a certificate for $host (is port 80 open and does $host resolve to this host?)"
}

# Waits until NAME resolves, through OpenDNS (the resolver bbb-install.sh asks for its public address; Let's
# Encrypt sees the same authoritative records), to exactly IPV4 and IPV6 (empty: no AAAA), polling every POLL
# seconds for at most TIMEOUT seconds.
wait_resolves() {
  local name=$1 ipv4=$2 ipv6=$3 timeout=$4 poll=$5 resolver=resolver1.opendns.com deadline a aaaa
  deadline=$((SECONDS + timeout))
  if ! command -v dig >/dev/null; then
    say "installing dig (bind9-dnsutils)"
    apt_install bind9-dnsutils
  fi
  say "waiting for $name to resolve to ${ipv4}${ipv6:+ and $ipv6} through $resolver"
  while :; do
    # Addresses for a record type, sorted, one line, CNAME targets left out.
    a=$(dig +short +time=3 +tries=1 A "$name" "@$resolver" 2>/dev/null | grep -v '\.$' | sort | paste -sd ' ' - || true)
    aaaa=$(dig +short +time=3 +tries=1 AAAA "$name" "@$resolver" 2>/dev/null | grep -v '\.$' | sort | paste -sd ' ' - || true)
    [ "$a" = "$ipv4" ] && [ "$aaaa" = "$ipv6" ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      fail "$name does not resolve to this host through $resolver after ${timeout}s:" \
        "A is '${a}' (expected '${ipv4}'), AAAA is '${aaaa}' (expected '${ipv6}')." \
        "Create or correct the records (the stack output dnsRecords lists them) and run pulumi up again."
    fi
    sleep "$poll"
  done
}

# FreeSWITCH's CLI as BigBlueButton's packages install it (/opt/freeswitch/bin/fs_cli), authenticating with the
# event socket's password, the one in autoload_configs/event_socket.conf.xml (where bbb-freeswitch-core's
# fs_clibbb reads it; docs/upstream.md): fs_cli reads it from $HOME/.fs_cli_conf, a private one here (removed
# on exit), never from its command line.
# Sets fs_cli, fs_cli_home and esl_password for fs_api.
fs_cli_ready() {
  fs_cli=$(command -v fs_cli || echo "$ROOT/opt/freeswitch/bin/fs_cli")
  [ -x "$fs_cli" ] || fail "fs_cli is missing (/opt/freeswitch/bin/fs_cli): bbb-install.sh has not completed on this host"
  esl_password=$(sed -n 's/.*name="password"[[:space:]]*value="\([^"]*\)".*/\1/p' \
    "$ROOT/opt/freeswitch/conf/autoload_configs/event_socket.conf.xml" 2>/dev/null | head -n1)
  fs_cli_home=$(mktemp -d) || fail "cannot make a temporary directory for fs_cli"
  trap 'rm -rf "$fs_cli_home"' EXIT
  if [ -n "$esl_password" ]; then
    (umask 077 && printf '[default]\nhost => 127.0.0.1\nport => 8021\npassword => %s\n' "$esl_password" >"$fs_cli_home/.fs_cli_conf")
  fi
}

# Runs a FreeSWITCH API command (after fs_cli_ready), its answer unchecked.
fs_cli_run() {
  HOME=$fs_cli_home timeout 30 "$fs_cli" -x "$1"
}

# fs_api COMMAND [SECRET...]: runs a FreeSWITCH API command (after fs_cli_ready). fs_cli exits 0 even when the
# command fails, so its answer is checked too; the output shown on failure has the secrets masked.
fs_api() {
  local command=$1 out rc=0
  shift
  out=$(fs_cli_run "$command" 2>&1) || rc=$?
  out=$(printf '%s\n' "$out" | mask "$@" "$esl_password")
  if [ "$rc" != 0 ] || [[ $out == *-ERR* ]] || [[ $out == *"Error Connecting"* ]] || [[ $out == *"Invalid "* ]]; then
    printf '%s\n' "$out" >&2
    fail "fs_cli -x '$command' failed (exit $rc; is FreeSWITCH running? see: systemctl status freeswitch)"
  fi
}

# Pulls the images that are not here yet, so that replacing a container never waits on (or fails at) a
# download after the old container is gone.
pull_images() {
  local image
  for image in "$@"; do
    docker image inspect "$image" >/dev/null 2>&1 || docker pull -q "$image" >/dev/null || fail "cannot pull $image"
  done
}

# Every container's log, rotated: Docker's json-file driver keeps it whole otherwise ("by default, no log
# rotation is performed", docs.docker.com, json-file logging driver), until the disk is full.
CONTAINER_LOG=(--log-driver json-file --log-opt max-size=10m --log-opt max-file=5)

# A container's bbb.spec label: the hash of its `docker run` arguments (image last but its command), the log's
# included. container_label NAME prints the label of container NAME (nothing when there is no such container).
container_spec() {
  printf '%s\n' "${CONTAINER_LOG[@]}" "$@" | sha256sum | cut -c1-16
}
container_label() {
  docker inspect -f '{{index .Config.Labels "bbb.spec"}}' "$1" 2>/dev/null || true
}

# Runs container NAME with the given `docker run` arguments (image last but its command), unless it
# already runs with the same arguments: their hash is the container's bbb.spec label. Changed arguments
# replace the container. Returns 0 when it (re)created the container.
ensure_container() {
  local name=$1 spec
  shift
  spec=$(container_spec "$@")
  if [ "$(container_label "$name")" = "$spec" ]; then
    docker start "$name" >/dev/null || fail "cannot start container $name"
    return 1
  fi
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker run -d --name "$name" --label "bbb.spec=$spec" --restart unless-stopped "${CONTAINER_LOG[@]}" "$@" >/dev/null ||
    fail "cannot run container $name (see: docker logs $name)"
  say "container $name started"
}

# container_replaced NAME ARG...: true when container NAME is there but runs with other arguments than ARG...,
# so that ensure_container NAME ARG... would remove it first.
container_replaced() {
  local name=$1 current
  shift
  current=$(container_label "$name")
  [ -n "$current" ] || docker inspect "$name" >/dev/null 2>&1 || return 1
  [ "$current" != "$(container_spec "$@")" ]
}

# Greenlight on a BBB server (single topology, bbb-install.sh -g) is run by Docker Compose, as
# /usr/local/bin/docker-compose: install_docker (bbb-install.sh v3.0.x-release) downloads docker-compose 1.24.0
# there unless an executable is there already. That version reads no compose file without a version: key
# (Greenlight 3.8's has none) and talks an API version Docker 29 refuses (bigbluebutton/bbb-install#807).
# What this writes there runs Docker Compose v2 (docker-compose-plugin, which docker-ce-cli recommends)
# instead, after pinning Greenlight's image in its compose file (bbb-install.sh writes bigbluebutton/greenlight:v3
# there, a tag that moves) to bigbluebutton/greenlight:TAG. Returns 0 when it changed what was there.
greenlight_compose() {
  local tag=$1 compose=$ROOT/root/greenlight-v3/docker-compose.yml
  [[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || fail "GREENLIGHT_VERSION '$tag' is not an image tag"
  mkdir -p "$ROOT/usr/local/bin" || fail "cannot create /usr/local/bin"
  write_if_changed "$ROOT/usr/local/bin/docker-compose" 0755 root:root <<SHIM
#!/bin/sh
# Written by bbb's deploy steps (Pulumi; scripts/remote/lib.sh, greenlight_compose): Docker Compose v2 in place
# of the docker-compose 1.24.0 bbb-install.sh would download, with Greenlight's image pinned to its tag.
set -e
if [ -f $(printf %q "$compose") ]; then
  sed -i 's|^\([[:space:]]*image:[[:space:]]*\)bigbluebutton/greenlight:.*\$|\1bigbluebutton/greenlight:$tag|' $(printf %q "$compose")
fi
# docker-ce-cli only recommends the plugin: an image that installs no recommends lacks it.
docker compose version >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose-plugin >&2 || true
docker compose version >/dev/null 2>&1 || {
  echo "docker-compose: Docker Compose v2 is missing (apt-get install docker-compose-plugin)" >&2
  exit 1
}
exec docker compose "\$@"
SHIM
}

# unit_off disable|stop UNIT: `systemctl disable` or `systemctl stop` of UNIT (its whole name: NAME.service,
# NAME.timer), for a step's removal, which also runs on a host where UNIT never was or is gone already. systemd
# refuses exactly that, and only that is taken as done: disable, a unit it has no unit file of ("Failed to disable
# unit: Unit file UNIT does not exist.", exit 1: the manager's install_error for -ENOENT, src/core/dbus-manager.c,
# as systemctl-enable.c prints it); stop, a unit it has not loaded and that does not run ("Failed to stop UNIT:
# Unit UNIT not loaded.", exit 5, EXIT_NOTINSTALLED for BUS_ERROR_NO_SUCH_UNIT: bus_unit_queue_job in
# src/core/dbus-unit.c, translate_bus_error_to_exit_status in src/systemctl/systemctl-util.c). Any other failure
# fails the step. A stop returns once the unit has stopped (its job done).
unit_off() {
  local verb=$1 unit=$2 out rc=0
  out=$(systemctl "$verb" --quiet "$unit" 2>&1) || rc=$?
  case "$rc $verb" in
    "0 "*) return 0 ;;
    "1 disable") [[ $out != *"Unit file $unit does not exist."* ]] || return 0 ;;
    "5 stop") [[ $out != *"Unit $unit not loaded."* ]] || return 0 ;;
  esac
  printf '%s\n' "$out" >&2
  fail "cannot $verb $unit (see: systemctl status $unit)"
}

# Prometheus' node exporter reads *.prom files of this directory (its textfile collector; node-exporter.sh gives
# it the directory explicitly). The programs that write there write a temporary file beside, then rename it: the
# collector never reads half a file, and skips the temporary one (not *.prom).
TEXTFILE_DIR=/var/lib/prometheus/node-exporter

# unit_running UNIT: UNIT enabled and running with what was written for it: restarted when this step owes it a restart
# (pending restart, done), else started if it is not running.
unit_running() {
  local unit=$1
  systemctl enable --quiet "$unit" || fail "cannot enable $unit"
  if pending restart; then
    systemctl restart "$unit" || fail "cannot restart $unit (see: journalctl -u $unit)"
    pending_done restart
  elif ! systemctl is-active --quiet "$unit"; then
    systemctl start "$unit" || fail "cannot start $unit (see: journalctl -u $unit)"
  fi
}

# textfile_timer NAME PROGRAM CALENDAR ARG...: PROGRAM (a program's text) becomes /usr/local/sbin/NAME, which root
# runs with ARG... as the oneshot NAME.service, started by NAME.timer at CALENDAR (systemd.time's OnCalendar=).
# When anything of it changed, the timer is (re)enabled and the program run once right away: a program that fails
# fails the step, and its metrics are there at once. ARG... are paths without spaces (systemd splits ExecStart=).
textfile_timer() {
  local name=$1 program=$2 calendar=$3 changed=false
  shift 3
  [[ $program == '#!'* ]] || fail "the program for $name does not start with #!"
  mkdir -p "$ROOT$TEXTFILE_DIR" "$ROOT/usr/local/sbin" "$ROOT/etc/systemd/system"
  write_if_changed "$ROOT/usr/local/sbin/$name" 0755 root:root < <(printf '%s' "$program") && changed=true
  write_if_changed "$ROOT/etc/systemd/system/$name.service" 0644 root:root <<UNIT && changed=true
# Written by bbb's $STEP step (Pulumi); changes here are overwritten.
[Unit]
Description=Metrics for Prometheus' node exporter: $name

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/$name $*
UNIT
  write_if_changed "$ROOT/etc/systemd/system/$name.timer" 0644 root:root <<UNIT && changed=true
# Written by bbb's $STEP step (Pulumi); changes here are overwritten.
[Unit]
Description=Metrics for Prometheus' node exporter: $name, at $calendar

[Timer]
OnCalendar=$calendar
AccuracySec=5s

[Install]
WantedBy=timers.target
UNIT
  $changed || return 1
  systemctl daemon-reload || fail "systemctl daemon-reload failed"
  systemctl enable --quiet "$name.timer" || fail "cannot enable $name.timer"
  systemctl restart "$name.timer" || fail "cannot start $name.timer (see: systemctl status $name.timer)"
  systemctl start "$name.service" || fail "$name failed its first run (see: journalctl -u $name.service)"
  say "$name runs at $calendar (/usr/local/sbin/$name, $name.timer)"
}

# textfile_timer_remove NAME PROM: what textfile_timer installed for NAME goes, with the metrics file PROM it wrote
# (the node exporter would go on serving it, stale), once no run of NAME can write it again. Returns 1 when there
# was nothing of it.
textfile_timer_remove() {
  local name=$1 prom=$2
  [ -e "$ROOT/etc/systemd/system/$name.timer" ] || [ -e "$ROOT$TEXTFILE_DIR/$prom" ] || return 1
  unit_off disable "$name.timer"
  unit_off stop "$name.timer"
  unit_off stop "$name.service"
  rm -f "$ROOT/etc/systemd/system/$name.timer" "$ROOT/etc/systemd/system/$name.service" "$ROOT/usr/local/sbin/$name" "$ROOT$TEXTFILE_DIR/$prom"
  systemctl daemon-reload || fail "systemctl daemon-reload failed"
  say "removed $name (its timer and $TEXTFILE_DIR/$prom)"
}

# wait_metrics URL SECONDS: prints what URL (an exporter's /metrics) answers, trying again each second for SECONDS
# (a service just (re)started takes a moment to listen); returns 1 when it never answered. Each try is time-limited.
wait_metrics() {
  local url=$1 deadline=$((SECONDS + $2)) body
  while :; do
    if body=$(curl -fsS --max-time 30 "$url" 2>/dev/null); then
      printf '%s\n' "$body"
      return 0
    fi
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 1
  done
}
