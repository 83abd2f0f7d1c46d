#!/usr/bin/env bash
# BBB host (single topology), before bbb-installer: puts a directory that holds what users create on an
# OpenStack data volume (kept when the VM is replaced), mounted at MOUNT, by making DIRECTORY a link to
# MOUNT/<its name>: BigBlueButton's recordings (/var/bigbluebutton; bbb-install.sh's -m only adds a link after
# the packages made the directory, so the link must be there first), or Greenlight's compose project
# (/root/greenlight-v3: its database, uploads, and the .env and compose file whose passwords the database
# was made with; bbb-install.sh -g keeps a compose file and .env it finds and fills only empty values).
#   - DIRECTORY missing (a fresh VM): link it; a volume kept from a replaced VM keeps its data.
#   - already that link: nothing.
#   - a real directory (installed before the volume existed): stop SERVICE, copy the directory onto the
#     volume (cp -a), only then move the old directory aside (kept, never deleted), link, start SERVICE
#     again. A failed copy leaves the old directory in place. Stopping BigBlueButton ends running meetings:
#     it happens only when the server hosts none (guard_meetings), unless FORCE_RESTART; stopping Greenlight
#     ends no meeting (its pages are down for the copy).
# Inputs: FQDN VOLUME_ID (the data volume's id) VOLUME_SIZE (its GB: a grown volume's filesystem is grown)
#         MOUNT DIRECTORY SERVICE (bigbluebutton|greenlight) FORCE_RESTART (true|false)
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${FQDN:?}" "${VOLUME_ID:?}" "${VOLUME_SIZE:?}" "${MOUNT:?}" "${DIRECTORY:?}" "${SERVICE:?}" "${FORCE_RESTART:?}"
[[ $VOLUME_ID =~ ^[A-Za-z0-9-]{20,}$ ]] || fail "VOLUME_ID '$VOLUME_ID' is not an OpenStack volume id"
[[ $MOUNT =~ ^/mnt/[a-z0-9-]+$ ]] || fail "MOUNT '$MOUNT' is not a directory under /mnt"
[[ $DIRECTORY =~ ^(/[A-Za-z0-9._-]+)+$ ]] || fail "DIRECTORY '$DIRECTORY' is not an absolute path"
case $SERVICE in bigbluebutton | greenlight) ;; *) fail "SERVICE must be bigbluebutton or greenlight, not $SERVICE" ;; esac

mnt=$MOUNT
dir=$DIRECTORY
name=${DIRECTORY##*/}
target=$ROOT$mnt/$name
partial=$target.partial
link=$ROOT$dir

# Lists a directory's entries (hidden ones too); empty when it holds nothing.
entries() {
  ls -A "$1"
}

say "mounting the data volume $VOLUME_ID at $mnt"
mount_data_volume "$VOLUME_ID" "$mnt" "$VOLUME_SIZE"

if [ -L "$link" ]; then
  current=$(readlink "$link")
  [ "$current" = "$target" ] ||
    fail "$dir is a link to $current, not to $mnt/$name; refusing to change it (move it away by hand)"
  [ -d "$target" ] || fail "$dir links to $mnt/$name, which is missing: is the data volume the right one?"
  say "$dir already links to $mnt/$name"
  exit 0
fi

# A copy interrupted by an earlier run: its source is still in $dir (or was moved aside).
if [ -e "$partial" ]; then
  if [ -d "$link" ]; then
    # coverage: not reached in tests: rm -rf by root fails only where the kernel refuses (read-only volume, immutable file, mount point)
    rm -rf "$partial" || fail "cannot remove the unfinished copy $mnt/$name.partial of an earlier run"
  else
    fail "$mnt/$name.partial holds an unfinished copy of an earlier run and $dir is gone;" \
      "check $dir.pre-volume* and the copy by hand"
  fi
fi

if [ ! -e "$link" ]; then
  if [ -d "$target" ] && [ -n "$(entries "$target")" ]; then
    say "keeping what the data volume holds already ($mnt/$name)"
  else
    mkdir -p "$target" || fail "cannot create $mnt/$name"
  fi
  mkdir -p "$(dirname "$link")"
  # coverage: not reached in tests: $dir is not there (checked above): ln -s fails only where the kernel refuses (read-only, full)
  ln -s "$target" "$link" || fail "cannot link $dir to $mnt/$name"
  say "$dir now links to $mnt/$name"
  exit 0
fi

[ -d "$link" ] || fail "$dir is neither a directory nor a link; refusing to touch it"

# $dir is a real directory: move its contents onto the volume.
if [ -e "$target" ]; then
  [ -d "$target" ] || fail "$mnt/$name exists and is not a directory; refusing to touch it"
  if [ -n "$(entries "$target")" ]; then
    fail "both $dir (a directory) and $mnt/$name on the data volume hold data;" \
      "refusing to merge or overwrite either: move one of them away by hand, then run again"
  fi
  # coverage: not reached in tests: the directory was just found empty: rm -d fails only in a race or where the kernel refuses
  rm -d "$target" || fail "cannot remove the empty $mnt/$name"
fi

# What uses the directory: stopped for the copy, started again after it (also when the copy fails).
service_here() {
  case $SERVICE in
    bigbluebutton) command -v bbb-conf >/dev/null ;;
    greenlight) command -v docker-compose >/dev/null && [ -f "$link/docker-compose.yml" ] ;;
  esac
}
stop_service() {
  case $SERVICE in
    bigbluebutton) bbb-conf --stop ;;
    greenlight) docker-compose -f "$link/docker-compose.yml" stop ;;
  esac
}
start_service() {
  case $SERVICE in
    bigbluebutton) bbb-conf --start ;;
    greenlight) docker-compose -f "$link/docker-compose.yml" up -d ;;
  esac
}
stopped=false
start_again() {
  if [ "$stopped" = true ]; then
    stopped=false
    say "starting $SERVICE again"
    start_service >/dev/null 2>&1 || echo "${STEP:-step}: error: starting $SERVICE failed; start it by hand" >&2
  fi
}
trap start_again EXIT

if service_here; then
  [ "$SERVICE" = bigbluebutton ] &&
    guard_meetings "stopping BigBlueButton to move $dir onto the data volume" "$FORCE_RESTART" forceReinstall
  say "stopping $SERVICE to move $dir onto the data volume"
  stopped=true
  if ! out=$(stop_service 2>&1); then
    tail -n 20 <<<"$out" >&2
    fail "stopping $SERVICE failed; $dir is left as it was"
  fi
fi

say "copying $dir to $mnt/$name"
mkdir -p "$partial" || fail "cannot create $mnt/$name.partial"
if ! cp -a "$link/." "$partial/"; then
  # Only the unfinished copy goes; $dir is untouched.
  rm -rf "$partial" || true
  fail "copying $dir to $mnt/$name failed (is the data volume full?); $dir is left as it was"
fi
mv "$partial" "$target" || fail "cannot rename $mnt/$name.partial to $mnt/$name; $dir is left as it was"

aside=$link.pre-volume
[ -e "$aside" ] && aside=$link.pre-volume-$(date +%Y%m%d%H%M%S)
mv "$link" "$aside" || fail "cannot move $dir aside to ${aside#"$ROOT"}; the copy is in $mnt/$name"
# coverage: not reached in tests: $dir was just moved away: ln -s fails only where the kernel refuses (read-only, full)
ln -s "$target" "$link" ||
  fail "cannot link $dir to $mnt/$name; the old directory is ${aside#"$ROOT"}, the copy $mnt/$name"
say "$dir now links to $mnt/$name; the old directory is kept at ${aside#"$ROOT"} (remove it once everything works)"
start_again
