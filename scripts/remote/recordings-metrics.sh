#!/usr/bin/env bash
# bbb-recordings-metrics STATUS_DIR FILE: how BigBlueButton's recording pipeline is doing on this server, for
# Prometheus' node exporter (its textfile collector), from the status files under STATUS_DIR (BigBlueButton's
# /var/bigbluebutton/recording/status), written to FILE (a *.prom file) whole: a temporary file beside it, then
# renamed. Installed as /usr/local/sbin/bbb-recordings-metrics by the bbb-exporter step (scripts/remote/
# bbb-exporter.sh) when recordings are on, run by root every 5 minutes (bbb-recordings-metrics.timer). Not a
# remote step: it stands alone.
#
# The status files, as BigBlueButton's record-and-playback workers write them (record-and-playback/core/scripts/,
# read at commits 0252604b and 1320fcb9 of bigbluebutton/bigbluebutton, branch not verified for 3.0):
# rap-starter.rb enqueues the archive step for each recorded/<id>.done (and removes it); archive/archive.rb
# (@ 04deb5c7) writes archived/<id>.done, or instead archived/<id>.norecord for a meeting without recording marks
# (nothing more happens to it: never pending, as it has no .done), and workers/rap-archive-worker.rb touches
# archived/<id>.fail when archiving failed; rap-sanity-worker.rb sanity/<id>.done or .fail;
# rap-process-worker.rb processed/<id>-<format>.done or .fail; rap-publish-worker.rb published/<id>-<format>.done
# or .fail. A meeting id is <sha1>-<milliseconds>: the format is what follows its last dash.
#
# Metrics (aggregates only: no meeting id anywhere):
#   bbb_recordings_pending: meetings archived (archived/<id>.done) but published in no format yet, without a
#     .fail of any step;
#   bbb_recordings_oldest_pending_age_seconds: the age of the oldest of those (since its archived/<id>.done
#     was written), 0 when none;
#   bbb_recordings_failed: .fail status files (any step).
set -euo pipefail

status=${1:?usage: bbb-recordings-metrics STATUS_DIR FILE.prom}
out=${2:?usage: bbb-recordings-metrics STATUS_DIR FILE.prom}
tmp=$(mktemp "$out.tmp.XXXXXX")
trap 'rm -f "$tmp"' EXIT
now=$(date +%s)

# One line a status file: step/name mtime (.norecord files among them: they count for nothing). A file the workers
# remove meanwhile makes find complain: ignored, the next run sees the tree as it is then. No status directory yet
# (nothing recorded): nothing pending.
{ [ ! -d "$status" ] || find "$status" -mindepth 2 -maxdepth 2 -type f -printf '%P %T@\n' 2>/dev/null || true; } |
  awk -v now="$now" '
    function family(name, help) { printf "# HELP %s %s\n# TYPE %s gauge\n", name, help, name }
    {
      step = $1; sub(/\/.*/, "", step); name = $1; sub(/^[^\/]*\//, "", name)
      kind = name; sub(/.*\./, "", kind); id = name; sub(/\.[^.]*$/, "", id)
      if (step == "processed" || step == "published") sub(/-[^-]*$/, "", id)
      if (kind == "fail") { failed++; failed_id[id] = 1 }
      else if (step == "archived" && kind == "done") archived[id] = int($2)
      else if (step == "published" && kind == "done") published[id] = 1
    }
    END {
      pending = 0; oldest = now
      for (id in archived) {
        if ((id in published) || (id in failed_id)) continue
        pending++
        if (archived[id] < oldest) oldest = archived[id]
      }
      family("bbb_recordings_pending", "Meetings archived for their recording but not yet published, none of its steps failed.")
      print "bbb_recordings_pending " pending
      family("bbb_recordings_oldest_pending_age_seconds", "Seconds since the oldest pending recording was archived (0 when none is pending).")
      # (A clock set back leaves files from the future: no negative age.)
      print "bbb_recordings_oldest_pending_age_seconds " (pending && now > oldest ? now - oldest : 0)
      family("bbb_recordings_failed", "Recording status files that mark a failed step (.fail).")
      print "bbb_recordings_failed " failed + 0
    }
  ' >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
