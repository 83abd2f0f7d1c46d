#!/usr/bin/env bash
# BBB host, after the installer: sets the stack's API secret, writes the bbb-web property overrides
# (recording off by default, version hidden), restarts BigBlueButton when something changed, and checks that
# the API answers a getMeetings signed with the stack's secret.
# A new secret means restarting BigBlueButton, which ends running meetings: while any runs, the step refuses
# (in a pool the server is cordoned meanwhile, see scalelite-node.sh prepare), unless FORCE_RESTART is true.
# Inputs: FQDN SECRET PROPERTIES (key=value lines) API_WAIT_SECONDS FORCE_RESTART (true|false), and
# INSTALL_ID, which changes with every installer run so that this step runs after it (bbb-install.sh may
# rewrite what this step sets).
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${FQDN:?}" "${SECRET:?}" "${PROPERTIES:?}" "${API_WAIT_SECONDS:?}" "${INSTALL_ID:?}" "${FORCE_RESTART:?}"
[[ $SECRET =~ ^[A-Za-z0-9]{32,}$ ]] || fail "the API secret must be at least 32 letters and digits"

command -v bbb-conf >/dev/null || fail "bbb-conf is missing: bbb-install.sh has not completed on this host"
props=$ROOT/etc/bigbluebutton/bbb-web.properties
[ -f "$props" ] || fail "$props is missing: bbb-install.sh has not completed on this host"

changed=false
while IFS= read -r line; do
  [ -n "$line" ] || continue
  key=${line%%=*}
  if ! grep -qxF -- "$line" "$props"; then
    if grep -q "^$key=" "$props"; then
      sed -i "s|^$key=.*|$line|" "$props"
    else
      printf '%s\n' "$line" >>"$props"
    fi
    say "set $line"
    changed=true
  fi
done <<<"$PROPERTIES"

current=$(sed -n 's/^securitySalt=//p' "$props" | tail -n1)
if [ "$current" != "$SECRET" ]; then
  if answer=$(bbb_api getMeetings "" "$current" 2>/dev/null); then
    meetings=$({ grep -o '<meeting>' <<<"$answer" || true; } | wc -l)
    if [ "$meetings" -gt 0 ] && [ "$FORCE_RESTART" != true ]; then
      fail "$meetings meeting(s) running on $FQDN; the new secret needs a restart, which would end them." \
        "Run pulumi up again once they have ended (in a pool the server takes no new ones meanwhile), or set forceReinstall: true."
    fi
  fi
  say "setting the API secret"
  bbb-conf --setsecret "$SECRET" 2>&1 | mask "$SECRET" "$current" || fail "bbb-conf --setsecret failed"
  changed=true
fi

if [ "$changed" = true ]; then
  say "restarting BigBlueButton"
  bbb-conf --restart 2>&1 | mask "$SECRET" || fail "bbb-conf --restart failed (see: bbb-conf --check)"
fi

say "checking the API at https://$FQDN/bigbluebutton/api with the stack's secret"
deadline=$((SECONDS + API_WAIT_SECONDS))
while :; do
  answer=$(bbb_api getMeetings "" "$SECRET" 2>/dev/null || true)
  case $answer in
    *"<returncode>SUCCESS</returncode>"*)
      say "the API answers with the stack's secret"
      exit 0
      ;;
    *checksumError*)
      fail "the API at https://$FQDN/bigbluebutton/api refuses the stack's secret (checksumError); see: bbb-conf --secret"
      ;;
  esac
  [ "$SECONDS" -lt "$deadline" ] || fail "the API at https://$FQDN/bigbluebutton/api did not answer within ${API_WAIT_SECONDS}s (see: bbb-conf --check)"
  sleep 5
done
