#!/usr/bin/env bash
# BBB host booted from a clone of a bake's golden volume, before its installer step: leaves the finalise (bbb-installer.sh,
# finalise_baked) the server's API secret and bbb-web properties in root-only files, so that it writes them before
# the one restart the installer makes, and the bbb-configure step after it has nothing to change and restarts
# nothing. On a host that is not, or no longer, baked (a finalised server, given a new secret or properties,
# which are bbb-configure's) it leaves nothing: the files would only hold a secret nobody reads. The finalise
# removes them.
# Inputs: SECRET PROPERTIES.
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${SECRET:?}" "${PROPERTIES:?}"
[[ $SECRET =~ ^[A-Za-z0-9]{32,}$ ]] || fail "the API secret must be at least 32 letters and digits"
seed=$ROOT/var/lib/bbb-deploy/seed
if [ ! -f "$ROOT/var/lib/bbb-deploy/baked" ]; then
  rm -rf "$seed"
  say "not booted from a bake (or finalised already): nothing to seed"
  exit 0
fi
mkdir -p "$seed"
chmod 0700 "$ROOT/var/lib/bbb-deploy" "$seed"
(
  umask 077
  printf '%s\n' "$SECRET" >"$seed/secret"
  printf '%s\n' "$PROPERTIES" >"$seed/properties"
)
say "seeded the finalise with the server's API secret and properties"
