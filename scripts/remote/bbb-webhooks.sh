#!/usr/bin/env bash
# BBB host, after the installer: bbb-webhooks with the stack's permanent hooks. The package's postinst rewrites
# its config/default.yml on every upgrade, so the URLs go into the override it merges on top
# (/etc/bigbluebutton/bbb-webhooks/production.yml; node-config replaces arrays, so permanentURLs is exactly
# URLS). The service restarts only when that file changed. Permanent hooks persist in Redis, and bbb-webhooks
# neither forgets one whose URL left the config nor lets its API destroy a permanent hook (hooks/destroy
# answers destroyMissingHook for them): this step lists the hooks through the signed API (hooks/list),
# removes permanent ones whose URL is no longer in URLS from Redis and restarts the service, whose hook
# table is loaded from Redis at start.
# Inputs: FQDN URLS (newline-separated https URLs, may be empty); optional API_WAIT_SECONDS (default 60): how
#         long the hooks API may take to answer after a (re)start.
# The API secret is read from bbb-web.properties on the host and never printed.
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${FQDN:?}"
URLS=${URLS:-}
API_WAIT_SECONDS=${API_WAIT_SECONDS:-60}
[[ $API_WAIT_SECONDS =~ ^[0-9]+$ ]] || fail "API_WAIT_SECONDS must be a number of seconds"

# bbb-webhooks' Redis keys (redis.keys.hookPrefix and redis.keys.hooks of its default config).
HOOK_PREFIX=bigbluebutton:webhooks:out:hook
HOOK_SET=bigbluebutton:webhooks:out:hooks

urls=()
while IFS= read -r url; do
  [ -n "$url" ] || continue
  [[ $url =~ ^https://[^[:space:]/?#]+([/?#][^[:space:]]*)?$ ]] ||
    fail "webhook URL '$url' is not an https:// URL (its calls carry the API secret as a bearer token)"
  for known in ${urls[@]+"${urls[@]}"}; do [ "$known" != "$url" ] || continue 2; done
  urls+=("$url")
done <<<"$URLS"

props=$ROOT/etc/bigbluebutton/bbb-web.properties
[ -f "$props" ] || fail "$props is missing: bbb-install.sh has not completed on this host"

say "installing bbb-webhooks"
apt_install bbb-webhooks

# A URL for logs: the query string may carry a token.
shown() { printf '%s' "${1%%\?*}"; }
# YAML single-quoted scalar.
quoted() { local s=${1//"'"/"''"}; printf "'%s'" "$s"; }

override=$ROOT/etc/bigbluebutton/bbb-webhooks/production.yml
mkdir -p "$(dirname "$override")"
changed=false
# The service runs as bigbluebutton (its unit's User= and Group=): it reads the file through its group.
if write_if_changed "$override" 0640 root:bigbluebutton <<YAML; then changed=true; fi
# Managed by bbb (Pulumi, bbb-webhooks step); changes here are overwritten.
# Merged over /usr/local/bigbluebutton/bbb-webhooks/config/default.yml, which the package rewrites.
modules:
  ../out/webhooks/index.js:
    config:
$(if [ ${#urls[@]} -eq 0 ]; then
  echo "      permanentURLs: []"
else
  echo "      permanentURLs:"
  for url in "${urls[@]}"; do
    echo "        - url: $(quoted "$url")"
    echo "          getRaw: false"
  done
fi)
YAML

restart() {
  systemctl restart bbb-webhooks || fail "bbb-webhooks did not restart (see: journalctl -u bbb-webhooks)"
}
if [ "$changed" = true ]; then
  say "permanent hooks changed (${#urls[@]} URL(s)); restarting bbb-webhooks"
  restart
else
  systemctl start bbb-webhooks || fail "bbb-webhooks did not start (see: journalctl -u bbb-webhooks)"
fi
systemctl is-active --quiet bbb-webhooks || fail "bbb-webhooks is not running (see: journalctl -u bbb-webhooks)"

secret=$(sed -n 's/^securitySalt=//p' "$props" | tail -n1)
[ -n "$secret" ] || fail "$props holds no securitySalt: bbb-install.sh has not completed on this host"

# Lists the registered hooks into hook_ids, hook_urls and hook_permanent, waiting (up to API_WAIT_SECONDS)
# for the API to answer and for every URL of URLS to be registered: bbb-webhooks opens its API before it
# has registered the permanent hooks. The call is signed as bbb-webhooks checks it: sha1 of the API call's
# name after /bigbluebutton/api/ ("hooks/list"), the query (empty) and the secret.
list_hooks() {
  local deadline=$((SECONDS + API_WAIT_SECONDS)) answer entry missing url re_id re_url
  re_id='<hookID>([^<]*)</hookID>'
  re_url='<callbackURL><!\[CDATA\[(.*)\]\]></callbackURL>'
  while :; do
    missing=""
    answer=$(bbb_api hooks/list "" "$secret" 2>/dev/null || true)
    case $answer in
      *"<returncode>SUCCESS</returncode>"*)
        hook_ids=() hook_urls=() hook_permanent=()
        while IFS= read -r entry; do
          [[ $entry =~ $re_id ]] || continue
          hook_ids+=("${BASH_REMATCH[1]}")
          url=""
          if [[ $entry =~ $re_url ]]; then url=${BASH_REMATCH[1]}; fi
          hook_urls+=("$url")
          if [[ $entry == *"<permanentHook>true</permanentHook>"* ]]; then hook_permanent+=(true); else hook_permanent+=(false); fi
        done < <(printf '%s\n' "$answer" | sed 's|<hook>|\n<hook>|g')
        for url in ${urls[@]+"${urls[@]}"}; do
          registered "$url" || missing="$missing $(shown "$url")"
        done
        [ -n "$missing" ] || return 0
        ;;
      *checksumError*)
        fail "the hooks API at https://$FQDN/bigbluebutton/api/hooks refuses the secret of bbb-web.properties (checksumError): bbb.sharedSecret of bbb-webhooks differs (see: bbb-conf --check)"
        ;;
    esac
    if [ "$SECONDS" -ge "$deadline" ]; then
      [ -z "$missing" ] || fail "bbb-webhooks did not register the permanent hook(s)$missing within ${API_WAIT_SECONDS}s (see: journalctl -u bbb-webhooks)"
      fail "the hooks API at https://$FQDN/bigbluebutton/api/hooks did not answer within ${API_WAIT_SECONDS}s (see: journalctl -u bbb-webhooks)"
    fi
    sleep 2
  done
}
registered() {
  local i
  for i in "${!hook_ids[@]}"; do [ "${hook_urls[$i]}" != "$1" ] || return 0; done
  return 1
}
wanted() {
  local url
  for url in ${urls[@]+"${urls[@]}"}; do [ "$url" != "$1" ] || return 0; done
  return 1
}

say "checking the permanent hooks through https://$FQDN/bigbluebutton/api/hooks"
list_hooks
stale=()
for i in "${!hook_ids[@]}"; do
  if [ "${hook_permanent[$i]}" = true ] && ! wanted "${hook_urls[$i]}"; then
    [[ ${hook_ids[$i]} =~ ^[A-Za-z0-9_.:-]+$ ]] || fail "unexpected hook id '${hook_ids[$i]}' in the hooks list"
    stale+=("${hook_ids[$i]}")
    say "removing the stale permanent hook ${hook_ids[$i]} ($(shown "${hook_urls[$i]}"))"
  fi
done

if [ ${#stale[@]} -gt 0 ]; then
  command -v redis-cli >/dev/null || fail "redis-cli is missing: cannot remove stale permanent hooks"
  for id in "${stale[@]}"; do
    if ! redis-cli SREM "$HOOK_SET" "$id" >/dev/null || ! redis-cli DEL "$HOOK_PREFIX:$id" >/dev/null; then
      fail "cannot remove the stale permanent hook $id from Redis"
    fi
  done
  # bbb-webhooks keeps its hooks in memory: a restart reloads them from Redis, without the stale ones.
  restart
  systemctl is-active --quiet bbb-webhooks || fail "bbb-webhooks is not running (see: journalctl -u bbb-webhooks)"
  list_hooks
  for id in "${stale[@]}"; do
    for i in "${!hook_ids[@]}"; do
      [ "${hook_ids[$i]}" != "$id" ] || fail "the stale permanent hook $id is still registered after its removal from Redis"
    done
  done
fi
say "bbb-webhooks calls ${#urls[@]} permanent URL(s); ${#stale[@]} stale hook(s) removed"
