#!/usr/bin/env bash
# BBB host, after the installer: sets the stack's API secret (where bbb-conf --setsecret sets it, but on no
# command line), writes the bbb-web property overrides
# (recording off by default, version hidden), restarts BigBlueButton when something changed, and checks that
# the API answers a getMeetings signed with the stack's secret.
# The restart ends running meetings: before changing anything the step asks the server (guard_meetings); while
# meetings run, or when it cannot tell, it refuses and changes nothing (in a pool the server is cordoned
# meanwhile, see scalelite-node.sh prepare), unless FORCE_RESTART is true. A restart that failed is redone by
# the next run, even though the files then hold the new values already: it counts as done only once the API
# answers with the stack's secret.
# Then two things the installer leaves behind: Greenlight on this host (single topology, bbb-install.sh -g) keeps
# the secret it was installed with (and runs the image tag GREENLIGHT_VERSION, lib.sh greenlight_compose), and
# /var/bigbluebutton on the data volume stays root's.
# Inputs: FQDN SECRET PROPERTIES (key=value lines) API_WAIT_SECONDS FORCE_RESTART (true|false), GREENLIGHT_VERSION
# and GREENLIGHT_LOG_LEVEL (where Greenlight is installed), and
# INSTALL_ID, which changes with every installer run so that this step runs after it (bbb-install.sh may
# rewrite what this step sets).
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${FQDN:?}" "${SECRET:?}" "${PROPERTIES:?}" "${API_WAIT_SECONDS:?}" "${INSTALL_ID:?}" "${FORCE_RESTART:?}"
[[ $SECRET =~ ^[A-Za-z0-9]{32,}$ ]] || fail "the API secret must be at least 32 letters and digits"

command -v bbb-conf >/dev/null || fail "bbb-conf is missing: bbb-install.sh has not completed on this host"
props=$ROOT/etc/bigbluebutton/bbb-web.properties
[ -f "$props" ] || fail "$props is missing: bbb-install.sh has not completed on this host"

# What differs from the wanted state, found before anything is written.
mapfile -t stale < <(bbb_stale_properties)
current=$(sed -n 's/^securitySalt=//p' "$props" | tail -n1)
new_secret=false
[ "$current" != "$SECRET" ] && new_secret=true

if [ "${#stale[@]}" -eq 0 ] && [ "$new_secret" = false ] && ! pending restart; then
  say "the secret and properties are as wanted"
else
  what="restarting BigBlueButton for $([ "$new_secret" = true ] && echo "the new secret" || echo "the changed properties")"
  pending restart && [ "${#stale[@]}" -eq 0 ] && [ "$new_secret" = false ] && what="restarting BigBlueButton (an earlier restart did not finish)"
  # A secret set by an unfinished run is in the file, but BigBlueButton still answers to the one before; a
  # restart that did not bring it back left it down, without meetings.
  if pending restart && ! meetings_here "$(pending_note restart)" >/dev/null && bbb_down; then
    say "BigBlueButton is down since an earlier restart that did not finish"
  else
    guard_meetings "$what" "$FORCE_RESTART" forceReinstall "$(pending_note restart)"
  fi
  pending_add restart "$current"
  bbb_write_properties "${stale[@]}"
  if [ "$new_secret" = true ]; then
    say "setting the API secret"
    # (sed's messages name files, never its script.)
    bbb_set_secret "$SECRET" ||
      fail "cannot write the API secret (bbb-web.properties, bbb-webhooks, bbb-apps-akka.conf); the restart is owed to the next run"
  fi
  say "$what"
  # bbb-conf --restart exits 0 whether or not BigBlueButton came back: the restart counts as done only once
  # the API answers with the stack's secret (below).
  # Masking the secret before too: bbb-conf's configuration check prints both when bbb-webhooks' differs.
  bbb-conf --restart 2>&1 | mask "$SECRET" "$current" || fail "bbb-conf --restart failed (see: bbb-conf --check)"
fi

# Greenlight calls the API with the secret bbb-install.sh copied into its .env when it installed it
# (BIGBLUEBUTTON_SECRET, install_greenlight_v3, v3.0.x); bbb-conf --setsecret does not touch it. It logs at
# LOG_LEVEL (info in its sample.env: room and user ids with every request), GREENLIGHT_LOG_LEVEL here.
# Recreating Greenlight ends no meeting. The secret is compared and written by bash alone: never on a command
# line. Without GREENLIGHT_VERSION Greenlight is not this server's (in a pool grown from one server, the one
# left on bbb-1's volume is left as it is, for its data to be moved by hand).
gl_dir=$ROOT/root/greenlight-v3
if [ -n "${GREENLIGHT_VERSION:-}" ] && [ -f "$gl_dir/.env" ]; then
  [[ ${GREENLIGHT_LOG_LEVEL:-} =~ ^(debug|info|warn|error)$ ]] || fail "GREENLIGHT_LOG_LEVEL must be debug, info, warn or error, not '${GREENLIGHT_LOG_LEVEL:-}'"
  gl_env=$(<"$gl_dir/.env")
  env=$(while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      BIGBLUEBUTTON_SECRET=*) printf 'BIGBLUEBUTTON_SECRET=%s\n' "$SECRET" ;;
      LOG_LEVEL=*) ;;
      *) printf '%s\n' "$line" ;;
    esac
  done <<<"$gl_env"
    printf 'LOG_LEVEL=%s\n' "$GREENLIGHT_LOG_LEVEL")
  gl_image=$(sed -n 's|^[[:space:]]*image:[[:space:]]*\(bigbluebutton/greenlight:.*\)$|\1|p' "$gl_dir/docker-compose.yml" 2>/dev/null || true)
  greenlight_compose "$GREENLIGHT_VERSION" || true
  if [ "$gl_env" != "$env" ] || [ "$gl_image" != "bigbluebutton/greenlight:$GREENLIGHT_VERSION" ] || pending greenlight; then
    pending_add greenlight
    printf '%s\n' "$env" | write_if_changed "$gl_dir/.env" 0600 root:root || true
    [ "$(sed -n 's/^BIGBLUEBUTTON_SECRET=//p' <<<"$gl_env" | tail -n1)" = "$SECRET" ] || say "Greenlight gets the stack's secret"
    [ "$gl_image" = "bigbluebutton/greenlight:$GREENLIGHT_VERSION" ] || say "Greenlight: ${gl_image:-no image} -> bigbluebutton/greenlight:$GREENLIGHT_VERSION"
    say "recreating Greenlight's containers"
    out=$("$ROOT/usr/local/bin/docker-compose" -f "$gl_dir/docker-compose.yml" up -d 2>&1) || {
      mask "$SECRET" <<<"$out" >&2
      fail "Docker Compose could not recreate Greenlight (see: docker compose -f /root/greenlight-v3/docker-compose.yml logs)"
    }
    pending_done greenlight
  fi
fi

# /var/bigbluebutton on the data volume (bbb-storage's link): bbb-config's after-install.sh gives it to the
# bigbluebutton user with chown -R, which does not follow a link named on its command line, so the volume's
# directory stays root's and bbb-web cannot write presentations into it. The trailing slash follows the link.
if [ -L "$ROOT/var/bigbluebutton" ]; then
  chown -R bigbluebutton:bigbluebutton "$ROOT/var/bigbluebutton/" || fail "cannot give /var/bigbluebutton (on the data volume) to bigbluebutton"
  chmod o+rx "$ROOT/var/bigbluebutton/"
fi

say "checking the API at https://$FQDN/bigbluebutton/api with the stack's secret"
deadline=$((SECONDS + API_WAIT_SECONDS))
while :; do
  answer=$(bbb_api getMeetings "" "$SECRET" 2>/dev/null || true)
  case $answer in
    *"<returncode>SUCCESS</returncode>"*)
      pending_done restart
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
