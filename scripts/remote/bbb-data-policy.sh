#!/usr/bin/env bash
# BBB host, after bbb-configure (and so after every installer run, which rewrites some of these files):
# what the server keeps. privacy strict: nginx access logs off, bbb-webrtc-sfu, FreeSWITCH and bbb-web logging
# warnings only (bbb-web's own loggers say DEBUG in its logback.xml, which appLogLevel does not govern), logs
# and raw data kept one day (/etc/default/bigbluebutton-cron-config), deleted recordings purged daily, plain
# HTTP only redirecting to HTTPS. privacy standard: BigBlueButton's defaults back.
# Recordings (standard only): the video playback format when VIDEO is true, and published recordings
# deleted after RETENTION_DAYS (0: recordings off, nothing to keep).
# Restarting bbb-webrtc-sfu drops every camera, screen share and audio stream of running meetings: it happens
# only when the server hosts no meeting (guard_meetings), unless FORCE_RESTART. A reload or restart that did
# not happen (a failure, a dropped session) is done by the next run, though the files are then unchanged.
# Inputs: FQDN PRIVACY (strict|standard) VIDEO (true|false) RETENTION_DAYS FORCE_RESTART (true|false)
# INSTALL_ID (changes with every installer run, so this step runs after it)
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${FQDN:?}" "${PRIVACY:?}" "${VIDEO:?}" "${RETENTION_DAYS:?}" "${FORCE_RESTART:?}" "${INSTALL_ID:?}"
case $PRIVACY in strict | standard) ;; *) fail "PRIVACY must be strict or standard, not $PRIVACY" ;; esac
[[ $RETENTION_DAYS =~ ^[0-9]+$ ]] || fail "RETENTION_DAYS must be a number of days"

site=$ROOT/etc/nginx/sites-available/bigbluebutton
[ -f "$site" ] || fail "$site is missing: bbb-install.sh has not completed on this host"
marker="# Managed by bbb (Pulumi, bbb-data-policy step)"
strict=false
[ "$PRIVACY" = strict ] && strict=true

# Writes FILE (mode MODE) when wanted, removes it when not and it is ours. Returns 0 when it changed.
managed_file() {
  local file=$1 mode=$2 wanted=$3 content
  content=$(cat)
  if [ "$wanted" = true ]; then
    mkdir -p "$(dirname "$file")"
    write_if_changed "$file" "$mode" root:root <<<"$marker
$content"
  elif [ -f "$file" ] && grep -qxF "$marker" "$file"; then
    rm -f "$file"
  else
    return 1
  fi
}

# 1. nginx: access logs off (http level in conf.d, and the BBB site's own line), HTTPS only, and in the BBB site's
#    servers errors only when nginx cannot go on (it logs failed TLS handshakes and failed requests with the
#    client's address up to crit). That error_log is set per server: one more at http level would add a log, not
#    replace Ubuntu's (nginx.conf's error_log at http level, which nginx keeps beside it).
nginx_changed=false
pending nginx-reload && nginx_changed=true
pending_add nginx-reload
managed_file "$ROOT/etc/nginx/conf.d/99-bbb-privacy.conf" 0644 "$strict" <<<"access_log off;" && nginx_changed=true
quiet_errors="error_log /var/log/nginx/error.log emerg; # bbb privacy strict"
if [ "$strict" = true ] && [ "$(grep -c '^\s*server\s*{' "$site")" != "$(grep -cF "$quiet_errors" "$site")" ]; then
  sed -i -E "/$(printf '%s' "$quiet_errors" | sed 's/[.[*^$/]/\\&/g')/d; s|^(\s*)server\s*\{\s*$|&\n\1  $quiet_errors|" "$site"
  nginx_changed=true
elif [ "$strict" = false ] && grep -qF "$quiet_errors" "$site"; then
  sed -i "/$(printf '%s' "$quiet_errors" | sed 's/[.[*^$/]/\\&/g')/d" "$site"
  nginx_changed=true
fi
if [ "$strict" = true ] && grep -Eq '^\s*access_log\s+/' "$site"; then
  sed -i -E 's|^(\s*)access_log\s+/[^;]*;|\1access_log off;|' "$site"
  nginx_changed=true
elif [ "$strict" = false ] && grep -Eq '^\s*access_log\s+off;' "$site"; then
  sed -i -E 's|^(\s*)access_log\s+off;|\1access_log /var/log/nginx/bigbluebutton.access.log;|' "$site"
  nginx_changed=true
fi
if [ "$strict" = true ] && ! grep -Eq 'return\s+301\s+https://' "$site"; then
  fail "$site serves plain HTTP: privacy strict wants port 80 to redirect to HTTPS only (re-run bbb-install.sh)"
fi
if [ "$nginx_changed" = true ]; then
  nginx -t >/dev/null 2>&1 || fail "nginx refuses the changed configuration (see: nginx -t)"
  systemctl reload nginx || fail "cannot reload nginx"
  say "nginx access logs: $([ "$strict" = true ] && echo off || echo on)"
fi
pending_done nginx-reload

# 2. Log levels: bbb-webrtc-sfu (mediasoup) through its override file, FreeSWITCH live and in its config.
sfu=$ROOT/etc/bigbluebutton/bbb-webrtc-sfu/production.yml
sfu_level=$([ "$strict" = true ] && echo warn || echo info)
if [ -f "$sfu" ] && { [ "$(yq e '.log.level' "$sfu")" != "$sfu_level" ] || pending sfu-restart; }; then
  guard_meetings "restarting bbb-webrtc-sfu for its log level (every camera, screen share and audio stream drops)" "$FORCE_RESTART" forceReinstall
  pending_add sfu-restart
  yq e -i ".log.level = \"$sfu_level\"" "$sfu" || fail "cannot set the log level in $sfu"
  systemctl restart bbb-webrtc-sfu || fail "cannot restart bbb-webrtc-sfu"
  pending_done sfu-restart
  say "bbb-webrtc-sfu logs at $sfu_level"
fi
switch=$ROOT/opt/freeswitch/etc/freeswitch/autoload_configs/switch.conf.xml
fs_level=$([ "$strict" = true ] && echo warning || echo info)
if [ -f "$switch" ] && { ! grep -q "name=\"loglevel\" value=\"$fs_level\"" "$switch" || pending fs-loglevel; }; then
  pending_add fs-loglevel
  sed -i -E "s|(name=\"loglevel\" value=\")[a-z]+(\")|\1$fs_level\2|" "$switch"
  fs_cli_ready
  fs_api "fsctl loglevel $fs_level"
  pending_done fs-loglevel
  say "FreeSWITCH logs at $fs_level"
fi

# bbb-web: its logback.xml (the package's, bigbluebutton-web/grails-app/conf/logback.xml) logs its own code at
# DEBUG; restarting bbb-web makes its API unavailable for a moment, so while meetings run it waits (their
# users could not join), as the SFU does.
logback=$ROOT/usr/share/bbb-web/WEB-INF/classes/logback.xml
web_level=$([ "$strict" = true ] && echo WARN || echo DEBUG)
web_loggers="org\.bigbluebutton|grails\.app\.controllers|grails\.app\.services"
web_present=$(grep -Ec "<logger name=\"($web_loggers)\" level=\"[A-Z]+\"" "$logback" 2>/dev/null || true)
web_set=$(grep -Ec "<logger name=\"($web_loggers)\" level=\"$web_level\"" "$logback" 2>/dev/null || true)
if [ "${web_present:-0}" -gt 0 ] && { [ "$web_set" != "$web_present" ] || pending web-restart; }; then
  guard_meetings "restarting bbb-web for its log level (the API is down meanwhile: nobody can join)" "$FORCE_RESTART" forceReinstall
  pending_add web-restart
  # coverage: not reached in tests: grep just read the file; sed -i by root fails only where the kernel refuses (read-only, full)
  sed -i -E "s#(<logger name=\"($web_loggers)\" level=\")[A-Z]+(\")#\1$web_level\3#" "$logback" || fail "cannot set bbb-web's log level in $logback"
  systemctl restart bbb-web || fail "cannot restart bbb-web"
  pending_done web-restart
  say "bbb-web logs at $web_level"
fi

# 3. Retention of logs and raw data, read by /etc/cron.daily/bigbluebutton.
if managed_file "$ROOT/etc/default/bigbluebutton-cron-config" 0644 "$strict" <<CRON; then say "logs and raw data: kept $([ "$strict" = true ] && echo "one day" || echo "as long as BigBlueButton's defaults say")"; fi
history=1
unrecorded_days=1
published_days=1
log_history=1
CRON
# Deleted recordings stay in /var/bigbluebutton/deleted until someone purges them.
managed_file "$ROOT/etc/cron.daily/bbb-purge-deleted" 0755 "$strict" <<PURGE || true
#!/bin/sh
find $ROOT/var/bigbluebutton/deleted -mindepth 1 -delete
PURGE
if [ "$strict" = true ] && [ -d "$ROOT/var/bigbluebutton/deleted" ]; then
  find "$ROOT/var/bigbluebutton/deleted" -mindepth 1 -delete
fi

# 4. Recordings: the video format, and how long published recordings are kept.
video=$([ "$VIDEO" = true ] && [ "$RETENTION_DAYS" -gt 0 ] && echo true || echo false)
[ "$video" = true ] && apt_install bbb-playback-video
worker_restart=false
pending worker-restart && worker_restart=true
pending_add worker-restart
if managed_file "$ROOT/etc/bigbluebutton/recording/recording.yml" 0644 "$video" <<STEPS; then
steps:
  archive: 'sanity'
  sanity: 'captions'
  captions:
    - 'process:presentation'
    - 'process:video'
  'process:presentation': 'publish:presentation'
  'process:video': 'publish:video'
STEPS
  worker_restart=true
  say "video playback format: $video"
fi
if [ "$worker_restart" = true ]; then
  systemctl restart bbb-rap-resque-worker || fail "cannot restart bbb-rap-resque-worker"
fi
pending_done worker-restart
keep=$([ "$RETENTION_DAYS" -gt 0 ] && echo true || echo false)
managed_file "$ROOT/etc/cron.daily/bbb-recording-retention" 0755 "$keep" <<RETENTION || true
#!/bin/sh
# Deletes published recordings older than $RETENTION_DAYS days.
find $ROOT/var/bigbluebutton/recording/status/published -name '*-presentation.done' -mtime +$RETENTION_DAYS |
  sed 's|.*/||; s|-presentation.done\$||' | while read -r id; do bbb-record --delete "\$id"; done
RETENTION
say "privacy $PRIVACY applied"
