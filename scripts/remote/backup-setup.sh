#!/usr/bin/env bash
# A data host (Scalelite, Greenlight, or a BBB server running Greenlight: ROLE bbb): nightly encrypted restic
# backups of its databases and files to a restic repository (a Swift container), and what restores them
# (docs/backups.md). Installs restic, the programs /usr/local/sbin/bbb-backup and bbb-restore (their text is
# given: scripts/remote/backup-run.sh and backup-restore.sh), their settings in /etc/default/bbb-backup and
# the repository password in /etc/bbb-deploy/restic-password (both root-only: the only places on disk that
# hold the secrets), and bbb-backup.service run by bbb-backup.timer daily at BACKUP_TIME (UTC). Makes the
# repository when there is none; never when one is there that the password does not open.
#   ENABLED false (backups turned off on this host, which stays: an update of the step, never its deletion, so that
#     replacing or deleting a host needs nothing of it): the timer disabled and stopped, a backup running now stopped
#     (restic stores no snapshot of it; left running, it would need the password file removed below, and write
#     bbb_backup.prom again after it is gone), the units, bbb-backup, the settings and the password (the only files
#     that hold the secrets), the node exporter's bbb_backup.prom (else it serves a stale success time) and restic's
#     cache gone. The backups stay in REPOSITORY (the stack keeps the container), and bbb-restore stays: it restores
#     from them given the settings in its environment (its usage says which). The data is not touched. Idempotent,
#     and nothing to do on a host that never had backups; needs no input but REPOSITORY (named in what it says), nor
#     the network.
# Inputs: ENABLED (true, or false: the above; default true) ROLE (scalelite|greenlight|bbb: the snapshots' host name, and which containers a restore stops)
#         PARTS (what to back up, one a line: "postgres CONTAINER DATABASE", "redis CONTAINER DATA_DIR" or
#         "files DIR"; directories are the host's) REPOSITORY (swift:CONTAINER:/PREFIX, or a local path)
#         OS_AUTH_URL OS_REGION_NAME (may be empty) APP_CRED_ID APP_CRED_SECRET (an application credential
#         that may use the Swift container) RESTIC_PASSWORD BACKUP_TIME (HH:MM, UTC) KEEP_DAILY KEEP_WEEKLY
#         KEEP_MONTHLY (snapshots restic keeps of each part) BACKUP_PROGRAM RESTORE_PROGRAM (the programs' text).
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

[ -z "${1:-}" ] || fail "unknown action $1 (the step takes none)"
case ${ENABLED:-true} in true | false) ;; *) fail "ENABLED must be true or false, not '$ENABLED'" ;; esac
if [ "${ENABLED:-true}" = false ]; then
  : "${REPOSITORY:?}"
  unit_off disable bbb-backup.timer
  unit_off stop bbb-backup.timer
  unit_off stop bbb-backup.service
  unit_files=("$ROOT/etc/systemd/system/bbb-backup.timer" "$ROOT/etc/systemd/system/bbb-backup.service")
  if [ -e "${unit_files[0]}" ] || [ -e "${unit_files[1]}" ]; then
    rm -f "${unit_files[@]}"
    systemctl daemon-reload || fail "systemctl daemon-reload failed"
  fi
  rm -f "$ROOT/etc/default/bbb-backup" "$ROOT/etc/bbb-deploy/restic-password" "$ROOT/usr/local/sbin/bbb-backup" \
    "$ROOT$TEXTFILE_DIR/bbb_backup.prom"
  rm -rf "$ROOT/var/cache/restic"
  say "backups stopped; the backups made so far remain in $REPOSITORY (restore: bbb-restore, see bbb-restore --help)"
  exit 0
fi

for input in ROLE PARTS REPOSITORY OS_AUTH_URL APP_CRED_ID APP_CRED_SECRET RESTIC_PASSWORD BACKUP_TIME KEEP_DAILY \
  KEEP_WEEKLY KEEP_MONTHLY BACKUP_PROGRAM RESTORE_PROGRAM; do
  [ -n "${!input:-}" ] || fail "input $input is missing"
done
: "${OS_REGION_NAME?}"
# What a restore stops while it writes (the containers that write to the databases; bbb: Greenlight's compose
# project, bbb-install.sh's install_greenlight_v3 with Greenlight's docker-compose.yml, container greenlight-v3).
case $ROLE in
  scalelite) apps="scalelite-api scalelite-poller scalelite-recording-importer" ;;
  greenlight | bbb) apps="greenlight-v3" ;;
  *) fail "ROLE must be scalelite, greenlight or bbb, not '$ROLE'" ;;
esac
# Written unquoted into a systemd EnvironmentFile (and read back by the programs line by line): no white space,
# quotes, backslashes or dollars, which systemd would interpret.
[[ $REPOSITORY =~ ^(swift:[A-Za-z0-9._-]+:/[A-Za-z0-9._/-]*|/[A-Za-z0-9._/-]+)$ ]] ||
  fail "REPOSITORY '$REPOSITORY' is neither swift:CONTAINER:/PREFIX nor an absolute path"
[[ $OS_AUTH_URL =~ ^https?://[A-Za-z0-9._:/-]+$ ]] || fail "OS_AUTH_URL '$OS_AUTH_URL' is not an http(s) URL"
[[ $OS_REGION_NAME =~ ^[A-Za-z0-9._-]*$ ]] || fail "OS_REGION_NAME '$OS_REGION_NAME' is not a region name"
[[ $APP_CRED_ID =~ ^[A-Za-z0-9_-]+$ ]] || fail "APP_CRED_ID '$APP_CRED_ID' is not an application credential id"
[[ $APP_CRED_SECRET =~ ^[A-Za-z0-9._~+/=-]+$ ]] ||
  fail "APP_CRED_SECRET must be letters, digits and ._~+/=- only (it goes unquoted into a systemd EnvironmentFile)"
# restic trims white space around a password it reads from a file (cmd/restic/global.go, v0.12.1 L317).
[[ $RESTIC_PASSWORD =~ ^[[:graph:]]+$ ]] || fail "RESTIC_PASSWORD must not be empty or hold white space or control characters"
[[ $BACKUP_TIME =~ ^([01][0-9]|2[0-3]):[0-5][0-9]$ ]] || fail "BACKUP_TIME '$BACKUP_TIME' is not HH:MM (UTC)"
for input in KEEP_DAILY KEEP_WEEKLY KEEP_MONTHLY; do
  [[ ${!input} =~ ^[0-9]{1,4}$ ]] || fail "$input '${!input}' is not a number of snapshots"
done
[ "$KEEP_DAILY" -ge 1 ] || fail "KEEP_DAILY must be at least 1 (else restic forget would keep no night's backup)"
for input in BACKUP_PROGRAM RESTORE_PROGRAM; do
  [[ ${!input} == '#!'* ]] || fail "$input is not a program (it does not start with #!)"
done
secrets=("$APP_CRED_SECRET" "$RESTIC_PASSWORD")

# A directory of PARTS: it must exist (bbb: /root/greenlight-v3 is a link onto the data volume, bbb-storage.sh;
# restic 0.14 stores the link on the way as a directory, tried here; 0.12 not tried).
host_dir() {
  [ -d "$ROOT$1" ] || fail "$1 does not exist on this host (PARTS); has the host's setup step run?"
}
# The parts, as the programs read them from the settings: space-separated, each KIND:NAME[:VALUE].
entries=() shown=() containers=()
while read -r kind first second extra; do
  [ -n "$kind" ] || continue
  [ -z "${extra:-}" ] || fail "PARTS line '$kind $first $second $extra' has more than three words"
  shown+=("$kind ${first:-}${second:+ $second}")
  case $kind in
    postgres | redis)
      [[ ${first:-} =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || fail "PARTS line '$kind ${first:-}': '${first:-}' is not a container name"
      containers+=("$first")
      ;;&
    postgres)
      [[ ${second:-} =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || fail "PARTS line 'postgres $first ${second:-}': '${second:-}' is not a database name"
      entries+=("postgres:$first:$second")
      ;;
    redis)
      [[ ${second:-} =~ ^(/[A-Za-z0-9._-]+)+$ ]] || fail "PARTS line 'redis $first ${second:-}': '${second:-}' is not an absolute directory"
      host_dir "$second"
      entries+=("redis:$first:$ROOT$second")
      ;;
    files)
      if ! [[ ${first:-} =~ ^(/[A-Za-z0-9._-]+)+$ ]] || [ -n "${second:-}" ]; then
        fail "PARTS line 'files ${first:-} ${second:-}' is not 'files /DIRECTORY'"
      fi
      host_dir "$first"
      entries+=("files:$ROOT$first")
      ;;
    *) fail "PARTS line '$kind ...': the kind must be postgres, redis or files" ;;
  esac
done <<<"$PARTS"
[ "${#entries[@]}" -gt 0 ] || fail "PARTS names nothing to back up"
for container in "${containers[@]}"; do
  docker inspect -f '{{.State.Running}}' "$container" >/dev/null 2>&1 ||
    fail "container $container (PARTS) does not exist on this host (see: docker ps -a)"
done

say "installing restic"
apt_install restic

# The repository. restic tells no repository from a wrong password or an unreachable store by its exit code
# (1 for all, up to 0.16), only by its message: "unable to open config file: <the store's error>\nIs there a
# repository at the following location?" (cmd/restic/global.go, v0.12.1 L748-756), where the error is "not found"
# only when the store answered that there is no config: a local stat's "no such file or directory", Swift's 404
# "Object Not Found" (ncw/swift's ObjectNotFound). A wrong password is "wrong password or no key found"
# (internal/repository/key.go, L21). Only the first is initialised. Opening a Swift repository creates the
# container when it is missing (internal/backend/swift/swift.go, v0.12.1 L84-97): the stack makes it, so a missing
# one means a wrong name or project, which this cannot tell from a new repository.
export OS_AUTH_URL OS_APPLICATION_CREDENTIAL_ID=$APP_CRED_ID OS_APPLICATION_CREDENTIAL_SECRET=$APP_CRED_SECRET \
  RESTIC_REPOSITORY=$REPOSITORY RESTIC_PASSWORD RESTIC_CACHE_DIR=$ROOT/var/cache/restic
[ -z "$OS_REGION_NAME" ] || export OS_REGION_NAME
mkdir -p "$RESTIC_CACHE_DIR"
chmod 0700 "$RESTIC_CACHE_DIR"
if ! out=$(restic cat config 2>&1 >/dev/null); then
  out=$(mask "${secrets[@]}" <<<"$out")
  if [[ $out == *"Is there a repository at the following location?"* ]] &&
    [[ $out == *"no such file or directory"* || $out == *"Object Not Found"* ]]; then
    # restic 0.14 and later make a repository of format 2 unless told otherwise, which 0.12 cannot read
    # (cmd/restic/cmd_init.go, v0.14.0 L47, L54-55; internal/restic/config.go L22-26); 0.12 knows no such flag.
    version=()
    if [[ $(restic init --help 2>&1) == *--repository-version* ]]; then version=(--repository-version 1); fi
    if ! out=$(restic init "${version[@]}" 2>&1); then
      mask "${secrets[@]}" <<<"$out" >&2
      fail "restic init failed for $REPOSITORY (output above)"
    fi
    say "created the restic repository $REPOSITORY"
  elif [[ $out == *"wrong password or no key found"* ]]; then
    fail "the restic repository $REPOSITORY exists but RESTIC_PASSWORD does not open it; nothing was changed" \
      "(a new password must first be added to the repository with restic key add, using the old one)"
  else
    printf '%s\n' "$out" >&2
    fail "cannot open the restic repository $REPOSITORY (output above); nothing was changed"
  fi
fi

# The settings, read by bbb-backup.service (EnvironmentFile) and by the programs.
settings=$ROOT/etc/default/bbb-backup
password_file=$ROOT/etc/bbb-deploy/restic-password
mkdir -p "$ROOT/etc/default" "$ROOT/etc/bbb-deploy" "$ROOT/usr/local/sbin" "$ROOT/etc/systemd/system"
changed=()
write_if_changed "$password_file" 0600 root:root <<<"$RESTIC_PASSWORD" && changed+=(/etc/bbb-deploy/restic-password)
write_if_changed "$settings" 0600 root:root <<SETTINGS && changed+=(/etc/default/bbb-backup)
# Managed by bbb (Pulumi, backup-setup step); changes here are overwritten.
OS_AUTH_URL=$OS_AUTH_URL
OS_APPLICATION_CREDENTIAL_ID=$APP_CRED_ID
OS_APPLICATION_CREDENTIAL_SECRET=$APP_CRED_SECRET
${OS_REGION_NAME:+OS_REGION_NAME=$OS_REGION_NAME
}RESTIC_REPOSITORY=$REPOSITORY
RESTIC_PASSWORD_FILE=$password_file
RESTIC_CACHE_DIR=$RESTIC_CACHE_DIR
BBB_BACKUP_ROLE=$ROLE
BBB_BACKUP_PARTS=${entries[*]}
BBB_BACKUP_APPS=$apps
BBB_BACKUP_KEEP_DAILY=$KEEP_DAILY
BBB_BACKUP_KEEP_WEEKLY=$KEEP_WEEKLY
BBB_BACKUP_KEEP_MONTHLY=$KEEP_MONTHLY
BBB_BACKUP_METRICS=$ROOT/var/lib/prometheus/node-exporter/bbb_backup.prom
SETTINGS
write_if_changed "$ROOT/usr/local/sbin/bbb-backup" 0755 root:root <<<"$BACKUP_PROGRAM" && changed+=(/usr/local/sbin/bbb-backup)
write_if_changed "$ROOT/usr/local/sbin/bbb-restore" 0755 root:root <<<"$RESTORE_PROGRAM" && changed+=(/usr/local/sbin/bbb-restore)

# The nightly run: one unit, so backup, forget and check never contend for restic's lock, and a run still
# going is not started again. Persistent: a night missed while the host was off runs at boot.
units=false
write_if_changed "$ROOT/etc/systemd/system/bbb-backup.service" 0644 root:root <<UNIT && units=true
# Managed by bbb (Pulumi, backup-setup step); changes here are overwritten.
[Unit]
Description=Backup of this host's data to restic (bbb-backup)
Wants=network-online.target
After=network-online.target docker.service

[Service]
Type=oneshot
EnvironmentFile=$settings
ExecStart=$ROOT/usr/local/sbin/bbb-backup
Nice=10
IOSchedulingClass=idle
UNIT
write_if_changed "$ROOT/etc/systemd/system/bbb-backup.timer" 0644 root:root <<UNIT && units=true
# Managed by bbb (Pulumi, backup-setup step); changes here are overwritten.
[Unit]
Description=Nightly backup of this host's data (bbb-backup)

[Timer]
OnCalendar=*-*-* $BACKUP_TIME:00 UTC
RandomizedDelaySec=10min
Persistent=true

[Install]
WantedBy=timers.target
UNIT
if [ "$units" = true ]; then
  changed+=(bbb-backup.service/.timer)
  systemctl daemon-reload || fail "systemctl daemon-reload failed"
fi
systemctl enable --quiet --now bbb-backup.timer || fail "cannot enable bbb-backup.timer (see: systemctl status bbb-backup.timer)"
if [ "${#changed[@]}" -gt 0 ]; then say "wrote ${changed[*]}"; fi
say "backups of $(IFS=,; echo "${shown[*]}") to $REPOSITORY daily at $BACKUP_TIME UTC (run one now: systemctl start bbb-backup.service)"
