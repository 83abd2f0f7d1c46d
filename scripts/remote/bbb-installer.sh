#!/usr/bin/env bash
# BBB host: runs the pinned bbb-install.sh with -v VERSION -s FQDN -e EMAIL -c TURN_HOST:TURN_SECRET
# (and -g for Greenlight). Runs the installer only when its inputs changed since its last success (re-running
# the same command upgrades the packages and restarts everything), and refuses to while meetings are running
# or when it cannot tell (guard_meetings), unless FORCE_REINSTALL is true; a run that did not finish is run
# again. With UPGRADE_IN_PLACE false (a pool, whose servers are upgraded by replacement) it also refuses a new
# VERSION on a server installed with another one, unless FORCE_REINSTALL.
# Inputs: FQDN EMAIL VERSION INSTALLER_URL TURN_HOST TURN_SECRET GREENLIGHT FORCE_REINSTALL UPGRADE_IN_PLACE
#         TIMEOUT_SECONDS
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${FQDN:?}" "${EMAIL:?}" "${VERSION:?}" "${INSTALLER_URL:?}" "${TURN_HOST:?}" "${TURN_SECRET:?}"
: "${GREENLIGHT:?}" "${FORCE_REINSTALL:?}" "${UPGRADE_IN_PLACE:?}" "${TIMEOUT_SECONDS:?}"

state=$ROOT/var/lib/bbb-deploy
installer=$state/bbb-install.sh
done_file=$state/installer.sha256
version_file=$state/installed-version
mkdir -p "$state"
chmod 0700 "$state"

fingerprint=$(printf '%s\n' "$INSTALLER_URL" "$VERSION" "$FQDN" "$EMAIL" "$TURN_HOST" "$TURN_SECRET" "$GREENLIGHT" | sha256sum | cut -d' ' -f1)
if [ -f "$done_file" ] && [ "$(cat "$done_file")" = "$fingerprint" ]; then
  say "bbb-install.sh already ran with these inputs; nothing to do"
  exit 0
fi

installed=$(cat "$version_file" 2>/dev/null || true)
if [ "$UPGRADE_IN_PLACE" != true ] && [ -n "$installed" ] && [ "$installed" != "$VERSION" ] && [ "$FORCE_REINSTALL" != true ]; then
  fail "$FQDN runs $installed: in a pool, $VERSION comes with new servers, one at a time." \
    "Raise bbbRelease and roll it out with upgrade (README, runbook: Upgrades in a pool), or set bbbVersion back to $installed;" \
    "forceReinstall: true upgrades the servers in place instead."
fi

# The installer restarts every BigBlueButton service: it runs only on a server that hosts no meeting. An
# earlier run that did not finish (the SSH session dropped, pulumi up was cancelled) left BigBlueButton half
# installed: its API may not answer, and running the installer again is what finishes it.
if pending install && ! meetings_here >/dev/null; then
  say "an earlier bbb-install.sh run did not finish; running it again"
else
  guard_meetings "re-running bbb-install.sh (it restarts every BigBlueButton service)" "$FORCE_REINSTALL" forceReinstall
fi
pending_add install

say "downloading $INSTALLER_URL"
curl -fsSL --retry 5 --max-time 120 -o "$installer.new" "$INSTALLER_URL" || fail "cannot download $INSTALLER_URL"
head -n1 "$installer.new" | grep -q '^#!.*bash' || fail "$INSTALLER_URL is not a bash script"
mv -f "$installer.new" "$installer"

args=(-v "$VERSION" -s "$FQDN" -e "$EMAIL" -c "$TURN_HOST:$TURN_SECRET")
[ "$GREENLIGHT" = true ] && args+=(-g)
# The installer's output (thousands of lines) goes to a root-only log, not into the Pulumi state.
log=$ROOT/var/log/bbb-deploy/bbb-install.log
mkdir -p "$(dirname "$log")"
: >"$log"
chmod 0600 "$log"
say "running bbb-install.sh ${args[*]//"$TURN_SECRET"/[secret]} (output: /var/log/bbb-deploy/bbb-install.log)"
set +e
timeout "$TIMEOUT_SECONDS" bash "$installer" "${args[@]}" 2>&1 | mask "$TURN_SECRET" >"$log"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
  tail -n 40 "$log" >&2
  [ "$rc" -eq 124 ] && fail "bbb-install.sh did not finish within ${TIMEOUT_SECONDS}s (log: /var/log/bbb-deploy/bbb-install.log)"
  fail "bbb-install.sh failed with exit code $rc (last lines above; log: /var/log/bbb-deploy/bbb-install.log)"
fi

pending_done install
printf '%s\n' "$fingerprint" >"$done_file"
printf '%s\n' "$VERSION" >"$version_file"
chmod 0600 "$done_file" "$version_file"
say "bbb-install.sh finished"
