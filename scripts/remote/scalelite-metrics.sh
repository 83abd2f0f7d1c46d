#!/usr/bin/env bash
# bbb-scalelite-metrics FILE: Scalelite's view of its BigBlueButton servers, for Prometheus' node exporter (its
# textfile collector), written to FILE (a *.prom file) whole: a temporary file beside it, then renamed. Installed on
# the Scalelite host as /usr/local/sbin/bbb-scalelite-metrics by the node-exporter step (scripts/remote/
# node-exporter.sh), run by root every minute (bbb-scalelite-metrics.timer). Not a remote step: it stands alone.
#
# It reads `rake status` in the scalelite-api container, never `rake servers` (which prints every server's
# secret). Scalelite v1.8.5's lib/tasks/status.rake prints a Tabulo table (L27-40: border :blank, packed, after an
# empty line) with the columns HOSTNAME (the host of the server's URL), STATE (enabled, cordoned or disabled,
# L43-56), STATUS (online or offline, L17), MEETINGS, USERS, LARGEST MEETING, VIDEOS, LOAD, BBB VERSION, TAG.
# Tabulo 2.8.2 (Scalelite's Gemfile.lock): no border characters, one space of padding each side of a cell
# (table.rb L151-170), headers centred, strings left-aligned, numbers right-aligned, nil as blanks (cell.rb
# L180-215); the header comes with the first row, so no server, no table (table.rb L387-420). So HOSTNAME, STATE
# and STATUS are the first three words of a row (never blank, no spaces), while any later cell may be blank (a
# server never polled has no meetings, users, load; TAG is often blank): MEETINGS and USERS are read at the
# columns of their headers, which span their cells exactly (each column is as wide as its widest cell or header,
# and no number of meetings or users is wider than those headers).
#
# Metrics (labels: the server's host name, nothing else):
#   scalelite_status_up 1, or 0 when rake status failed (then no server metric);
#   scalelite_server_online{server} 1 or 0; scalelite_server_state{server,state} 1 (its one state);
#   scalelite_server_meetings{server}, scalelite_server_users{server} (only when Scalelite has a number).
set -uo pipefail

out=${1:?usage: bbb-scalelite-metrics FILE.prom}
tmp=$(mktemp "$out.tmp.XXXXXX") || exit 1
trap 'rm -f "$tmp"' EXIT

up=1
# A Rails boot takes seconds; the next run is a minute away.
table=$(timeout 50 docker exec scalelite-api bin/rake status 2>/dev/null) || {
  echo "bbb-scalelite-metrics: docker exec scalelite-api bin/rake status failed (exit $?): scalelite_status_up 0" >&2
  up=0
  table=""
}

awk -v up="$up" '
  function trim(s) { gsub(/^ +| +$/, "", s); return s }
  function family(name, help) { printf "# HELP %s %s\n# TYPE %s gauge\n", name, help, name }
  !header && index($0, "HOSTNAME") && index($0, "MEETINGS") && index($0, "USERS") {
    header = 1; meetings_at = index($0, "MEETINGS"); users_at = index($0, "USERS"); next
  }
  header && NF >= 3 && $1 ~ /^[A-Za-z0-9][A-Za-z0-9.-]*$/ && $2 ~ /^(enabled|cordoned|disabled)$/ && $3 ~ /^(online|offline)$/ && !($1 in seen) {
    seen[$1] = 1; hosts[++n] = $1; state[$1] = $2; online[$1] = ($3 == "online")
    m = trim(substr($0, meetings_at, 8)); if (m ~ /^[0-9]+$/) meetings[$1] = m
    u = trim(substr($0, users_at, 5)); if (u ~ /^[0-9]+$/) users[$1] = u
  }
  END {
    family("scalelite_status_up", "1 when Scalelite answered rake status, else 0.")
    print "scalelite_status_up " up
    family("scalelite_server_online", "1 when Scalelite sees the server online (its poller), else 0.")
    for (i = 1; i <= n; i++) printf "scalelite_server_online{server=\"%s\"} %d\n", hosts[i], online[hosts[i]]
    family("scalelite_server_state", "The server'"'"'s state in Scalelite (enabled, cordoned or disabled): 1.")
    for (i = 1; i <= n; i++) printf "scalelite_server_state{server=\"%s\",state=\"%s\"} 1\n", hosts[i], state[hosts[i]]
    family("scalelite_server_meetings", "Meetings on the server as Scalelite last polled it.")
    for (i = 1; i <= n; i++) if (hosts[i] in meetings) printf "scalelite_server_meetings{server=\"%s\"} %s\n", hosts[i], meetings[hosts[i]]
    family("scalelite_server_users", "Users on the server as Scalelite last polled it.")
    for (i = 1; i <= n; i++) if (hosts[i] in users) printf "scalelite_server_users{server=\"%s\"} %s\n", hosts[i], users[hosts[i]]
  }
' <<<"$table" >"$tmp" || exit 1
chmod 0644 "$tmp" && mv -f "$tmp" "$out"
