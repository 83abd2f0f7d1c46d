#!/usr/bin/env bash
# Scalelite host: keeps one BBB server registered with Scalelite (rake tasks in the scalelite-api container;
# with SERVER_ID_IS_HOSTNAME the server's id is its host name).
#   apply (default; `create` when Pulumi creates the step): add the server if missing, then enable it, or
#     cordon it when DRAIN is true; when its secret changed: cordon, update the secret, enable again. Then
#     record CHANGE as applied and give back the maintenance slot. `create` on a server registered already
#     means the step itself was replaced (pulumi up --replace): it notes that, so that the old step's delete,
#     which Pulumi runs next, leaves the server registered.
#   maintenance (before the server's own steps, which may restart it): when CHANGE (a fingerprint of what
#     restarts BigBlueButton on it: installer inputs, secret, properties) differs from the one last applied,
#     the server is taken out of service for it: cordoned, so that it takes no new meeting while the running
#     ones end. One server at a time: it takes the pool's one maintenance slot, waiting (up to
#     MAINTENANCE_WAIT_SECONDS) while another server holds it; while that server still hosts meetings it gives
#     up at once, saying so, and so it does when the holder has held the slot longer than a change takes
#     (MAINTENANCE_STALL_SECONDS, 75 min: its steps failed). apply gives the slot back once the server runs its
#     change. A Scalelite that runs but does not answer (its containers being replaced) is waited for.
#   remove (the argument on delete, when the server leaves the pool): cordon it, then remove it once it
#     hosts no meeting, by its own API and by Scalelite's view (rake status). While meetings run, or when it
#     cannot tell (the server does not answer), it refuses, unless forceRemove is set (the flag file written
#     by the scalelite-setup step): then it ends them (panic) and removes the server.
#   retire (the argument on delete of the server's retire step, run before its VM is deleted or replaced):
#     takes the server out of service as maintenance does (the pool's one slot, cordoned), noting its VM
#     (INSTANCE_ID). The VM's own check, run next where pulumi up runs (components/guard.ts), refuses while it
#     hosts meetings, unless forceRemove as the stack has it then; the server stays cordoned, so it empties,
#     and a later pulumi up goes on. Registering the new VM enables it and gives the slot back.
#   guard (create and update of the retire step): when the VM noted by a retire is still the server's (its
#     replacement was refused or cut short, and not tried again), puts the server back into service.
# The server's secret never goes on a command line (docker exec's and rake's, which every user of the host can
# read): it is registered with servers:sync[-,keep], which reads the server from stdin (docker exec -i), instead of
# servers:add[URL,SECRET,1.0] and servers:update[ID,SECRET] (Scalelite v1.8.5, lib/tasks/servers.rake and
# lib/server_sync.rb; docs/upstream.md).
# Inputs: NODE_ID MAINTENANCE_WAIT_SECONDS; but for guard and retire also API_URL SECRET DRAIN CHANGE, and
# INSTALL_ID, which changes with every installer run on the server so that apply runs after it (Scalelite's
# poller disables a server that stopped answering meanwhile); INSTANCE_ID (optional), the server's VM, so that
# apply runs for a new one; PROTECTED (optional, true|false): the server's VM is protected (the prod stack), so
# remove refuses.
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

action=${1:-apply}
: "${NODE_ID:?}" "${MAINTENANCE_WAIT_SECONDS:?}"
case $action in
  guard | retire) SECRET=${SECRET:-} ;;
  *)
    : "${API_URL:?}" "${SECRET:?}" "${DRAIN:?}" "${CHANGE:?}" "${INSTALL_ID:?}"
    [[ $SECRET =~ ^[[:graph:]]+$ ]] || fail "the secret of $NODE_ID must be printable characters without spaces"
    ;;
esac
force_flag=$ROOT/etc/bbb-deploy/scalelite-force-remove
nodes=$ROOT/var/lib/bbb-deploy/scalelite-nodes
slot=$nodes/maintenance-slot
applied=$nodes/$NODE_ID.applied
replaced=$nodes/$NODE_ID.replaced
retired=$nodes/$NODE_ID.retired
mkdir -p "$nodes"
chmod 0700 "$nodes"

# Runs rake tasks in one invocation (one Rails boot: 64 nodes register on one host); on failure shows the
# output (secret masked) and stops. `rake_with INPUT TASK...` gives the tasks INPUT on stdin (docker exec -i).
rake() {
  rake_with "" "$@"
}
rake_with() {
  local input=$1 out
  shift
  [ "$#" -gt 0 ] || return 0
  if [ -n "$input" ]; then
    out=$(docker exec -i scalelite-api bin/rake "$@" 2>&1 <<<"$input")
  else
    out=$(docker exec scalelite-api bin/rake "$@" 2>&1)
  fi || {
    mask "$SECRET" <<<"$out" >&2
    fail "Scalelite's rake ${*%%\[*} for $NODE_ID failed (see: docker logs scalelite-api)"
  }
}

# A YAML string: single-quoted, a quote doubled.
yaml_string() {
  printf "'%s'" "${1//\'/\'\'}"
}

# NODE_ID with URL, the secret, LOAD_MULTIPLIER and TAG (none when empty), not enabled, as servers:sync reads it
# (ServerSync.sync, v1.8.5: `servers` maps ids to url, secret, enabled, load_multiplier, tag; those left out take
# their defaults, enabled true among them). With mode keep it leaves every other server as it is, and it changes
# the state of this one only to enable it (not asked here) or to cordon it when enabled (it never is here: a new
# server is not, and one whose secret changes is cordoned first). The tasks that follow enable it, or not.
server_yaml() {
  local url=$1 load_multiplier=$2 tag=$3
  printf 'servers:\n  %s:\n    url: %s\n    secret: %s\n    enabled: false\n    load_multiplier: %s\n' \
    "$(yaml_string "$NODE_ID")" "$(yaml_string "$url")" "$(yaml_string "$SECRET")" "$load_multiplier"
  [ -z "$tag" ] || printf '    tag: %s\n' "$(yaml_string "$tag")"
}

# The server's block of `rake servers` (id, url, secret, state, ...), empty when it is not registered.
# It holds the secret: never print it.
registration() {
  local list
  list=$(docker exec scalelite-api bin/rake servers 2>/dev/null) || fail "cannot list Scalelite's servers (is scalelite-api running?)"
  awk -v id="$NODE_ID" '/^id: /{on=($2==id)} on' <<<"$list"
}

# Scalelite's own view of its servers (`rake status`: HOSTNAME STATE STATUS MEETINGS ..., updated by its
# poller every minute), shared by every step on this host and fetched at most once every MAX_AGE seconds:
# one Rails boot however many servers wait. Prints nothing when Scalelite cannot say.
scalelite_status() {
  local max_age=$1 cache=$nodes/status
  (
    flock 9
    if [ ! -f "$cache" ] || [ $(($(date +%s) - $(stat -c %Y "$cache"))) -ge "$max_age" ]; then
      if docker exec scalelite-api bin/rake status >"$cache.new" 2>/dev/null; then
        mv -f "$cache.new" "$cache"
      else
        rm -f "$cache" "$cache.new"
      fi
    fi
  ) 9>"$nodes/status.lock"
  cat "$cache" 2>/dev/null || true
}

# A server's meetings in Scalelite's view; nothing when the view has no number for it (never polled).
viewed_meetings() {
  awk -v host="$1" '$1 == host && $4 ~ /^[0-9]+$/ { print $4 }' <<<"$2"
}

holds_slot() {
  [ "$(cat "$slot" 2>/dev/null)" = "$NODE_ID" ]
}

# Every change of the slot happens under one lock, and a slot file is written whole (mv): a server never
# takes, frees or releases a slot that changed hands since it looked.
with_slot_lock() {
  (
    flock 8
    "$@"
  ) 8>"$slot.lock"
}

release_slot() {
  with_slot_lock release_slot_locked
}
release_slot_locked() {
  if holds_slot; then rm -f "$slot"; fi
}

# Takes the maintenance slot if it is free (no file, or an empty one); true when this server holds it.
take_slot() {
  with_slot_lock take_slot_locked
}
take_slot_locked() {
  if [ -z "$(cat "$slot" 2>/dev/null)" ]; then
    printf '%s\n' "$NODE_ID" >"$slot.new" && mv -f "$slot.new" "$slot"
  fi
  holds_slot
}

# Frees the slot if HOLDER still holds it; true when it did.
free_slot_of() {
  with_slot_lock free_slot_of_locked "$1"
}
free_slot_of_locked() {
  [ "$(cat "$slot" 2>/dev/null)" = "$1" ] && rm -f "$slot"
}

# Takes the pool's one maintenance slot for NODE_ID, waiting while another server holds it (until $deadline);
# gives up at once while the holder still hosts meetings, or has held it longer than a change takes.
wait_for_slot() {
  local holder view busy ids held
  until take_slot; do
    holder=$(cat "$slot" 2>/dev/null || true)
    [ -n "$holder" ] || continue # freed since take_slot looked
    view=$(scalelite_status 60)
    busy=$(viewed_meetings "$holder" "$view")
    if [ -n "$busy" ] && [ "$busy" -gt 0 ]; then
      fail "one server at a time: $holder is out of service for its change first and still hosts $busy meeting(s);" \
        "$NODE_ID waits and keeps its meetings. Run pulumi up again once they have ended there."
    fi
    # A holder Scalelite no longer lists (removed by hand) holds nothing; asked anew, not from the view.
    if ids=$(docker exec scalelite-api bin/rake servers 2>/dev/null | awk '/^id: /{print $2}') && ! grep -qxF "$holder" <<<"$ids"; then
      if free_slot_of "$holder"; then say "$holder held the maintenance slot but is no longer registered in Scalelite: freed it"; fi
      continue
    fi
    held=$(($(date +%s) - $(stat -c %Y "$slot" 2>/dev/null || date +%s)))
    [ "$held" -lt "${MAINTENANCE_STALL_SECONDS:-4500}" ] ||
      fail "one server at a time: $holder has been out of service for its change for ${held}s, longer than a change takes;" \
        "see its steps' errors (pulumi up runs them again). To free the slot by hand: rm ${slot#"$ROOT"} on the Scalelite host."
    [ "$SECONDS" -lt "$deadline" ] ||
      fail "one server at a time: $NODE_ID waited ${MAINTENANCE_WAIT_SECONDS}s for $holder to finish its change; run pulumi up again"
    sleep "${MAINTENANCE_POLL_SECONDS:-10}"
  done
}

# The meetings NODE_ID hosts, by its own API and by Scalelite's view, in $meetings; `unknown` when it cannot
# tell and FORCE is true, else a failure saying the server stays cordoned.
count_meetings() {
  local force=$1 answer viewed
  if answer=$(bbb_api_at "$API_URL" getMeetings "" "$SECRET" 2>/dev/null) && [[ $answer == *"<returncode>SUCCESS</returncode>"* ]]; then
    meetings=$({ grep -o '<meeting>' <<<"$answer" || true; } | wc -l)
  elif [ "$force" = true ]; then
    meetings=unknown
  else
    fail "cannot tell whether meetings run on $NODE_ID: it does not answer its API with its secret. It is cordoned: it takes no new meetings." \
      "Run pulumi up again once it answers; if it is gone for good, set forceRemove: true (pulumi config set forceRemove true; pulumi up)."
  fi
  viewed=$(viewed_meetings "$NODE_ID" "$(scalelite_status 0)")
  if [ "$meetings" != unknown ] && [ -n "$viewed" ] && [ "$viewed" -gt "$meetings" ]; then meetings=$viewed; fi
}

# `create` on a server registered already: the step replaces an earlier one (noted once apply succeeded).
replacing=false
if [ "$action" = create ]; then
  [ -n "$(registration)" ] && replacing=true
  action=apply
fi

case $action in
  apply)
    block=$(registration)
    state=$(sed -n 's/^[[:space:]]*\(enabled\|disabled\|cordoned\)$/\1/p' <<<"$block")
    registered_secret=$(sed -n 's/^[[:space:]]*secret: //p' <<<"$block")
    tasks=() sync=""
    if [ -z "$block" ]; then
      say "adding $NODE_ID ($API_URL)"
      # As servers:add[URL,SECRET,1.0] added it: load multiplier 1, no tag, disabled.
      sync=$(server_yaml "$API_URL" 1 "")
      tasks+=("servers:sync[-,keep]")
      state=disabled
    elif [ "$registered_secret" != "$SECRET" ]; then
      say "$NODE_ID has a new secret: cordon, update, enable"
      # As servers:update[ID,SECRET] updated it: its URL, load multiplier (printed as a BigDecimal, 0.1e1) and tag kept.
      sync=$(server_yaml "$(sed -n 's/^[[:space:]]*url: //p' <<<"$block")" \
        "$(sed -n 's/^[[:space:]]*load multiplier: //p' <<<"$block" | awk '{ printf "%.15g", $1 }')" \
        "$(sed -n 's/^[[:space:]]*tag: //p' <<<"$block")")
      tasks+=("servers:cordon[$NODE_ID]" "servers:sync[-,keep]")
      state=cordoned
    fi
    if [ "$DRAIN" = true ]; then
      [ "$state" = enabled ] && tasks+=("servers:cordon[$NODE_ID]")
      rake_with "$sync" "${tasks[@]}"
      say "$NODE_ID is drained: it takes no new meetings (drain)"
    else
      [ "$state" = enabled ] || tasks+=("servers:enable[$NODE_ID]")
      rake_with "$sync" "${tasks[@]}"
      say "$NODE_ID is registered and enabled"
    fi
    printf '%s\n' "$CHANGE" >"$applied"
    release_slot
    if [ "$replacing" = true ]; then
      date +%s >"$replaced"
      say "$NODE_ID was registered already: this step replaces an earlier one, whose delete will leave it registered"
    else
      rm -f "$replaced"
    fi
    ;;
  maintenance)
    # Cheap when nothing is coming (every server's step runs again when the pool changes): no Rails boot.
    recorded=$(cat "$applied" 2>/dev/null || true)
    if [ "$recorded" = "$CHANGE" ] && ! holds_slot; then
      exit 0
    fi
    deadline=$((SECONDS + MAINTENANCE_WAIT_SECONDS))
    # A Scalelite that was never set up sends no meeting anywhere; one being restarted (its setup runs in the
    # same pulumi up) is waited for: without it the server cannot be taken out of service first.
    if ! docker exec scalelite-api true >/dev/null 2>&1; then
      if [ -z "$recorded" ] && ! docker inspect scalelite-api >/dev/null 2>&1; then
        say "Scalelite does not run yet: it sends no meeting to $NODE_ID"
        exit 0
      fi
      say "waiting for Scalelite's api container, to take $NODE_ID out of service first"
      until docker exec scalelite-api true >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || fail "Scalelite's api container does not answer: $NODE_ID cannot be taken out of service first; run pulumi up again"
        sleep "${MAINTENANCE_POLL_SECONDS:-10}"
      done
    fi
    block=$(registration)
    if [ -z "$block" ]; then
      exit 0
    fi
    state=$(sed -n 's/^[[:space:]]*\(enabled\|disabled\|cordoned\)$/\1/p' <<<"$block")
    registered_secret=$(sed -n 's/^[[:space:]]*secret: //p' <<<"$block")
    # Without a record (registered before records were kept) only a new secret is known to be coming.
    if [ -n "$recorded" ]; then coming=$([ "$recorded" != "$CHANGE" ] && echo true || echo false); else coming=$([ "$registered_secret" != "$SECRET" ] && echo true || echo false); fi
    if [ "$coming" = false ]; then
      # The change it was taken out of service for was taken back.
      release_slot
      if [ "$DRAIN" != true ] && [ "$state" != enabled ]; then
        rake "servers:enable[$NODE_ID]"
        say "$NODE_ID has nothing to apply any more: enabled again"
      fi
      exit 0
    fi
    if [ "$DRAIN" = true ]; then
      say "$NODE_ID is drained: its change is applied once it hosts no meeting"
      exit 0
    fi
    wait_for_slot
    [ "$state" = enabled ] && rake "servers:cordon[$NODE_ID]"
    say "$NODE_ID is the one server out of service: cordoned until its change is applied (running meetings go on)"
    ;;
  remove)
    # A server of the prod stack whose VM is protected stays: Pulumi would refuse to delete the VM after this.
    if [ "${PROTECTED:-false}" = true ]; then
      fail "$NODE_ID leaves the pool, but its VM is protected (the prod stack): nothing was changed." \
        "Set allowDestructiveChanges: true and run pulumi up with the server still in the pool first (pulumi config set allowDestructiveChanges true), then remove it."
    fi
    if [ -f "$replaced" ] && [ $(($(date +%s) - $(cat "$replaced"))) -lt 21600 ]; then
      rm -f "$replaced"
      say "this registration step was replaced (pulumi up --replace): $NODE_ID stays registered"
      exit 0
    fi
    rm -f "$replaced"
    block=$(registration)
    if [ -z "$block" ]; then
      say "$NODE_ID is not registered; nothing to remove"
      rm -f "$applied"
      release_slot
      exit 0
    fi
    state=$(sed -n 's/^[[:space:]]*\(enabled\|disabled\|cordoned\)$/\1/p' <<<"$block")
    force=$(cat "$force_flag" 2>/dev/null || echo false)
    # Removing takes the server out of service too: one server at a time (several may leave in one pulumi up).
    if [ "$force" != true ] && [ "$state" = enabled ]; then
      deadline=$((SECONDS + ${MAINTENANCE_WAIT_SECONDS:-86400}))
      wait_for_slot
    fi
    [ "$state" = enabled ] && rake "servers:cordon[$NODE_ID]"
    count_meetings "$force"
    tasks=()
    if [ "$meetings" != 0 ]; then
      if [ "$force" != true ]; then
        fail "$meetings meeting(s) still running on $NODE_ID. It is cordoned: it takes no new meetings." \
          "Run pulumi up again once they have ended, or set forceRemove: true (pulumi config set forceRemove true; pulumi up) to end them now."
      fi
      say "forceRemove is set: ending the meetings on $NODE_ID ($meetings)"
      tasks+=("servers:panic[$NODE_ID]")
    fi
    rake "${tasks[@]}" "servers:remove[$NODE_ID]"
    rm -f "$applied"
    release_slot
    say "$NODE_ID removed from Scalelite"
    ;;
  guard)
    # After a retire whose VM then stayed (its meetings check refused, the up was cut short): the same VM is
    # still there, so the server goes back into service. A new VM is left to its registration, which
    # enables it once installed.
    [ -f "$retired" ] || exit 0
    read -r retired_vm retired_cordoned <"$retired" || true
    rm -f "$retired"
    if [ "$retired_vm" = "${INSTANCE_ID:-}" ]; then
      if [ "$retired_cordoned" = true ] && [ -n "$(registration)" ]; then
        rake "servers:enable[$NODE_ID]"
      fi
      release_slot
      say "$NODE_ID keeps its VM: back in service"
    fi
    ;;
  retire)
    block=$(registration)
    if [ -z "$block" ]; then
      say "$NODE_ID is not registered: Scalelite sends it nothing"
      exit 0
    fi
    state=$(sed -n 's/^[[:space:]]*\(enabled\|disabled\|cordoned\)$/\1/p' <<<"$block")
    # A server that takes no meeting already (drained, disabled) needs no turn.
    if [ "$state" = enabled ]; then
      deadline=$((SECONDS + MAINTENANCE_WAIT_SECONDS))
      wait_for_slot
      rake "servers:cordon[$NODE_ID]"
    fi
    printf '%s %s\n' "${INSTANCE_ID:-}" "$([ "$state" = enabled ] && echo true || echo false)" >"$retired"
    say "$NODE_ID is out of service: cordoned while its VM is deleted or replaced (registering the new one enables it)"
    ;;
  *) fail "unknown action $action (apply, create, maintenance, remove, guard or retire)" ;;
esac
