#!/usr/bin/env bash
# Functions every remote step may use. components/remote.ts sends this file ahead of each step's script,
# after the step's inputs (STEP, the step's name, is one of them). ROOT (default empty) prefixes every
# path a step writes, so tests can run the steps in a temporary directory.
# shellcheck disable=SC2034  # ROOT is read by the step scripts
ROOT=${ROOT:-}

# Prints a message naming the step on stderr and stops.
fail() {
  echo "${STEP:-step}: error: $*" >&2
  exit 1
}

say() {
  echo "${STEP:-step}: $*"
}

# Copies stdin to stdout with every given secret replaced by [secret]. Used on installer output.
mask() {
  local line secret
  while IFS= read -r line || [ -n "$line" ]; do
    for secret in "$@"; do
      [ -n "$secret" ] && line=${line//"$secret"/[secret]}
    done
    printf '%s\n' "$line"
  done
}

# Installs Ubuntu packages, refreshing the package lists once if they are stale or empty.
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if ! timeout 900 apt-get install -y -q "$@" >/dev/null 2>&1; then
    timeout 900 apt-get update -q >/dev/null 2>&1 || fail "apt-get update failed"
    timeout 900 apt-get install -y -q "$@" >/dev/null || fail "apt-get install $* failed"
  fi
}

# Writes stdin to FILE (mode MODE, owner OWNER) only when the content differs. Returns 0 when it wrote.
write_if_changed() {
  local file=$1 mode=$2 owner=$3 tmp
  tmp=$(mktemp "${file}.XXXXXX") || fail "cannot write next to $file"
  cat >"$tmp"
  chmod "$mode" "$tmp"
  chown "$owner" "$tmp" || {
    rm -f "$tmp"
    fail "cannot chown $owner $file"
  }
  if [ -f "$file" ] && diff -q "$tmp" "$file" >/dev/null; then
    rm -f "$tmp"
    return 1
  fi
  mv -f "$tmp" "$file"
  return 0
}

# The BigBlueButton API checksum: sha1(call + query + secret). The secret never reaches an argv.
bbb_checksum() {
  printf '%s%s%s' "$1" "$2" "$3" | sha1sum | cut -d' ' -f1
}

# Calls the local BigBlueButton API as https://FQDN (resolved to this host) and prints the XML answer.
bbb_api() {
  local call=$1 query=$2 secret=$3 sum
  sum=$(bbb_checksum "$call" "$query" "$secret")
  curl -sS --max-time 20 --resolve "$FQDN:443:127.0.0.1" \
    "https://$FQDN/bigbluebutton/api/$call?${query:+$query&}checksum=$sum"
}
