#!/usr/bin/env bash
# Scalelite host: Scalelite's docker images (api, poller, recording-importer, nginx) with PostgreSQL and
# Redis, all on the docker network "scalelite", their data on the OpenStack data volume at
# /var/lib/bbb-data (kept when the VM is replaced), TLS by a Let's Encrypt certificate (certbot HTTP-01,
# scalelite-nginx stopped around renewals) mounted into scalelite-nginx. Scalelite answers the stack's API
# name API_FQDN (its URL_HOST): its API accepts requests for that one host name (config.hosts =
# URL_HOST in config/environments/production.rb, v1.8.5), so a server of our own in scalelite-nginx passes
# requests for the host's own name FQDN on as API_FQDN (consumers set up with it keep working). The settings
# (and every secret) live only in /etc/default/scalelite (and the database password for postgres in
# /etc/default/scalelite-postgres); a changed file or image replaces the containers that use it.
# With RECORDINGS true, the recordings directory is exported over NFS to NFS_CLIENTS (the BBB servers, which
# mount it at /mnt/scalelite-recordings, see bbb-recordings.sh); with RECORDINGS false nothing is exported and
# Scalelite records no meeting (RECORDING_DISABLED, OVERRIDE_CREATE_PARAMS=record=false).
# Ends when https://FQDN/health_check answers "success" and https://API_FQDN/bigbluebutton/api SUCCESS.
# Inputs: FQDN API_FQDN IPV4 IPV6 (the public addresses API_FQDN must resolve to; IPV6 empty when none)
#         RESOLVE_TIMEOUT_SECONDS EMAIL VOICE_BRIDGE_LEN (digits of the conference numbers Scalelite gives the
#         meetings, replacing the callers' voiceBridge: the BBB servers' dial-in PIN length)
#         SCALELITE_VERSION (image tag, e.g. v1.8.5) VOLUME_ID (the data volume's id) VOLUME_SIZE (its GB)
#         SECRET_KEY_BASE (hex) DB_PASSWORD (alphanumeric) LOADBALANCER_SECRET
#         LOADBALANCER_SECRETS (colon-separated, includes LOADBALANCER_SECRET)
#         FORCE_REMOVE (true|false, kept for the node-removal step) POSTGRES_IMAGE REDIS_IMAGE
#         HEALTH_WAIT_SECONDS RECORDINGS (true|false) NFS_CLIENTS (space-separated CIDRs that may mount the
#         recordings share; may be empty when RECORDINGS is false) RETENTION_DAYS (published recordings are
#         deleted through Scalelite's API after that many days; 0: no such job) PRIVACY (strict|standard: under
#         strict, no request and no client address is logged: Rails at warn, nginx's access logs off).
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${FQDN:?}" "${API_FQDN:?}" "${IPV4:?}" "${IPV6?}" "${RESOLVE_TIMEOUT_SECONDS:?}" "${EMAIL:?}" "${SCALELITE_VERSION:?}" "${VOLUME_ID:?}" "${VOLUME_SIZE:?}" "${SECRET_KEY_BASE:?}" "${DB_PASSWORD:?}"
: "${LOADBALANCER_SECRET:?}" "${LOADBALANCER_SECRETS:?}" "${FORCE_REMOVE:?}" "${POSTGRES_IMAGE:?}"
: "${VOICE_BRIDGE_LEN:?}" "${REDIS_IMAGE:?}" "${HEALTH_WAIT_SECONDS:?}" "${RECORDINGS:?}" "${NFS_CLIENTS?}" "${RETENTION_DAYS:?}"
: "${PRIVACY:?}"
[[ $PRIVACY =~ ^(strict|standard)$ ]] || fail "PRIVACY must be strict or standard, not '$PRIVACY'"
[[ $RETENTION_DAYS =~ ^[0-9]+$ ]] || fail "RETENTION_DAYS must be a number of days, not '$RETENTION_DAYS'"
[[ $VOICE_BRIDGE_LEN =~ ^([5-9]|1[01])$ ]] || fail "VOICE_BRIDGE_LEN must be 5 to 11 digits (the dial-in PIN length), not '$VOICE_BRIDGE_LEN'"

# Checked before anything runs; the messages never show a secret.
[[ $FQDN =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ ]] || fail "FQDN '$FQDN' is not a lower-case host name"
if ! [[ $API_FQDN =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ ]] || [ "$API_FQDN" = "$FQDN" ]; then
  fail "API_FQDN '$API_FQDN' is not a lower-case host name other than FQDN"
fi
[[ $EMAIL =~ ^[^[:space:]@]+@[^[:space:]@]+$ ]] || fail "EMAIL '$EMAIL' is not an e-mail address"
[[ $SCALELITE_VERSION =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || fail "SCALELITE_VERSION '$SCALELITE_VERSION' is not an image tag"
[[ $VOLUME_ID =~ ^[A-Za-z0-9-]{20,}$ ]] || fail "VOLUME_ID '$VOLUME_ID' is not an OpenStack volume id"
[[ $POSTGRES_IMAGE =~ ^[^[:space:]]+$ ]] || fail "POSTGRES_IMAGE '$POSTGRES_IMAGE' is not an image name"
[[ $REDIS_IMAGE =~ ^[^[:space:]]+$ ]] || fail "REDIS_IMAGE '$REDIS_IMAGE' is not an image name"
[[ $FORCE_REMOVE =~ ^(true|false)$ ]] || fail "FORCE_REMOVE must be true or false, not '$FORCE_REMOVE'"
[[ $HEALTH_WAIT_SECONDS =~ ^[0-9]+$ ]] || fail "HEALTH_WAIT_SECONDS must be a number of seconds, not '$HEALTH_WAIT_SECONDS'"
[[ $RECORDINGS =~ ^(true|false)$ ]] || fail "RECORDINGS must be true or false, not '$RECORDINGS'"
read -r -a nfs_clients <<<"$NFS_CLIENTS"
for cidr in "${nfs_clients[@]}"; do
  [[ $cidr =~ ^[0-9A-Fa-f:.]+/[0-9]{1,3}$ ]] || fail "NFS_CLIENTS holds '$cidr', which is not an address range (CIDR)"
done
[ "$RECORDINGS" = false ] || [ "${#nfs_clients[@]}" -gt 0 ] || fail "NFS_CLIENTS must name the BBB servers' address ranges when RECORDINGS is true"
[[ $SECRET_KEY_BASE =~ ^[0-9a-f]+$ ]] || fail "SECRET_KEY_BASE must be lower-case hex"
# DATABASE_URL carries it unencoded.
[[ $DB_PASSWORD =~ ^[A-Za-z0-9]+$ ]] || fail "DB_PASSWORD must be alphanumeric (it is part of DATABASE_URL)"
# docker --env-file takes a value up to the end of its line; Scalelite splits LOADBALANCER_SECRETS on ':'.
[[ $LOADBALANCER_SECRET =~ ^[^[:space:][:cntrl:]:]+$ ]] ||
  fail "LOADBALANCER_SECRET must not be empty or hold white space, control characters or ':'"
[[ $LOADBALANCER_SECRETS =~ ^[^[:space:][:cntrl:]:]+(:[^[:space:][:cntrl:]:]+)*$ ]] ||
  fail "LOADBALANCER_SECRETS must be ':'-separated secrets without white space, control characters or empty entries"
[[ ":$LOADBALANCER_SECRETS:" == *":$LOADBALANCER_SECRET:"* ]] || fail "LOADBALANCER_SECRETS must include LOADBALANCER_SECRET"
IFS=: read -r -a lb_secrets <<<"$LOADBALANCER_SECRETS"
secrets=("$SECRET_KEY_BASE" "$DB_PASSWORD" "$LOADBALANCER_SECRET" "${lb_secrets[@]}")

data=/var/lib/bbb-data
recordings=$ROOT$data/recordings
env_file=$ROOT/etc/default/scalelite
own_name_conf=$ROOT/etc/bbb-deploy/scalelite-nginx-own-name.conf
privacy_conf=$ROOT/etc/bbb-deploy/scalelite-nginx-privacy.conf
db_env_file=$ROOT/etc/default/scalelite-postgres
flag=$ROOT/etc/bbb-deploy/scalelite-force-remove
exports=$ROOT/etc/exports.d/bbb-recordings.exports
image=blindsidenetwks/scalelite:$SCALELITE_VERSION

# 1. The data volume: PostgreSQL, Redis and the recordings (the tree and owners of Scalelite's
#    docs/sharedvolume-README.md: the containers write as uid 1000, BBB nodes through gid 2000).
say "mounting the data volume $VOLUME_ID at $data"
mount_data_volume "$VOLUME_ID" "$data" "$VOLUME_SIZE"
mkdir -p "$ROOT$data/postgres" "$ROOT$data/redis"
record_dirs=("$recordings/spool" "$recordings/recording/scalelite" "$recordings/published" "$recordings/unpublished")
mkdir -p "${record_dirs[@]}"
chown 1000:2000 "${record_dirs[@]}" || fail "cannot chown 1000:2000 the recording directories under $data/recordings"
chmod 0775 "${record_dirs[@]}"

# 2. Packages.
say "installing docker.io and certbot"
apt_install docker.io certbot

# 2b. The recordings share for the BBB servers (NFS; root_squash: they write as gid 2000, see step 1).
if [ "$RECORDINGS" = true ]; then
  say "exporting $data/recordings over NFS to ${nfs_clients[*]}"
  apt_install nfs-kernel-server
  mkdir -p "$(dirname "$exports")"
  export_lines=$(
    echo "# Managed by bbb (Pulumi, scalelite-setup step); changes here are overwritten."
    for cidr in "${nfs_clients[@]}"; do
      echo "$data/recordings $cidr(rw,sync,no_subtree_check,root_squash)"
    done
  )
  exports_changed=false
  if write_if_changed "$exports" 0644 root:root <<<"$export_lines"; then exports_changed=true; fi
  systemctl enable --now nfs-server >/dev/null 2>&1 || fail "cannot start nfs-server (see: journalctl -u nfs-server)"
  if [ "$exports_changed" = true ]; then
    exportfs -ra || fail "exportfs -ra failed (see /etc/exports.d/bbb-recordings.exports)"
    say "wrote /etc/exports.d/bbb-recordings.exports"
  fi
elif [ -e "$exports" ]; then
  say "recordings are off: no longer exporting $data/recordings"
  rm -f "$exports"
  if command -v exportfs >/dev/null; then exportfs -ra || fail "exportfs -ra failed after removing the recordings export"; fi
fi

# 3. The certificate, a lineage named after URL_HOST (where Scalelite's nginx template looks: live/$URL_HOST),
#    covering both names. A new name must point here before Let's Encrypt checks it over HTTP. scalelite-nginx
#    holds port 80 once it runs: certbot stops it around HTTP-01, on renewals too.
if [ "$(cert_names "$API_FQDN")" != "$(printf '%s\n' "$API_FQDN" "$FQDN" | sort | paste -sd ' ' -)" ]; then
  wait_resolves "$API_FQDN" "$IPV4" "$IPV6" "$RESOLVE_TIMEOUT_SECONDS" 10
fi
say "obtaining a certificate for $API_FQDN and $FQDN (HTTP-01)"
certbot certonly --standalone --non-interactive --agree-tos --keep-until-expiring -m "$EMAIL" \
  --cert-name "$API_FQDN" -d "$API_FQDN" -d "$FQDN" \
  --pre-hook "docker stop scalelite-nginx || true" --post-hook "docker start scalelite-nginx || true" 2>&1 |
  mask "${secrets[@]}" ||
  fail "certbot could not obtain a certificate for $API_FQDN and $FQDN (is port 80 open and do both names resolve to this host?)"
mkdir -p "$(dirname "$own_name_conf")"
if write_if_changed "$own_name_conf" 0644 root:root <<NGINX; then say "wrote the nginx server for $FQDN"; fi
# Managed by bbb (Pulumi, scalelite-setup step): requests for the host's own name reach Scalelite's API as
# $API_FQDN, the one host name it accepts; recordings play here too (links published with this name), as in
# the image's own server (nginx/conf.d/scalelite-ssl.template).
server {
  listen 443 ssl http2;
  listen [::]:443 ssl http2;
  server_name $FQDN;
  ssl_certificate /etc/nginx/ssl/live/$API_FQDN/fullchain.pem;
  ssl_certificate_key /etc/nginx/ssl/live/$API_FQDN/privkey.pem;
  location / {
    proxy_pass http://scalelite-api:3000;
    proxy_set_header Host $API_FQDN;
    proxy_set_header X-Real-IP \$remote_addr;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto \$scheme;
    proxy_http_version 1.1;
  }
  include /etc/bigbluebutton/nginx/*.nginx;
  include /etc/nginx/http.d/scalelite.common;
}
NGINX

# 3a. What scalelite-nginx logs. The image (Alpine's nginx package and nginx.conf, v1.8.5's Dockerfile) logs
#     every request twice with the client's address: Alpine's http-level access_log (format main, to stdout)
#     and Scalelite's templates' http-level "access_log stderr combined". Under strict privacy an http-level
#     "access_log off" in an http.d file turns both off (off is a flag of the level, whatever the order; the
#     image's servers set no access_log of their own), and the error log, which names the client too, keeps
#     only emergencies (nginx logs a failed TLS handshake with the client's address at crit).
if [ "$PRIVACY" = strict ]; then
  privacy_directives=$'access_log off;\nerror_log stderr emerg;'
else
  privacy_directives=""
fi
if write_if_changed "$privacy_conf" 0644 root:root <<NGINX; then say "wrote what scalelite-nginx logs ($PRIVACY privacy)"; fi
# Managed by bbb (Pulumi, scalelite-setup step): what nginx logs under $PRIVACY privacy.
$privacy_directives
NGINX

# 4. Scalelite's settings, the only place on disk that holds the secrets. Recordings off (or strict privacy):
#    Scalelite's recording API is off and every meeting is created with record=false, whatever the caller asks.
#    Scalelite gives every meeting a conference number of its own, VOICE_BRIDGE_LEN digits (9 unless set:
#    config/application.rb, v1.8.5; its configuration-README says 7), which callers dial as the PIN: the
#    servers' dialplan takes exactly that many. Rails logs at debug unless RAILS_LOG_LEVEL says otherwise
#    (config/environments/production.rb, v1.8.5), and at info every request with the client's address and
#    parameters (user names): warn under strict privacy.
recording_env=""
if [ "$RECORDINGS" = false ]; then
  recording_env=$'\nRECORDING_DISABLED=true\nOVERRIDE_CREATE_PARAMS=record=false'
fi
mkdir -p "$(dirname "$env_file")"
if write_if_changed "$env_file" 0600 root:root <<ENV; then say "wrote /etc/default/scalelite"; fi
# Managed by bbb (Pulumi, scalelite-setup step); changes here are overwritten.
URL_HOST=$API_FQDN
SECRET_KEY_BASE=$SECRET_KEY_BASE
LOADBALANCER_SECRET=$LOADBALANCER_SECRET
LOADBALANCER_SECRETS=$LOADBALANCER_SECRETS
DATABASE_URL=postgresql://postgres:$DB_PASSWORD@postgres:5432/scalelite
REDIS_URL=redis://redis:6379
SERVER_ID_IS_HOSTNAME=true
VOICE_BRIDGE_LEN=$VOICE_BRIDGE_LEN
NGINX_SSL=true$recording_env
RAILS_LOG_LEVEL=$([ "$PRIVACY" = strict ] && echo warn || echo info)
ENV
# PostgreSQL gets its password alone: a new consumer secret must not restart the database.
if write_if_changed "$db_env_file" 0600 root:root <<ENV; then say "wrote /etc/default/scalelite-postgres"; fi
POSTGRES_PASSWORD=$DB_PASSWORD
ENV
# Containers reading a file carry its hash, so a changed file replaces them (and only them).
env_sum=$(sha256sum "$env_file" | cut -d' ' -f1)
own_name_sum=$(sha256sum "$own_name_conf" | cut -d' ' -f1)
privacy_sum=$(sha256sum "$privacy_conf" | cut -d' ' -f1)
db_env_sum=$(sha256sum "$db_env_file" | cut -d' ' -f1)
with_env=(--env-file "$env_file" --label "bbb.env=$env_sum")

# 5. The network: Scalelite's nginx proxies to scalelite-api, the URLs above name postgres and redis.
docker network inspect scalelite >/dev/null 2>&1 || docker network create scalelite >/dev/null ||
  fail "cannot create the docker network scalelite"

# 6. The containers; each is replaced only when its arguments (image, env file hash, ...) changed.
# Bind mounts (--mount, not -v) fail when the source is missing: with the data volume absent at boot
# (fstab nofail), postgres must not start a fresh, empty database on the root disk.
pull_images "$POSTGRES_IMAGE" "$REDIS_IMAGE" "$image-api" "$image-poller" "$image-recording-importer" "$image-nginx"
ensure_container postgres --network scalelite --env-file "$db_env_file" --label "bbb.env=$db_env_sum" \
  --mount "type=bind,source=$ROOT$data/postgres,target=/var/lib/postgresql/data" "$POSTGRES_IMAGE" || true
ensure_container redis --network scalelite \
  --mount "type=bind,source=$ROOT$data/redis,target=/data" "$REDIS_IMAGE" redis-server --appendonly yes || true

# 6a. The database. Scalelite's api container makes it as it starts (bin/start, v1.8.5: rake db:create, then
#     db:schema:load unless it "already exists", errors ignored, then puma): on a first boot it races a
#     PostgreSQL that does not accept connections yet, and an api that lost runs without tables, never
#     healthy, and is not started again. So PostgreSQL is waited for and the database prepared here first
#     (rake db:prepare, Rails 7.2: creates it, loads the schema, or migrates; a no-op when up to date).
# Asked over TCP, as Scalelite connects: on a first boot the postgres image runs its init scripts on a server
# that listens on its socket only (docker-entrypoint.sh, docker_temp_server_start: listen_addresses=''), then
# restarts it.
say "waiting for PostgreSQL to accept connections"
pg_deadline=$((SECONDS + HEALTH_WAIT_SECONDS))
until docker exec postgres pg_isready -q -h 127.0.0.1 -U postgres >/dev/null 2>&1; do
  [ "$SECONDS" -lt "$pg_deadline" ] ||
    fail "PostgreSQL does not accept connections after ${HEALTH_WAIT_SECONDS}s (see: docker logs postgres)"
  sleep 2
done
if ! out=$(docker run --rm --network scalelite --env-file "$env_file" "$image-api" bundle exec rake db:prepare 2>&1); then
  mask "${secrets[@]}" <<<"$out" >&2
  fail "cannot prepare Scalelite's database (rake db:prepare; see above)"
fi
say "Scalelite's database is ready"
ensure_container scalelite-api --network scalelite "${with_env[@]}" \
  --mount "type=bind,source=$recordings,target=/var/bigbluebutton" "$image-api" || true
ensure_container scalelite-poller --network scalelite "${with_env[@]}" \
  "$image-poller" || true
ensure_container scalelite-recording-importer --network scalelite "${with_env[@]}" \
  --mount "type=bind,source=$recordings,target=/var/bigbluebutton" "$image-recording-importer" || true
ensure_container scalelite-nginx --network scalelite "${with_env[@]}" --label "bbb.own-name=$own_name_sum" \
  --label "bbb.privacy=$privacy_sum" -p 80:80 -p 443:443 \
  --mount "type=bind,source=$ROOT/etc/letsencrypt,target=/etc/nginx/ssl,readonly" \
  --mount "type=bind,source=$own_name_conf,target=/etc/nginx/http.d/bbb-own-name.conf,readonly" \
  --mount "type=bind,source=$privacy_conf,target=/etc/nginx/http.d/bbb-privacy.conf,readonly" \
  --mount "type=bind,source=$recordings/published,target=/var/bigbluebutton/published,readonly" \
  "$image-nginx" || true

# 6b. Retention: a daily job deletes published recordings older than RETENTION_DAYS through Scalelite's API
#     (deleteRecordings, signed with the secret it reads from /etc/default/scalelite when it runs).
retention=$ROOT/etc/cron.daily/bbb-recording-retention
if [ "$RETENTION_DAYS" -gt 0 ]; then
  mkdir -p "$(dirname "$retention")"
  write_if_changed "$retention" 0755 root:root <<JOB || true
#!/bin/sh
# Managed by bbb (Pulumi, scalelite-setup step): deletes published recordings older than $RETENTION_DAYS days.
set -eu
. $env_file
find $ROOT$data/recordings/published -mindepth 2 -maxdepth 2 -type d -mtime +$RETENTION_DAYS | sed 's|.*/||' | sort -u |
  while read -r id; do
    sum=\$(printf 'deleteRecordingsrecordID=%s%s' "\$id" "\$LOADBALANCER_SECRET" | sha1sum | cut -d' ' -f1)
    curl -sS --max-time 20 --resolve "\$URL_HOST:443:127.0.0.1" \\
      "https://\$URL_HOST/bigbluebutton/api/deleteRecordings?recordID=\$id&checksum=\$sum" >/dev/null
  done
JOB
else
  rm -f "$retention"
fi

# 7. For the node-removal step: may it end running meetings?
mkdir -p "$(dirname "$flag")"
write_if_changed "$flag" 0600 root:root <<<"$FORCE_REMOVE" || true

# 8. Health: /health_check answers HTTP 200 even on failure; only the body "success" means healthy.
say "waiting for https://$FQDN/health_check (up to ${HEALTH_WAIT_SECONDS}s)"
deadline=$((SECONDS + HEALTH_WAIT_SECONDS))
while :; do
  if ! answer=$(curl -sS --max-time 10 --resolve "$FQDN:443:127.0.0.1" "https://$FQDN/health_check" 2>&1); then
    last="/health_check: ${answer:-no answer}"
  elif [ "$answer" != success ]; then
    last="/health_check answered: $answer"
  elif ! answer=$(curl -sS --max-time 10 --resolve "$API_FQDN:443:127.0.0.1" "https://$API_FQDN/bigbluebutton/api" 2>&1); then
    last="/bigbluebutton/api: ${answer:-no answer}"
  elif ! grep -q '<returncode>SUCCESS</returncode>' <<<"$answer"; then
    last="/bigbluebutton/api answered: $answer"
  else
    break
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    last=$(mask "${secrets[@]}" <<<"$last" | tr -s '\r\n\t' '   ' | head -c 500)
    fail "Scalelite at https://$FQDN is not healthy after ${HEALTH_WAIT_SECONDS}s; last answer: ${last% } (see: docker logs scalelite-api)"
  fi
  sleep 5
done
say "Scalelite answers on https://$API_FQDN/bigbluebutton/api (and on https://$FQDN)"

# The lineage of the host's own name, from before the API name: nothing uses it once the containers above
# run with the new one.
if [ -n "$(cert_names "$FQDN")" ]; then
  certbot delete --non-interactive --cert-name "$FQDN" >/dev/null 2>&1 || fail "certbot could not delete the certificate $FQDN it no longer needs"
  say "deleted the certificate $FQDN (replaced by $API_FQDN's, which names both)"
fi
