#!/usr/bin/env bash
# bbb-restore: restores this host's data from its restic repository (what bbb-backup stored). Installed as
# /usr/local/sbin/bbb-restore by bbb's backup-setup step (Pulumi; scripts/remote/backup-restore.sh).
#   bbb-restore --list                      the snapshots of this host
#   bbb-restore [--snapshot latest] [--yes] every part from its latest snapshot, but Redis
#   bbb-restore --snapshot ID [--yes]       the one part that snapshot ID holds
#   --with-redis                            Redis too (Scalelite's): only when its data was lost
# Redis is left alone unless --with-redis: in Scalelite (v1.8.5, app/models/server.rb, meeting.rb, tenant.rb:
# ApplicationRedisRecord) it holds the servers with their secrets and the running meetings' server map, which a
# restore rolls back to the snapshot's time: joins to meetings created since fail, servers added since vanish,
# servers whose secret was rotated since go offline.
# Without --yes it only says what it would restore. With it, it stops the containers that write to the data
# (BBB_BACKUP_APPS), restores, and starts them again, also when the restore fails. Parts: a PostgreSQL database
# replaced by its dump (pg_restore --clean --if-exists --single-transaction: all or nothing); Redis, whose
# append-only file is set aside and rebuilt from the restored RDB; a directory, restored beside it and swapped in
# (the old one kept as DIR.before-restore). Settings as bbb-backup's: the environment, else /etc/default/bbb-backup
# (gone once backups are turned off: then the environment, as the usage says).
set -euo pipefail

settings=/etc/default/bbb-backup
needs="RESTIC_REPOSITORY RESTIC_PASSWORD_FILE BBB_BACKUP_ROLE BBB_BACKUP_PARTS BBB_BACKUP_APPS"
usage() {
  echo "usage: bbb-restore [--list] [--snapshot ID|latest] [--with-redis] [--yes]" >&2
  echo "--with-redis: Redis too, rolling Scalelite's servers and running meetings back to the snapshot (only after losing its data)" >&2
  echo "settings: $settings, else the environment: $needs, and the repository's credentials (OS_* for Swift)" >&2
  exit 2
}
list=false snapshot=latest yes=false with_redis=false
while [ "$#" -gt 0 ]; do
  case $1 in
    --list) list=true ;;
    --snapshot)
      [ "$#" -ge 2 ] || usage
      snapshot=$2
      shift
      ;;
    --yes) yes=true ;;
    --with-redis) with_redis=true ;;
    *) usage ;;
  esac
  shift
done
[[ $snapshot =~ ^(latest|[0-9a-f]{8,64})$ ]] || { echo "bbb-restore: '$snapshot' is not a snapshot id" >&2; exit 2; }

if [ -z "${RESTIC_REPOSITORY:-}" ]; then
  [ -r "$settings" ] || { echo "bbb-restore: cannot read $settings (run as root; without it, give the settings in the environment: bbb-restore --help)" >&2; exit 1; }
  # KEY=VALUE lines, as systemd reads them (the setup step writes no quotes), exported without a command line.
  while IFS= read -r line; do
    case $line in '' | '#'*) continue ;; esac
    export "${line%%=*}=${line#*=}"
  done <"$settings"
fi
for setting in $needs; do
  [ -n "${!setting:-}" ] || { echo "bbb-restore: $setting is not set (see $settings)" >&2; exit 1; }
done
role=$BBB_BACKUP_ROLE
die() {
  echo "bbb-restore: $*" >&2
  exit 1
}

if [ "$list" = true ]; then
  restic snapshots --host "$role" --tag bbb-backup
  exit 0
fi

# The file or directory a part's snapshots hold (as bbb-backup names them).
part_path() {
  local kind first second
  IFS=: read -r kind first second <<<"$1"
  case $kind in
    postgres) echo "/$second.pgdump" ;;
    redis) echo "/$first.rdb" ;;
    files) echo "$first" ;;
  esac
}
# A snapshot in restic's JSON (snapshots --json, a list): FIELD's value (id, time) or its paths.
field() { grep -o "\"$1\":\"[^\"]*\"" | head -n1 | cut -d'"' -f4; }
paths() { grep -o '"paths":\[[^]]*\]' | head -n1; }

read -r -a parts <<<"$BBB_BACKUP_PARTS"
chosen=() ids=() times=() skipped=()
if [ "$snapshot" = latest ]; then
  for part in "${parts[@]}"; do
    if [[ $part == redis:* ]] && [ "$with_redis" != true ]; then
      skipped+=("$part")
      continue
    fi
    json=$(restic snapshots --json --host "$role" --tag bbb-backup --path "$(part_path "$part")" --latest 1) ||
      die "cannot list the snapshots of $part"
    id=$(field id <<<"$json")
    [ -n "$id" ] || die "there is no snapshot of $part (host $role) in $RESTIC_REPOSITORY; nothing was changed"
    chosen+=("$part") ids+=("$id") times+=("$(field time <<<"$json")")
  done
else
  json=$(restic snapshots --json "$snapshot") || die "cannot read snapshot $snapshot"
  id=$(field id <<<"$json")
  [ -n "$id" ] || die "there is no snapshot $snapshot in $RESTIC_REPOSITORY; nothing was changed"
  for part in "${parts[@]}"; do
    [ "$(paths <<<"$json")" != "\"paths\":[\"$(part_path "$part")\"]" ] || chosen+=("$part")
  done
  [ "${#chosen[@]}" -eq 1 ] || die "snapshot $snapshot ($(paths <<<"$json")) holds none of this host's parts (${parts[*]}); nothing was changed"
  [[ ${chosen[0]} != redis:* ]] || [ "$with_redis" = true ] ||
    die "snapshot $snapshot holds Redis (${chosen[0]}), restored only with --with-redis (see bbb-restore --help); nothing was changed"
  ids+=("$id") times+=("$(field time <<<"$json")")
fi

[ "${#chosen[@]}" -gt 0 ] || die "nothing to restore but Redis (${skipped[*]}), restored only with --with-redis; nothing was changed"
for part in "${skipped[@]}"; do
  echo "bbb-restore: not restoring $part: Redis holds Scalelite's servers and its running meetings, which a restore would roll back (add --with-redis when its data was lost)"
done
for part in "${chosen[@]}"; do
  [[ $part == redis:* ]] || continue
  echo "bbb-restore: warning: restoring $part rolls Scalelite's servers and running meetings back to the snapshot's time: joins to meetings created since then fail, servers added since vanish (until pulumi up registers them again), servers whose secret was rotated since go offline" >&2
done
if [ "$yes" != true ]; then
  for i in "${!chosen[@]}"; do echo "bbb-restore: would restore ${chosen[$i]} from snapshot ${ids[$i]:0:8} (${times[$i]})"; done
  echo "bbb-restore: would stop $BBB_BACKUP_APPS meanwhile; nothing was changed (add --yes to restore)"
  exit 0
fi

# Whatever happens, what was stopped runs again.
stopped=() scratch="" work=$(umask 077 && mktemp -d)
restart() {
  local rc=$? i container
  rm -rf "$work"
  [ -z "$scratch" ] || docker rm -f "$scratch" >/dev/null 2>&1 || true
  # The last stopped first: the databases before the applications.
  for ((i = ${#stopped[@]} - 1; i >= 0; i--)); do
    container=${stopped[$i]}
    docker start "$container" >/dev/null || { echo "bbb-restore: cannot start $container again (see: docker logs $container)" >&2; rc=1; }
  done
  [ "$rc" -eq 0 ] || echo "bbb-restore: the restore failed; what was stopped has been started again" >&2
  exit "$rc"
}
trap restart EXIT
for app in $BBB_BACKUP_APPS; do
  [ "$(docker inspect -f '{{.State.Running}}' "$app" 2>/dev/null)" = true ] || continue
  docker stop "$app" >/dev/null || die "cannot stop $app"
  stopped+=("$app")
done

# redis_info CONTAINER FIELD: a field of Redis's INFO persistence.
redis_info() {
  docker exec "$1" redis-cli INFO persistence | tr -d '\r' | sed -n "s/^$2://p"
}
# Waits (up to 600 s) until CONTAINER's INFO persistence has FIELD:VALUE for each FIELD VALUE pair.
redis_wait() {
  local container=$1 deadline=$((SECONDS + 600)) info
  shift
  while :; do
    info=$(docker exec "$container" redis-cli INFO persistence 2>/dev/null | tr -d '\r') || info=""
    local pair=("$@") ok=true i
    for ((i = 0; i < ${#pair[@]}; i += 2)); do
      grep -qx "${pair[$i]}:${pair[$((i + 1))]}" <<<"$info" || ok=false
    done
    [ "$ok" = false ] || return 0
    [ "$SECONDS" -lt "$deadline" ] || die "redis $container: no ${*} after 600s (see: docker logs $container)"
    sleep 1
  done
}

# Redis with its append-only file on rebuilds its data from that file and ignores dump.rdb (redis/redis-doc
# docs/management/persistence.md, "Interactions between AOF and RDB persistence" and "How I can switch to AOF,
# if I'm currently using dump.rdb snapshots?"): the AOF is set aside, Redis started once without it on the
# restored RDB, the AOF switched on (CONFIG SET appendonly yes writes it from memory), and the container started
# again as its setup made it.
restore_redis() {
  local container=$1 dir=$2 id=$3 image aside
  image=$(docker inspect -f '{{.Config.Image}}' "$container") || die "redis $container: no such container"
  restic dump "$id" "/$container.rdb" >"$dir/dump.rdb.restoring" || die "redis $container: restic dump failed"
  if [ "$(docker inspect -f '{{.State.Running}}' "$container")" = true ]; then
    docker stop "$container" >/dev/null || die "cannot stop $container"
    stopped+=("$container")
  fi
  aside=$dir/before-restore
  rm -rf "$aside"
  mkdir "$aside"
  for f in appendonlydir appendonly.aof dump.rdb; do
    [ ! -e "$dir/$f" ] || mv "$dir/$f" "$aside/"
  done
  mv "$dir/dump.rdb.restoring" "$dir/dump.rdb"
  scratch=$container-restore
  docker rm -f "$scratch" >/dev/null 2>&1 || true
  docker run -d --name "$scratch" --mount "type=bind,source=$dir,target=/data" "$image" redis-server --appendonly no >/dev/null ||
    die "redis $container: cannot start $image on the restored RDB"
  redis_wait "$scratch" loading 0
  [ "$(docker exec "$scratch" redis-cli CONFIG SET appendonly yes | tr -d '\r')" = OK ] || die "redis $container: CONFIG SET appendonly yes failed"
  redis_wait "$scratch" aof_enabled 1 aof_rewrite_in_progress 0 aof_rewrite_scheduled 0 aof_last_bgrewrite_status ok
  docker stop "$scratch" >/dev/null || die "cannot stop $scratch"
  docker rm "$scratch" >/dev/null || die "cannot remove $scratch"
  scratch=""
  echo "bbb-restore: redis $container: the files it had are in ${aside}"
}

# A directory: restored beside it (same filesystem), then swapped in; the old one is kept until the next restore.
restore_files() {
  local dir=$1 id=$2 staging=$1.restoring
  rm -rf "$staging" "$dir.before-restore"
  restic restore "$id" --target "$staging" >/dev/null || die "files $dir: restic restore failed"
  [ -d "$staging$dir" ] || die "files $dir: snapshot $id does not hold $dir"
  [ ! -e "$dir" ] || mv "$dir" "$dir.before-restore"
  mv "$staging$dir" "$dir"
  rm -rf "$staging"
  echo "bbb-restore: files $dir: the old content is in $dir.before-restore"
}

for i in "${!chosen[@]}"; do
  part=${chosen[$i]} id=${ids[$i]}
  IFS=: read -r kind first second <<<"$part"
  case $kind in
    postgres)
      # The whole dump first: a restic killed mid-pipe (SIGPIPE, when pg_restore fails) would leave its lock.
      restic dump "$id" "/$second.pgdump" >"$work/dump" || die "$part: restic dump failed (above); nothing was changed"
      docker exec -i "$first" pg_restore -U postgres --clean --if-exists --single-transaction -d "$second" <"$work/dump" ||
        die "$part: pg_restore failed (above); the database is as it was (one transaction)"
      rm -f "$work/dump"
      ;;
    redis) restore_redis "$first" "$second" "$id" ;;
    files) restore_files "$first" "$id" ;;
  esac
  echo "bbb-restore: restored $part from snapshot ${id:0:8} (${times[$i]})"
done
