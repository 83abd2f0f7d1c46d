#!/usr/bin/env bash
# Greenlight host (pool topology): Greenlight v3 in docker, pointed at Scalelite, with its Postgres and Redis
# on the OpenStack data volume, behind host nginx with a Let's Encrypt certificate (HTTP-01, standalone,
# nginx stopped around it by certbot's hooks, also on renewals). Containers are replaced only when their
# arguments or the env file change; nginx is reloaded only when its site changed.
# Inputs: FQDN EMAIL GREENLIGHT_VERSION (image tag, e.g. v3.8.2.4) VOLUME_ID (the data volume's id) VOLUME_SIZE (its GB)
#         SECRET_KEY_BASE (hex) DB_PASSWORD (alphanumeric) BBB_ENDPOINT (https://<scalelite>/bigbluebutton/api/)
#         BBB_SECRET (a Scalelite consumer secret) POSTGRES_IMAGE REDIS_IMAGE HEALTH_WAIT_SECONDS
#         PRIVACY (strict|standard: under strict nginx logs no request and Greenlight only warnings).
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

for input in FQDN EMAIL GREENLIGHT_VERSION VOLUME_ID VOLUME_SIZE SECRET_KEY_BASE DB_PASSWORD BBB_ENDPOINT BBB_SECRET \
  POSTGRES_IMAGE REDIS_IMAGE HEALTH_WAIT_SECONDS PRIVACY; do
  [ -n "${!input:-}" ] || fail "input $input is missing"
done
[[ $PRIVACY =~ ^(strict|standard)$ ]] || fail "PRIVACY must be strict or standard, not '$PRIVACY'"
# The env file is read by docker (KEY=VALUE a line, no quoting) and the password sits in DATABASE_URL.
[[ $FQDN =~ ^[A-Za-z0-9.-]+$ ]] || fail "FQDN '$FQDN' is not a host name"
[[ $GREENLIGHT_VERSION =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || fail "GREENLIGHT_VERSION '$GREENLIGHT_VERSION' is not an image tag"
[[ $SECRET_KEY_BASE =~ ^[0-9a-fA-F]{32,}$ ]] || fail "SECRET_KEY_BASE must be hex (at least 32 digits)"
[[ $DB_PASSWORD =~ ^[A-Za-z0-9]+$ ]] || fail "DB_PASSWORD must be alphanumeric (it is part of DATABASE_URL)"
[[ $BBB_SECRET =~ ^[[:graph:]]+$ ]] || fail "BBB_SECRET must not contain spaces or control characters"
[[ $BBB_ENDPOINT =~ ^https://[^/[:space:]]+/bigbluebutton/api/$ ]] ||
  fail "BBB_ENDPOINT '$BBB_ENDPOINT' is not https://<host>/bigbluebutton/api/"
[[ $HEALTH_WAIT_SECONDS =~ ^[0-9]+$ ]] || fail "HEALTH_WAIT_SECONDS '$HEALTH_WAIT_SECONDS' is not a number of seconds"
secrets=("$SECRET_KEY_BASE" "$DB_PASSWORD" "$BBB_SECRET")

data=/var/lib/bbb-data
env_file=$ROOT/etc/default/greenlight
db_env_file=$ROOT/etc/default/greenlight-postgres
site=$ROOT/etc/nginx/sites-available/greenlight
site_link=$ROOT/etc/nginx/sites-enabled/greenlight
live=/etc/letsencrypt/live/$FQDN
db_name=greenlight-v3-production

say "mounting the data volume $VOLUME_ID at $data"
mount_data_volume "$VOLUME_ID" "$data" "$VOLUME_SIZE"
mkdir -p "$ROOT$data/postgres" "$ROOT$data/redis" "$ROOT$data/greenlight"

say "installing docker, nginx and certbot"
apt_install docker.io nginx certbot
systemctl enable --quiet docker || fail "cannot enable docker"
systemctl start docker || fail "docker did not start (see: journalctl -u docker)"

say "obtaining a certificate for $FQDN (HTTP-01)"
certbot certonly --standalone --non-interactive --agree-tos --keep-until-expiring -m "$EMAIL" -d "$FQDN" \
  --pre-hook "systemctl stop nginx" --post-hook "systemctl start nginx" 2>&1 | mask "${secrets[@]}" ||
  fail "certbot could not obtain a certificate for $FQDN (is port 80 open and does $FQDN resolve to this host?)"

# Read by `docker run --env-file` only: the one place on disk that holds the secrets. Greenlight has no
# SMTP server configured here, and its health check would otherwise try localhost:25 and fail.
mkdir -p "$(dirname "$env_file")"
# What is logged. Greenlight (config/environments/production.rb, release-3.8.2.4) logs at LOG_LEVEL, info unless
# set: one lograge line a request, without the client's address but with room and user ids; nginx, Ubuntu's
# http-level access log of every request with the client's address, and its error log names the client too.
# Under strict privacy: Greenlight's warnings, no access log, emergencies only (nginx logs failed TLS handshakes
# with the client's address at crit; server-level directives,
# which replace the http-level ones).
if [ "$PRIVACY" = strict ]; then
  log_level=warn nginx_logging=$'    access_log off;\n    error_log /var/log/nginx/error.log emerg;\n'
else
  log_level=info nginx_logging=""
fi
write_if_changed "$env_file" 0600 root:root <<ENV || true
# Managed by bbb (Pulumi, greenlight-setup step); changes here are overwritten.
BIGBLUEBUTTON_ENDPOINT=$BBB_ENDPOINT
BIGBLUEBUTTON_SECRET=$BBB_SECRET
SECRET_KEY_BASE=$SECRET_KEY_BASE
DATABASE_URL=postgres://postgres:$DB_PASSWORD@greenlight-postgres:5432/$db_name
REDIS_URL=redis://greenlight-redis:6379/
URL_HOST=$FQDN
SMTP_HEALTH_CHECK_DISABLED=true
LOG_LEVEL=$log_level
ENV
# PostgreSQL gets its own settings alone: a new Scalelite secret must not restart the database.
write_if_changed "$db_env_file" 0600 root:root <<ENV || true
POSTGRES_PASSWORD=$DB_PASSWORD
POSTGRES_DB=$db_name
ENV
# A changed env file changes the containers' arguments (this label), so ensure_container replaces them.
env_hash=$(sha256sum "$env_file" | cut -d' ' -f1)
env_args=(--env-file "$env_file" --label "bbb.env=$env_hash")
db_env_args=(--env-file "$db_env_file" --label "bbb.env=$(sha256sum "$db_env_file" | cut -d' ' -f1)")

docker network inspect greenlight >/dev/null 2>&1 || docker network create greenlight >/dev/null ||
  fail "cannot create the docker network greenlight"
image=bigbluebutton/greenlight:$GREENLIGHT_VERSION
pull_images "$POSTGRES_IMAGE" "$REDIS_IMAGE" "$image"
# Bind mounts (--mount, not -v) fail when the source is missing: with the data volume absent at boot
# (fstab nofail), postgres must not start a fresh, empty database on the root disk.
ensure_container greenlight-postgres --network greenlight "${db_env_args[@]}" \
  --mount "type=bind,source=$data/postgres,target=/var/lib/postgresql/data" "$POSTGRES_IMAGE" || true
ensure_container greenlight-redis --network greenlight \
  --mount "type=bind,source=$data/redis,target=/data" "$REDIS_IMAGE" redis-server --appendonly yes || true
# Uploads (presentations, avatars, branding) are Active Storage files in /usr/src/app/storage.
ensure_container greenlight-v3 --network greenlight "${env_args[@]}" -p 127.0.0.1:5050:3000 \
  --mount "type=bind,source=$data/greenlight,target=/usr/src/app/storage" "$image" || true

# Host nginx terminates TLS and proxies to Greenlight; /cable is ActionCable (WebSocket).
mkdir -p "$(dirname "$site")" "$(dirname "$site_link")"
nginx_changed=false
if write_if_changed "$site" 0644 root:root <<SITE; then nginx_changed=true; fi
# Managed by bbb (Pulumi, greenlight-setup step); changes here are overwritten.
map \$http_upgrade \$greenlight_connection {
    default upgrade;
    ''      close;
}

server {
    listen 80;
    listen [::]:80;
    server_name $FQDN;
${nginx_logging}    return 301 https://$FQDN\$request_uri;
}

server {
    listen 443 ssl http2;
    listen [::]:443 ssl http2;
    server_name $FQDN;
${nginx_logging}
    ssl_certificate $live/fullchain.pem;
    ssl_certificate_key $live/privkey.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:greenlight:10m;

    # Presentations up to 30 MB (Greenlight's own limit).
    client_max_body_size 31m;

    location / {
        proxy_pass http://127.0.0.1:5050;
        proxy_http_version 1.1;
        proxy_redirect off;
        proxy_set_header Host \$host;
        proxy_set_header X-Real-IP \$remote_addr;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto \$scheme;
        proxy_set_header Upgrade \$http_upgrade;
        proxy_set_header Connection \$greenlight_connection;
        proxy_buffer_size 128k;
        proxy_buffers 4 256k;
        proxy_busy_buffers_size 256k;
    }
}
SITE
if [ "$(readlink "$site_link" || true)" != "$site" ]; then
  ln -sfn "$site" "$site_link" || fail "cannot enable the nginx site $site"
  nginx_changed=true
fi
if [ -e "$ROOT/etc/nginx/sites-enabled/default" ] || [ -L "$ROOT/etc/nginx/sites-enabled/default" ]; then
  rm -f "$ROOT/etc/nginx/sites-enabled/default"
  nginx_changed=true
fi
if [ "$nginx_changed" = true ]; then
  if ! out=$(nginx -t 2>&1); then
    printf '%s\n' "$out" | mask "${secrets[@]}" >&2
    # Taken out again, so that the next run writes and tests it anew instead of finding it unchanged.
    rm -f "$site" "$site_link"
    fail "nginx -t rejected the configuration with the Greenlight site (output above); nginx was not reloaded"
  fi
fi
systemctl enable --quiet nginx || fail "cannot enable nginx"
if [ "$nginx_changed" = true ] && systemctl is-active --quiet nginx; then
  say "nginx site changed; reloading nginx"
  systemctl reload nginx || fail "nginx did not reload (see: journalctl -u nginx)"
else
  systemctl start nginx || fail "nginx did not start (see: journalctl -u nginx)"
fi

say "waiting for https://$FQDN/health_check to answer 200 (up to ${HEALTH_WAIT_SECONDS}s)"
deadline=$((SECONDS + HEALTH_WAIT_SECONDS))
while :; do
  code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' --resolve "$FQDN:443:127.0.0.1" \
    "https://$FQDN/health_check" 2>/dev/null || true)
  [ "$code" = 200 ] && break
  if [ "$SECONDS" -ge "$deadline" ]; then
    case $code in
      "" | 000) answer="gave no answer (is nginx running?)" ;;
      *) answer="answered HTTP $code" ;;
    esac
    fail "Greenlight is not healthy after ${HEALTH_WAIT_SECONDS}s: https://$FQDN/health_check $answer; see: docker logs greenlight-v3"
  fi
  sleep 5
done
say "Greenlight $GREENLIGHT_VERSION is up at https://$FQDN/"
