#!/usr/bin/env bash
# Scalelite host: keeps one BBB server registered with Scalelite (rake tasks in the scalelite-api container;
# with SERVER_ID_IS_HOSTNAME the server's id is its host name).
#   apply (default): add the server if missing, then enable it, or cordon it when DRAIN is true; when its
#     secret changed: cordon, update the secret, enable again.
#   prepare (before the server itself switches to a new secret): cordon it when its registered secret differs
#     from SECRET, so that it takes no new meeting while the running ones end (apply enables it again).
#   remove (the argument on delete, when the server leaves the pool): cordon it, then remove it once it
#     hosts no meeting. While meetings run it refuses, unless forceRemove is set (the flag file written by the
#     scalelite-setup step): then it ends them (panic) and removes the server.
# Inputs: NODE_ID API_URL SECRET DRAIN, and INSTALL_ID, which changes with every installer run on the server
# so that apply runs after it (Scalelite's poller disables a server that stopped answering meanwhile).
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${NODE_ID:?}" "${API_URL:?}" "${SECRET:?}" "${DRAIN:?}" "${INSTALL_ID:?}"
action=${1:-apply}
force_flag=$ROOT/etc/bbb-deploy/scalelite-force-remove

# Runs rake tasks in one invocation (one Rails boot: 64 nodes register on one host); on failure shows the
# output (secret masked) and stops.
rake() {
  local out
  [ "$#" -gt 0 ] || return 0
  out=$(docker exec scalelite-api bin/rake "$@" 2>&1) || {
    mask "$SECRET" <<<"$out" >&2
    fail "Scalelite's rake ${*%%\[*} for $NODE_ID failed (see: docker logs scalelite-api)"
  }
}

# The server's block of `rake servers` (id, url, secret, state, ...), empty when it is not registered.
# It holds the secret: never print it.
registration() {
  local list
  list=$(docker exec scalelite-api bin/rake servers 2>/dev/null) || fail "cannot list Scalelite's servers (is scalelite-api running?)"
  awk -v id="$NODE_ID" '/^id: /{on=($2==id)} on' <<<"$list"
}

block=$(registration)
state=$(sed -n 's/^[[:space:]]*\(enabled\|disabled\|cordoned\)$/\1/p' <<<"$block")
registered_secret=$(sed -n 's/^[[:space:]]*secret: //p' <<<"$block")

tasks=()
case $action in
  apply)
    if [ -z "$block" ]; then
      say "adding $NODE_ID ($API_URL)"
      tasks+=("servers:add[$API_URL,$SECRET,1.0]")
      state=disabled
    elif [ "$registered_secret" != "$SECRET" ]; then
      say "$NODE_ID has a new secret: cordon, update, enable"
      tasks+=("servers:cordon[$NODE_ID]" "servers:update[$NODE_ID,$SECRET]")
      state=cordoned
    fi
    if [ "$DRAIN" = true ]; then
      [ "$state" = enabled ] && tasks+=("servers:cordon[$NODE_ID]")
      rake "${tasks[@]}"
      say "$NODE_ID is drained: it takes no new meetings (drain)"
    else
      [ "$state" = enabled ] || tasks+=("servers:enable[$NODE_ID]")
      rake "${tasks[@]}"
      say "$NODE_ID is registered and enabled"
    fi
    ;;
  remove)
    if [ -z "$block" ]; then
      say "$NODE_ID is not registered; nothing to remove"
      exit 0
    fi
    [ "$state" = enabled ] && rake "servers:cordon[$NODE_ID]"
    if answer=$(bbb_api_at "$API_URL" getMeetings "" "$SECRET" 2>/dev/null) && [[ $answer == *SUCCESS* ]]; then
      meetings=$({ grep -o '<meeting>' <<<"$answer" || true; } | wc -l)
    else
      say "$NODE_ID does not answer; it hosts no meeting any more"
      meetings=0
    fi
    if [ "$meetings" -gt 0 ]; then
      if [ "$(cat "$force_flag" 2>/dev/null || echo false)" != true ]; then
        fail "$meetings meeting(s) still running on $NODE_ID. It is cordoned: it takes no new meetings." \
          "Run pulumi up again once they have ended, or set forceRemove: true (pulumi config set forceRemove true; pulumi up) to end them now."
      fi
      say "forceRemove is set: ending $meetings meeting(s) on $NODE_ID"
      tasks+=("servers:panic[$NODE_ID]")
    fi
    rake "${tasks[@]}" "servers:remove[$NODE_ID]"
    say "$NODE_ID removed from Scalelite"
    ;;
  prepare)
    if [ -n "$block" ] && [ "$registered_secret" != "$SECRET" ] && [ "$state" = enabled ]; then
      rake "servers:cordon[$NODE_ID]"
      say "$NODE_ID is cordoned until it answers to its new secret"
    fi
    ;;
  *) fail "unknown action $action (apply, prepare or remove)" ;;
esac
