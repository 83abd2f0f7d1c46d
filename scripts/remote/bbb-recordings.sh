#!/usr/bin/env bash
# BBB server of the pool (recordings on), after bbb-configure: hands each published recording to Scalelite
# as Scalelite's docs/sharedvolume-README.md describes. Scalelite's recordings share (NFS, exported by the
# scalelite-setup step) is mounted at /mnt/scalelite-recordings; the group scalelite-spool (gid 2000, which
# owns the share's directories) gets the bigbluebutton user; Scalelite's scalelite_post_publish.rb and
# scalelite.yml, pinned to the Scalelite image tag, go to BigBlueButton's recording scripts, the post-publish
# script then rsyncs a tar of each published recording into the share's spool directory.
# Inputs: NFS_SERVER (Scalelite's private IPv4) SCALELITE_VERSION (image tag, e.g. v1.8.5)
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${NFS_SERVER:?}" "${SCALELITE_VERSION:?}"
[[ $NFS_SERVER =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]] || fail "NFS_SERVER '$NFS_SERVER' is not an IPv4 address"
[[ $SCALELITE_VERSION =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || fail "SCALELITE_VERSION '$SCALELITE_VERSION' is not an image tag"

share=/var/lib/bbb-data/recordings
mnt=/mnt/scalelite-recordings
spool=$mnt/spool
scripts=$ROOT/usr/local/bigbluebutton/core/scripts
base=https://raw.githubusercontent.com/blindsidenetworks/scalelite/$SCALELITE_VERSION/bigbluebutton
fstab=$ROOT/etc/fstab
gid=2000

getent passwd bigbluebutton >/dev/null || fail "the user bigbluebutton is missing: bbb-install.sh has not completed on this host"
[ -d "$scripts" ] || fail "/usr/local/bigbluebutton/core/scripts is missing: bbb-install.sh has not completed on this host"

# 1. The group that owns the share's directories (NFS compares numeric ids: it must be gid 2000).
if group=$(getent group scalelite-spool); then
  current=$(cut -d: -f3 <<<"$group")
  [ "$current" = "$gid" ] ||
    fail "the group scalelite-spool has gid $current; Scalelite's share needs gid $gid (groupmod -g $gid scalelite-spool, then run again)"
else
  if other=$(getent group "$gid"); then
    fail "gid $gid is taken by the group ${other%%:*}; Scalelite's share needs it for scalelite-spool"
  fi
  groupadd -g "$gid" scalelite-spool || fail "groupadd -g $gid scalelite-spool failed"
  say "created the group scalelite-spool (gid $gid)"
  group=$(getent group scalelite-spool) || fail "the group scalelite-spool is missing after groupadd"
fi
if [[ ",$(cut -d: -f4 <<<"$group")," != *,bigbluebutton,* ]]; then
  # The recording worker gets the group only when it starts again (step 4): owed from here on, also when this
  # run stops before then (lib.sh's pending work).
  pending_add worker-restart
  usermod -a -G scalelite-spool bigbluebutton || fail "usermod -a -G scalelite-spool bigbluebutton failed"
  say "added bigbluebutton to the group scalelite-spool"
fi

# 2. The share, mounted through /etc/fstab (nofail, _netdev: a Scalelite host that is down never blocks the boot).
say "installing nfs-common and rsync"
apt_install nfs-common rsync
line="$NFS_SERVER:$share $mnt nfs defaults,tcp,nofail,_netdev,lookupcache=positive 0 0"
touch "$fstab"
# A new line for the share (a new Scalelite host): what is mounted there goes and the share is mounted anew, owed
# from here until it is, also when this run stops before then (lib.sh's pending work).
grep -qxF -- "$line" "$fstab" || pending_add remount
# (Not a pipe: write_if_changed's fail must stop this script, not a subshell.)
if write_if_changed "$fstab" 0644 root:root < <(
  awk -v mp="$mnt" '$2 != mp' "$fstab"
  printf '%s\n' "$line"
); then
  say "set /etc/fstab: $line"
fi
# A share mounted from another server (a replaced Scalelite host) goes; lazily, as that server may be gone.
if pending remount && mountpoint -q "$ROOT$mnt"; then
  umount -l "$ROOT$mnt" || fail "cannot unmount the old share at $mnt (the next run unmounts it again)"
fi
mkdir -p "$ROOT$mnt"
if ! mountpoint -q "$ROOT$mnt"; then
  say "mounting $NFS_SERVER:$share at $mnt"
  timeout 120 mount "$ROOT$mnt" ||
    fail "cannot mount $NFS_SERVER:$share at $mnt (has scalelite-setup exported it, with recordings on, to this host's address?)"
fi
pending_done remount
[ -d "$ROOT$spool" ] ||
  fail "the share $NFS_SERVER:$share has no spool directory: is it Scalelite's recordings directory?"

# 3. Scalelite's post-publish script and its settings, pinned to the Scalelite version.
state=$ROOT/var/lib/bbb-deploy
mkdir -p "$state"
# coverage: not reached in tests: $state was just made; mktemp -d fails in it only where the kernel refuses (read-only, full)
tmp=$(mktemp -d "$state/scalelite.XXXXXX") || fail "cannot make a temporary directory in /var/lib/bbb-deploy"
trap 'rm -rf "$tmp"' EXIT
for file in scalelite_post_publish.rb scalelite.yml; do
  curl -fsSL --retry 5 --max-time 60 -o "$tmp/$file" "$base/$file" || fail "cannot download $base/$file"
done
# The script is Ruby: a ruby shebang (or its frozen_string_literal comment) first, and it reads spool_dir.
first=$(head -n1 "$tmp/scalelite_post_publish.rb")
if ! [[ $first =~ ^(#!.*ruby|#\ *frozen_string_literal) ]] || ! grep -q spool_dir "$tmp/scalelite_post_publish.rb"; then
  fail "$base/scalelite_post_publish.rb is not Scalelite's post-publish script (no ruby shebang, or no spool_dir)"
fi
if ! grep -q '^work_dir:' "$tmp/scalelite.yml" || ! grep -q '^spool_dir:' "$tmp/scalelite.yml"; then
  fail "$base/scalelite.yml is not Scalelite's scalelite.yml (no work_dir or spool_dir)"
fi

mkdir -p "$scripts/post_publish"
if write_if_changed "$scripts/post_publish/scalelite_post_publish.rb" 0755 root:root <"$tmp/scalelite_post_publish.rb"; then
  say "installed scalelite_post_publish.rb ($SCALELITE_VERSION)"
fi
# Scalelite's file with our three keys (every other key, e.g. delete_recording, as Scalelite ships it).
if write_if_changed "$scripts/scalelite.yml" 0644 root:root < <(
  echo "# Managed by bbb (Pulumi, bbb-recordings step) from Scalelite $SCALELITE_VERSION; changes here are overwritten."
  grep -Ev '^(work_dir|spool_dir|extra_rsync_opts):' "$tmp/scalelite.yml" || true
  echo "work_dir: /var/bigbluebutton/recording/scalelite"
  echo "spool_dir: $spool"
  echo 'extra_rsync_opts: ["-av", "--no-owner", "--chmod=F664"]'
); then
  say "installed scalelite.yml (spool_dir: $spool)"
fi

# 4. The recording worker runs as bigbluebutton: it gets the new group only when it starts again.
if pending worker-restart; then
  systemctl try-restart bbb-rap-resque-worker.service ||
    fail "cannot restart bbb-rap-resque-worker.service (the next run restarts it again)"
  pending_done worker-restart
fi
say "published recordings go to Scalelite through $NFS_SERVER:$share"
