#!/usr/bin/env bash
# The Debian/Ubuntu packages the test suite needs besides Node.js, and why.
#   check (npm test runs it first): exits 1 with one line naming the missing packages and how to install them.
#   install (.ci/run): installs the missing ones with apt-get, saying which and why.
set -euo pipefail

# command:package:why, or /path/of/a/file:package:why for a package without a command
TOOLS=(
  "shellcheck:shellcheck:lints the host scripts"
  "sshd:openssh-server:a real sshd runs the declared steps"
  "sudo:sudo:the steps run through sudo, as on the hosts"
  "turnserver:coturn:a real coturn relays with the configuration the TURN step writes"
  "turnutils_uclient:coturn:allocates relays through it"
  "pebble:pebble:a local ACME CA for the real certbot"
  "certbot:certbot:gets the TURN certificate from pebble"
  "openssl:openssl:makes test certificates"
  "pg_ctlcluster:postgresql:a real PostgreSQL for Scalelite's database wait and set-up"
  "strace:strace:traces every program the steps start, to find a secret on a command line"
  "promtool:prometheus:checks the generated Prometheus configuration and rules"
  "amtool:prometheus-alertmanager:checks the generated Alertmanager configuration"
  "prometheus-blackbox-exporter:prometheus-blackbox-exporter:checks the generated blackbox exporter configuration"
  "restic:restic:the real restic backs up and restores in the backup programs' test"
  "nginx:nginx:a real nginx runs the streaming ingest and viewer site the program generates"
  "/usr/lib/nginx/modules/ngx_rtmp_module.so:libnginx-mod-rtmp:nginx's RTMP module takes the test stream in, cuts HLS, records and forwards it"
  "ffmpeg:ffmpeg:publishes a test pattern over RTMP and remuxes the recording"
  "ffprobe:ffmpeg:checks the remuxed recording"
  "chromium:chromium:a headless browser plays the viewer page"
)

missing=() reasons=()
for entry in "${TOOLS[@]}"; do
  IFS=: read -r tool package why <<<"$entry"
  if [[ $tool == /* ]]; then
    [ -e "$tool" ] && continue
  else
    command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin:/sbin command -v "$tool" >/dev/null && continue
  fi
  [[ " ${missing[*]} " == *" $package "* ]] && continue
  missing+=("$package") reasons+=("$package ($why)")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

case ${1:-check} in
  check)
    echo "npm test needs these Debian packages: ${missing[*]}; install them as root with: bash scripts/system-tools.sh install (or: apt-get install -y ${missing[*]})" >&2
    exit 1
    ;;
  install)
    echo "installing what the tests need:"
    printf '  %s\n' "${reasons[@]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${missing[@]}"
    ;;
  *)
    echo "usage: $0 [check|install]" >&2
    exit 2
    ;;
esac
