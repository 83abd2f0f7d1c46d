#!/usr/bin/env bash
# BBB server: greenstatic/bigbluebutton-exporter (the exporter BigBlueButton's admin docs point to), for the
# monitoring host's Prometheus, at the pinned commit EXPORTER_REF (v0.7.1: 8bfc6d86), as upstream's "Systemd"
# method installs it (docs/installation/bigbluebutton_exporter.md): its git tree, its requirements.txt (every
# package pinned) by pip, here into a venv of Ubuntu's Python (python3-venv) instead of the system's site-packages.
# Not the Docker image, though bbb-install.sh installs Docker on every 3.0 server: the image's tag on Docker Hub
# is neither verifiable from here nor pinned by digest, and it runs an end-of-life Python (python:3.8-alpine).
# The exporter is configured by its environment (bbb-exporter/settings.py, v0.7.1), from a root-only file that
# systemd reads (EnvironmentFile=): API_BASE_URL (L24, must end in /, helpers.py L27-35) and API_SECRET (L26),
# which it signs each API call with (api_lib.py L40-48); BIND_IP and PORT (L37-38, server.py L29: the address it
# listens on, the server's fixed one, never its default 0.0.0.0); RECORDINGS_METRICS (L40: the recordings
# counts, collector.py L83-102); RECORDINGS_METRICS_READ_FROM_DISK (L42-43: those counts from directory listings
# under /var/bigbluebutton, collector.py L376-413, instead of three getRecordings calls a scrape);
# BBB_VERSION_READ_FROM_DISK (L48: bbb_version from /etc/bigbluebutton/bigbluebutton-release, collector.py
# L336-342). Never DEBUG (settings.py L14-15): it prints every API answer (api_lib.py L64-65), getMeetings' with
# the attendees' names. The secret reaches the exporter through that file only, never a command line.
# Each scrape calls getMeetings (collector.py L60-64; and getRecordings?state=unpublished with recordings on,
# L84). The exporter calls https://FQDN/bigbluebutton/api/, FQDN resolved to this host (127.0.0.1, nginx
# listens on every address) by a hosts file of its own, as the steps call the local API (lib.sh, bbb_api).
# It runs as a user systemd makes for it (DynamicUser=: no privilege, the file system read-only to it, systemd.exec(5)).
# PRIVACY strict: the exporter's output goes nowhere (as coturn logs nothing then); its errors can hold the
# getMeetings checksum, which stays valid until the secret changes (api_lib.py L50-55).
# With RECORDINGS true, the recordings' progress (scripts/remote/recordings-metrics.sh, every 5 minutes); false
# removes it.
# Inputs: FQDN SECRET (the server's API secret) LISTEN_IPV4 (its fixed IPv4) PORT (components/ports.ts EXPORTER_PORTS.bbb) PRIVACY (strict|standard) RECORDINGS
# (true|false) EXPORTER_REF (a commit of greenstatic/bigbluebutton-exporter) RECORDINGS_METRICS_PROGRAM (the text
# of scripts/remote/recordings-metrics.sh; needed with RECORDINGS true); EXPORTER_WAIT_SECONDS (optional, default
# 30): how long the exporter may take to answer after a (re)start.
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${FQDN:?}" "${SECRET:?}" "${LISTEN_IPV4:?}" "${PORT:?}" "${PRIVACY:?}" "${RECORDINGS:?}" "${EXPORTER_REF:?}"
[[ $SECRET =~ ^[A-Za-z0-9]{32,}$ ]] || fail "the API secret must be at least 32 letters and digits"
[[ $FQDN =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ ]] || fail "FQDN '$FQDN' is not a host name"
ipv4_inputs LISTEN_IPV4
[[ $PRIVACY =~ ^(strict|standard)$ ]] || fail "PRIVACY must be strict or standard, not '$PRIVACY'"
[[ $RECORDINGS =~ ^(true|false)$ ]] || fail "RECORDINGS must be true or false, not '$RECORDINGS'"
[[ $EXPORTER_REF =~ ^[0-9a-f]{40}$ ]] || fail "EXPORTER_REF '$EXPORTER_REF' is not a full commit id"
[ "$RECORDINGS" = false ] || : "${RECORDINGS_METRICS_PROGRAM:?}"

repo=https://github.com/greenstatic/bigbluebutton-exporter.git
unit=bigbluebutton-exporter
home=/opt/bigbluebutton-exporter
src=$ROOT$home/src
venv=$ROOT$home/venv
conf=/etc/bigbluebutton-exporter
listen=$LISTEN_IPV4:$PORT
mkdir -p "$ROOT$home" "$ROOT$conf" "$ROOT/etc/systemd/system"
chmod 0755 "$ROOT$conf"

# Anything below that changes what the exporter runs owes it a restart, until it happened (lib.sh's pending work).
changed() {
  pending_add restart
  say "$1"
}

# 1. The exporter's code at EXPORTER_REF (git checks every object against its id), and its requirements in a venv.
say "installing git and python3-venv"
apt_install git python3-venv
if [ "$(git -C "$src" rev-parse HEAD 2>/dev/null || true)" != "$EXPORTER_REF" ]; then
  rm -rf "$src.new"
  git clone --quiet --no-checkout "$repo" "$src.new" >/dev/null || fail "cannot clone $repo"
  git -C "$src.new" -c advice.detachedHead=false checkout --quiet "$EXPORTER_REF" ||
    fail "commit $EXPORTER_REF is not in $repo"
  [ "$(git -C "$src.new" rev-parse HEAD)" = "$EXPORTER_REF" ] || fail "the checkout of $repo is not at $EXPORTER_REF"
  rm -rf "$src"
  mv "$src.new" "$src"
  changed "checked out $repo at $EXPORTER_REF"
fi
{ [ -f "$src/requirements.txt" ] && [ -f "$src/bbb-exporter/server.py" ]; } ||
  fail "$home/src is not the BigBlueButton exporter (no requirements.txt, no bbb-exporter/server.py)"
# What the venv was made for: the commit and its requirements; written last, so a venv left half made is made anew.
made_for="$EXPORTER_REF $(sha256sum <"$src/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$venv/.bbb-made-for" 2>/dev/null || true)" != "$made_for" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv" || fail "cannot make a Python venv in $home/venv (python3-venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir -r "$src/requirements.txt" ||
    fail "pip cannot install the exporter's requirements (see above)"
  printf '%s\n' "$made_for" >"$venv/.bbb-made-for"
  changed "installed the exporter's requirements into $home/venv"
fi

# 2. Its settings, root-only (they hold the secret; systemd reads them as root), written by bash alone.
if write_if_changed "$ROOT$conf/settings.env" 0600 root:root <<SETTINGS; then
# Written by bbb's $STEP step (Pulumi); changes here are overwritten. Read by $unit.service (EnvironmentFile=).
# Never set DEBUG: it prints every API answer, attendees' names among them.
API_BASE_URL=https://$FQDN/bigbluebutton/api/
API_SECRET=$SECRET
BIND_IP=$LISTEN_IPV4
PORT=$PORT
RECORDINGS_METRICS=$RECORDINGS
RECORDINGS_METRICS_READ_FROM_DISK=true
BBB_VERSION_READ_FROM_DISK=true
SETTINGS
  changed "wrote the exporter's settings ($conf/settings.env)"
fi
if write_if_changed "$ROOT$conf/hosts" 0644 root:root <<HOSTS; then
# Written by bbb's $STEP step (Pulumi): the exporter's /etc/hosts (BindReadOnlyPaths= of $unit.service).
127.0.0.1 localhost $FQDN
::1 localhost
HOSTS
  changed "the exporter resolves $FQDN to 127.0.0.1"
fi
output=journal
[ "$PRIVACY" = strict ] && output=null
if write_if_changed "$ROOT/etc/systemd/system/$unit.service" 0644 root:root <<UNIT; then
# Written by bbb's $STEP step (Pulumi); changes here are overwritten.
[Unit]
Description=BigBlueButton exporter for Prometheus (greenstatic/bigbluebutton-exporter $EXPORTER_REF)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=$home/venv/bin/python $home/src/bbb-exporter/server.py
EnvironmentFile=$conf/settings.env
DynamicUser=yes
BindReadOnlyPaths=$conf/hosts:/etc/hosts
ProtectHome=yes
PrivateDevices=yes
CapabilityBoundingSet=
StandardOutput=$output
StandardError=$output
Restart=always
RestartSec=5s

[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload || fail "systemctl daemon-reload failed"
  changed "wrote $unit.service"
fi

# 3. Running what was written.
unit_running "$unit"

# 4. The recordings' progress, or none.
if [ "$RECORDINGS" = true ]; then
  textfile_timer bbb-recordings-metrics "$RECORDINGS_METRICS_PROGRAM" '*:0/5' \
    /var/bigbluebutton/recording/status "$TEXTFILE_DIR/bbb_recordings.prom" || true
else
  textfile_timer_remove bbb-recordings-metrics bbb_recordings.prom || true
fi

# 5. It answers on its address (each scrape asks BigBlueButton: getMeetings), and BigBlueButton answers it.
metrics=$(wait_metrics "http://$listen/metrics" "${EXPORTER_WAIT_SECONDS:-30}") ||
  fail "the BigBlueButton exporter does not answer on http://$listen/metrics (see: journalctl -u $unit)"
grep -Eq '^bbb_api_up 1(\.0)?$' <<<"$metrics" ||
  fail "the BigBlueButton exporter answers on $listen, but BigBlueButton's API does not answer it (bbb_api_up is not 1):" \
    "is https://$FQDN/bigbluebutton/api/ up, with this secret? (bbb-conf --check; journalctl -u $unit)"
say "the BigBlueButton exporter answers on $listen"
