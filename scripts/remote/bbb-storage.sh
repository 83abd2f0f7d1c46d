#!/usr/bin/env bash
# BBB host (single topology with recordings), before bbb-installer: puts BigBlueButton's recordings on the
# OpenStack data volume, mounted at /mnt/bbb-recordings (kept when the VM is replaced), by making
# /var/bigbluebutton a link to /mnt/bbb-recordings/bigbluebutton (bbb-install.sh's -m only adds a link
# after the packages made the directory, so the link must be there first).
#   - /var/bigbluebutton missing (a fresh VM): link it; a volume kept from a replaced VM keeps its data.
#   - already that link: nothing.
#   - a real directory (BigBlueButton installed before recordings were turned on): stop BigBlueButton, copy
#     the directory onto the volume (cp -a), only then move the old directory aside (kept, never deleted),
#     link, start BigBlueButton again. A failed copy leaves the old directory in place. Stopping ends running
#     meetings: it happens only when the server hosts none (guard_meetings), unless FORCE_RESTART.
# Inputs: FQDN VOLUME_ID (the data volume's id) VOLUME_SIZE (its GB: a grown volume's filesystem is grown)
#         FORCE_RESTART (true|false)
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${FQDN:?}" "${VOLUME_ID:?}" "${VOLUME_SIZE:?}" "${FORCE_RESTART:?}"
[[ $VOLUME_ID =~ ^[A-Za-z0-9-]{20,}$ ]] || fail "VOLUME_ID '$VOLUME_ID' is not an OpenStack volume id"

mnt=/mnt/bbb-recordings
target=$ROOT$mnt/bigbluebutton
partial=$target.partial
link=$ROOT/var/bigbluebutton

# Lists a directory's entries (hidden ones too); empty when it holds nothing.
entries() {
  ls -A "$1"
}

say "mounting the data volume $VOLUME_ID at $mnt"
mount_data_volume "$VOLUME_ID" "$mnt" "$VOLUME_SIZE"

if [ -L "$link" ]; then
  current=$(readlink "$link")
  [ "$current" = "$target" ] ||
    fail "/var/bigbluebutton is a link to $current, not to $mnt/bigbluebutton; refusing to change it (move it away by hand)"
  [ -d "$target" ] || fail "/var/bigbluebutton links to $mnt/bigbluebutton, which is missing: is the data volume the right one?"
  say "/var/bigbluebutton already links to $mnt/bigbluebutton"
  exit 0
fi

# A copy interrupted by an earlier run: its source is still in /var/bigbluebutton (or was moved aside).
if [ -e "$partial" ]; then
  if [ -d "$link" ]; then
    rm -rf "$partial" || fail "cannot remove the unfinished copy $mnt/bigbluebutton.partial of an earlier run"
  else
    fail "$mnt/bigbluebutton.partial holds an unfinished copy of an earlier run and /var/bigbluebutton is gone;" \
      "check /var/bigbluebutton.pre-volume* and the copy by hand"
  fi
fi

if [ ! -e "$link" ]; then
  if [ -d "$target" ] && [ -n "$(entries "$target")" ]; then
    say "keeping the recordings already on the data volume ($mnt/bigbluebutton)"
  else
    mkdir -p "$target" || fail "cannot create $mnt/bigbluebutton"
  fi
  mkdir -p "$ROOT/var"
  ln -s "$target" "$link" || fail "cannot link /var/bigbluebutton to $mnt/bigbluebutton"
  say "/var/bigbluebutton now links to $mnt/bigbluebutton"
  exit 0
fi

[ -d "$link" ] || fail "/var/bigbluebutton is neither a directory nor a link; refusing to touch it"

# /var/bigbluebutton is a real directory: move its contents onto the volume.
if [ -e "$target" ]; then
  [ -d "$target" ] || fail "$mnt/bigbluebutton exists and is not a directory; refusing to touch it"
  if [ -n "$(entries "$target")" ]; then
    fail "both /var/bigbluebutton (a directory) and $mnt/bigbluebutton on the data volume hold data;" \
      "refusing to merge or overwrite either: move one of them away by hand, then run again"
  fi
  rm -d "$target" || fail "cannot remove the empty $mnt/bigbluebutton"
fi

stopped=false
start_bbb() {
  if [ "$stopped" = true ]; then
    stopped=false
    say "starting BigBlueButton again"
    bbb-conf --start >/dev/null 2>&1 || echo "${STEP:-step}: error: bbb-conf --start failed; start BigBlueButton by hand" >&2
  fi
}
trap start_bbb EXIT

if command -v bbb-conf >/dev/null; then
  guard_meetings "stopping BigBlueButton to move /var/bigbluebutton onto the data volume" "$FORCE_RESTART" forceReinstall
  say "stopping BigBlueButton to move /var/bigbluebutton onto the data volume"
  stopped=true
  if ! out=$(bbb-conf --stop 2>&1); then
    tail -n 20 <<<"$out" >&2
    fail "bbb-conf --stop failed; /var/bigbluebutton is left as it was"
  fi
fi

say "copying /var/bigbluebutton to $mnt/bigbluebutton"
mkdir -p "$partial" || fail "cannot create $mnt/bigbluebutton.partial"
if ! cp -a "$link/." "$partial/"; then
  # Only the unfinished copy goes; /var/bigbluebutton is untouched.
  rm -rf "$partial" || true
  fail "copying /var/bigbluebutton to $mnt/bigbluebutton failed (is the data volume full?); /var/bigbluebutton is left as it was"
fi
mv "$partial" "$target" || fail "cannot rename $mnt/bigbluebutton.partial to $mnt/bigbluebutton; /var/bigbluebutton is left as it was"

aside=$link.pre-volume
[ -e "$aside" ] && aside=$link.pre-volume-$(date +%Y%m%d%H%M%S)
mv "$link" "$aside" || fail "cannot move /var/bigbluebutton aside to ${aside#"$ROOT"}; the copy is in $mnt/bigbluebutton"
ln -s "$target" "$link" ||
  fail "cannot link /var/bigbluebutton to $mnt/bigbluebutton; the old directory is ${aside#"$ROOT"}, the copy $mnt/bigbluebutton"
say "/var/bigbluebutton now links to $mnt/bigbluebutton; the old directory is kept at ${aside#"$ROOT"} (remove it once the recordings play)"
start_bbb
