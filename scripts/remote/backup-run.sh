#!/usr/bin/env bash
# bbb-backup: backs up this host's data to its restic repository, one snapshot per part (host BBB_BACKUP_ROLE,
# tag bbb-backup), then applies the retention (forget --prune) and checks the repository; stale restic locks (of a
# run killed midway) are removed first. Installed as
# /usr/local/sbin/bbb-backup by bbb's backup-setup step (Pulumi; scripts/remote/backup-run.sh), run nightly by
# bbb-backup.timer; run it by hand with: systemctl start bbb-backup.service (or sudo bbb-backup).
# Parts (BBB_BACKUP_PARTS, space-separated):
#   postgres:CONTAINER:DATABASE  pg_dump -Fc inside the container, over its socket, as file /DATABASE.pgdump
#   redis:CONTAINER:DATA_DIR     the RDB a BGSAVE writes to DATA_DIR/dump.rdb, as file /CONTAINER.rdb
#   files:DIR                    the directory
# Settings: the environment (bbb-backup.service's EnvironmentFile), else /etc/default/bbb-backup.
# Only a run where every part, the retention and the check succeeded records its time in the node exporter's
# textfile BBB_BACKUP_METRICS (bbb_backup_last_success_timestamp_seconds); every run records whether it succeeded
# (bbb_backup_last_run_success). Exits 1 on any failure, naming the part.
set -euo pipefail

settings=/etc/default/bbb-backup
if [ -z "${RESTIC_REPOSITORY:-}" ]; then
  [ -r "$settings" ] || { echo "bbb-backup: cannot read $settings (run as root)" >&2; exit 1; }
  # KEY=VALUE lines, as systemd reads them (the setup step writes no quotes), exported without a command line.
  while IFS= read -r line; do
    case $line in '' | '#'*) continue ;; esac
    export "${line%%=*}=${line#*=}"
  done <"$settings"
fi
for setting in RESTIC_REPOSITORY RESTIC_PASSWORD_FILE BBB_BACKUP_ROLE BBB_BACKUP_PARTS BBB_BACKUP_KEEP_DAILY \
  BBB_BACKUP_KEEP_WEEKLY BBB_BACKUP_KEEP_MONTHLY BBB_BACKUP_METRICS; do
  [ -n "${!setting:-}" ] || { echo "bbb-backup: $setting is not set (see $settings)" >&2; exit 1; }
done
role=$BBB_BACKUP_ROLE
metrics=$BBB_BACKUP_METRICS
work=$(mktemp -d)
failures=()

# The textfile (node exporter's textfile collector: *.prom files, written to a temporary name and renamed, so
# that it never reads half a file). SUCCESS is 1 or 0; the success time is now, or else the one recorded before.
write_metrics() {
  local success=$1 last dir tmp
  dir=$(dirname "$metrics")
  mkdir -p "$dir"
  chmod a+rx "$dir"
  if [ "$success" = 1 ]; then
    last=$(date +%s)
  else
    last=$(sed -n 's/^bbb_backup_last_success_timestamp_seconds \([0-9]*\)$/\1/p' "$metrics" 2>/dev/null || true)
  fi
  tmp=$(mktemp "$dir/.bbb_backup.XXXXXX")
  {
    if [ -n "$last" ]; then
      echo "# HELP bbb_backup_last_success_timestamp_seconds Time of the last backup run that fully succeeded (every part, retention, check)."
      echo "# TYPE bbb_backup_last_success_timestamp_seconds gauge"
      echo "bbb_backup_last_success_timestamp_seconds $last"
    fi
    echo "# HELP bbb_backup_last_run_success Whether the last backup run fully succeeded (1) or not (0)."
    echo "# TYPE bbb_backup_last_run_success gauge"
    echo "bbb_backup_last_run_success $success"
  } >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$metrics"
}
finish() {
  local rc=$?
  rm -rf "$work"
  if [ "$rc" -eq 0 ]; then write_metrics 1; else write_metrics 0; fi
  exit "$rc"
}
trap finish EXIT

# backup PART [NAME PRODUCER...]: a snapshot of what PRODUCER writes, as the file /NAME, or, without them, of
# the directory that PART names. A producer that fails after writing something still leaves a snapshot behind
# (restic before 0.17 stores what it read; docs/backups.md): that snapshot is forgotten again, by the id in
# backup's JSON summary (internal/ui/json/backup.go, v0.12.1 L446-460).
backup() {
  local part=$1 rc producer_rc=0 id
  shift
  set +e
  if [ "$#" -gt 0 ]; then
    local name=$1
    shift
    "$@" | restic backup --json --stdin --stdin-filename "$name" --host "$role" --tag bbb-backup >"$work/summary"
    local statuses=("${PIPESTATUS[@]}")
    producer_rc=${statuses[0]} rc=${statuses[1]}
  else
    restic backup --json --host "$role" --tag bbb-backup "${part#files:}" >"$work/summary"
    rc=$?
  fi
  set -e
  id=$(sed -n 's/^{"message_type":"summary".*"snapshot_id":"\([0-9a-f]*\)".*/\1/p' "$work/summary")
  if [ "$producer_rc" -ne 0 ] || [ "$rc" -ne 0 ]; then
    if [ -n "$id" ]; then
      restic forget "$id" >/dev/null || echo "bbb-backup: cannot forget the incomplete snapshot $id of $part: forget it by hand (restic forget $id)" >&2
    fi
    if [ "$producer_rc" -ne 0 ]; then
      failures+=("$part: the dump failed (exit $producer_rc; its incomplete snapshot was forgotten)")
    else
      failures+=("$part: restic backup failed (exit $rc)")
    fi
    return 1
  fi
  echo "bbb-backup: $part: snapshot $id"
}

# redis_save CONTAINER: a BGSAVE (scheduled after an AOF rewrite that runs), waited for: done once no save runs
# and the last one (rdb_last_save_time) started no earlier than the request (redis/redis-doc
# docs/management/persistence.md, "Backing up Redis data": dump.rdb is renamed into place whole, so it can be
# copied while Redis runs).
redis_save() {
  local container=$1 asked reply info deadline=$((SECONDS + 600))
  asked=$(date +%s)
  reply=$(docker exec "$container" redis-cli BGSAVE SCHEDULE 2>&1) || {
    echo "bbb-backup: redis $container: BGSAVE: $reply" >&2
    return 1
  }
  case $reply in
    *"Background saving started"* | *"Background saving scheduled"* | *"already in progress"*) ;;
    *)
      echo "bbb-backup: redis $container: BGSAVE answered: $reply" >&2
      return 1
      ;;
  esac
  while :; do
    info=$(docker exec "$container" redis-cli INFO persistence | tr -d '\r') || return 1
    if [[ $info == *$'\nrdb_bgsave_in_progress:0'* ]]; then
      if [[ $info == *$'\nrdb_last_bgsave_status:err'* ]]; then
        echo "bbb-backup: redis $container: BGSAVE failed (rdb_last_bgsave_status:err; see: docker logs $container)" >&2
        return 1
      fi
      [ "$(sed -n 's/^rdb_last_save_time://p' <<<"$info")" -lt "$asked" ] || return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "bbb-backup: redis $container: BGSAVE has not finished after 600s" >&2
      return 1
    fi
    sleep 1
  done
}

# A run killed midway (reboot, OOM) leaves its lock in the repository, and restic (0.12.1, 0.14.0) refuses the
# exclusive lock of forget --prune and check while any other lock is there, stale or not
# (internal/restic/lock.go checkForOtherLocks): every later run would fail. restic unlock removes the stale ones
# only (RemoveStaleLocks: made on this host by a process that is gone, or not refreshed for 30 minutes); never
# --remove-all, which would also take the lock of a restore or an operator's restic running now.
restic unlock || echo "bbb-backup: restic unlock failed; a stale lock may stop the retention and the check" >&2

read -r -a parts <<<"$BBB_BACKUP_PARTS"
for part in "${parts[@]}"; do
  IFS=: read -r kind first second <<<"$part"
  case $kind in
    postgres) backup "$part" "$second.pgdump" docker exec "$first" pg_dump -U postgres -Fc "$second" || true ;;
    redis)
      if redis_save "$first"; then
        backup "$part" "$first.rdb" cat "$second/dump.rdb" || true
      else
        failures+=("$part: BGSAVE failed")
      fi
      ;;
    files) backup "$part" || true ;;
    *) failures+=("$part: unknown kind $kind") ;;
  esac
done

# Retention per part (forget groups by host and paths); prune only when forget removed a snapshot.
if ! restic forget --host "$role" --tag bbb-backup --keep-daily "$BBB_BACKUP_KEEP_DAILY" \
  --keep-weekly "$BBB_BACKUP_KEEP_WEEKLY" --keep-monthly "$BBB_BACKUP_KEEP_MONTHLY" --prune; then
  failures+=("retention: restic forget --prune failed")
fi
restic check || failures+=("check: restic check failed")

if [ "${#failures[@]}" -gt 0 ]; then
  printf 'bbb-backup: failed: %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "bbb-backup: backed up ${parts[*]} to $RESTIC_REPOSITORY"
