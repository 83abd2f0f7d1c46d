#!/usr/bin/env bash
# A bake's builder VM (issue 14; docs/bake.md): installs BigBlueButton's packages with the pinned bbb-install.sh,
# as the bbb-installer step runs it (lib.sh, bbb_install_run), but for a placeholder host: -s BAKE_NAME.invalid and
# -c turn.BAKE_NAME.invalid with a secret made here and thrown away, no -e (so install_ssl does not run: no
# certificate, no Let's Encrypt request, no addresses in production.yml; bbb-install.sh 26ce2d16 L350-354), no -g.
# Without -c it would install a coturn and HAProxy of its own (L356-375). IP is the builder's private address and
# there is no INTERNAL_IP: check_nat then sets up no NAT (no address on lo, no dummy-nic.service), which a clone
# behind another address would keep (docs/bake.md §2.1).
# Then it stops BigBlueButton and removes what identifies this host, so that its disk, cloned into the golden
# volume, holds nothing of it (docs/bake.md §2.2): the placeholder's TURN servers; the API secret bbb-conf --setip
# copied into /etc/bigbluebutton/bbb-web.properties (with the placeholder's serverURL) and into bbb-apps-akka.conf;
# the ESL password, back to ClueCon in its three files (the finalise's setip makes a new one); Hasura's admin
# secret, back to its package default (bigbluebutton); Etherpad's API key; FreeSWITCH's local_ip_v4 (the builder's
# address, which nothing but the finalise writes again); cloud-init's instance state and logs and the machine id
# (cloud-init clean --logs --machine-id: a clone is a new instance); SSH host keys; authorized_keys; the host name
# (/etc/hostname, its /etc/hosts line); this program's records and logs, BigBlueButton's logs, the journal, /tmp.
# What keeps the placeholder or the builder's address is rewritten when the server is finalised, which checks
# that none is left (bbb-installer.sh, baked_leftovers). Then it writes the marker /var/lib/bbb-deploy/baked
# (root-only: BAKE_KEY, BAKE_NAME and the builder's addresses), syncs, and has systemd power the builder off a few
# seconds later, so that this SSH session returns first; the program clones the disk once the VM is off.
# Safe to run again: a run that failed is finished by the next (bbb-install.sh over installed packages installs
# nothing); on a builder whose marker holds BAKE_KEY already, only the scrub is redone and checked, and the
# power-off scheduled again. A builder hosts no meeting: nothing asks.
# Inputs: BAKE_NAME (a DNS label), BAKE_KEY (64 lower-case hex), VERSION, INSTALLER_URL, PUBLIC_IPV4 and
#         PRIVATE_IPV4 (the builder's), TIMEOUT_SECONDS.
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${BAKE_NAME:?}" "${BAKE_KEY:?}" "${VERSION:?}" "${INSTALLER_URL:?}" "${PUBLIC_IPV4:?}" "${PRIVATE_IPV4:?}" "${TIMEOUT_SECONDS:?}"
[[ $BAKE_NAME =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] || fail "BAKE_NAME '$BAKE_NAME' is not a DNS label"
[[ $BAKE_KEY =~ ^[0-9a-f]{64}$ ]] || fail "BAKE_KEY must be 64 lower-case hex digits"
ipv4_inputs PUBLIC_IPV4 PRIVATE_IPV4

marker=$ROOT/var/lib/bbb-deploy/baked
placeholder=$BAKE_NAME.invalid
props=$ROOT/etc/bigbluebutton/bbb-web.properties
esl_files=(
  "$ROOT/opt/freeswitch/etc/freeswitch/autoload_configs/event_socket.conf.xml"
  "$ROOT/etc/bigbluebutton/bbb-fsesl-akka.conf"
  "$ROOT/etc/bigbluebutton/bbb-webrtc-sfu/production.yml"
)
hasura_files=("$ROOT/etc/default/bbb-graphql-server" "$ROOT/usr/share/bbb-graphql-server/config.yaml")
etherpad_key=$ROOT/usr/share/etherpad-lite/APIKEY.txt

# Removes this host's identity (above). Each part is a no-op once done.
scrub() {
  local file name
  rm -f "$ROOT/etc/bigbluebutton/turn-stun-servers.xml"
  sed -i '/^securitySalt=/d; /^bigbluebutton\.web\.serverURL=/d' "$props"
  sed -i 's/sharedSecret[ ]*=[ ]*"[^"]*"/sharedSecret=""/' "$ROOT/etc/bigbluebutton/bbb-apps-akka.conf"
  sed -i 's/name="password"\([[:space:]]*\)value="[^"]*"/name="password"\1value="ClueCon"/' "${esl_files[0]}"
  sed -i 's/password="[^"]*"/password="ClueCon"/' "${esl_files[1]}"
  [ "$(yq e '.freeswitch.esl_password' "${esl_files[2]}")" = ClueCon ] || yq e -i '.freeswitch.esl_password = "ClueCon"' "${esl_files[2]}"
  set_line "${hasura_files[0]}" HASURA_GRAPHQL_ADMIN_SECRET= HASURA_GRAPHQL_ADMIN_SECRET=bigbluebutton || fail "cannot reset Hasura's admin secret"
  set_line "${hasura_files[1]}" "admin_secret:" "admin_secret: bigbluebutton" || fail "cannot reset Hasura's admin secret"
  rm -f "$etherpad_key"
  sed -i '/data="local_ip_v4=/d' "$ROOT/opt/freeswitch/etc/freeswitch/vars.xml"
  cloud-init clean --logs --machine-id || fail "cloud-init clean failed"
  rm -f "$ROOT"/etc/ssh/ssh_host_*
  name=$(cat "$ROOT/etc/hostname" 2>/dev/null || true)
  if [ -n "$name" ]; then
    sed -i "/[[:space:]]${name//./\\.}\([[:space:]]\|\$\)/d" "$ROOT/etc/hosts" 2>/dev/null || true
    : >"$ROOT/etc/hostname"
  fi
  # Everything of this program's but the marker (no record of an installer run: the finalise must not take it
  # for a server installed already).
  for file in "$ROOT/var/lib/bbb-deploy"/* "$ROOT/var/lib/bbb-deploy"/.[!.]*; do
    [ ! -e "$file" ] || [ "$file" = "$marker" ] || rm -rf "$file"
  done
  rm -rf "$ROOT/var/log/bbb-deploy" "$ROOT"/var/log/bigbluebutton/* "$ROOT"/var/log/nginx/* "$ROOT"/var/log/journal/* \
    "$ROOT"/opt/freeswitch/var/log/freeswitch/* "$ROOT"/var/log/bbb-webrtc-sfu/* "$ROOT"/var/log/bbb-apps-akka/* \
    "$ROOT"/var/log/bbb-fsesl-akka/* "$ROOT"/tmp/* "$ROOT"/tmp/.[!.]*
}

# What of this host is still there, a line each (empty: nothing).
identity_left() {
  local file value
  # systemd makes a new machine id at boot when the file is empty or says uninitialized (machine-id(5)).
  case $(cat "$ROOT/etc/machine-id" 2>/dev/null || true) in "" | uninitialized) ;; *) echo "/etc/machine-id holds a machine id" ;; esac
  for file in "$ROOT"/etc/ssh/ssh_host_* "$ROOT/etc/bigbluebutton/turn-stun-servers.xml" "$etherpad_key" "$ROOT"/var/lib/cloud/instance*; do
    [ ! -e "$file" ] || echo "${file#"$ROOT"} is there"
  done
  ! grep -q '^securitySalt=' "$props" || echo "/etc/bigbluebutton/bbb-web.properties holds an API secret (securitySalt)"
  for file in "${esl_files[@]:0:2}"; do
    value=$(sed -n 's/.*password="\([^"]*\)".*/\1/p; s/.*name="password"[[:space:]]*value="\([^"]*\)".*/\1/p' "$file" | head -n1)
    [ "$value" = ClueCon ] || echo "${file#"$ROOT"} holds an ESL password other than ClueCon"
  done
  [ "$(yq e '.freeswitch.esl_password' "${esl_files[2]}")" = ClueCon ] || echo "${esl_files[2]#"$ROOT"} holds an ESL password other than ClueCon"
  grep -qx 'HASURA_GRAPHQL_ADMIN_SECRET=bigbluebutton' "${hasura_files[0]}" && grep -qx 'admin_secret: bigbluebutton' "${hasura_files[1]}" ||
    echo "Hasura's admin secret is not its package default"
  for file in "$ROOT"/var/lib/bbb-deploy/* "$ROOT"/etc/letsencrypt/{accounts,live,archive,renewal}; do
    [ ! -e "$file" ] || [ "$file" = "$marker" ] || echo "${file#"$ROOT"} is there"
  done
  return 0
}

if [ "$(sed -n 's/^BAKE_KEY=//p' "$marker" 2>/dev/null)" = "$BAKE_KEY" ]; then
  say "$BAKE_NAME is baked already; checking that nothing of this host is left"
else
  bbb_install_init
  # The -c secret: made here, on no command line, thrown away with the TURN servers it is written into.
  bbb_install_run "$INSTALLER_URL" "$PRIVATE_IPV4" "$PRIVATE_IPV4" "turn.$placeholder" "$(random_hex 32)" -- \
    -v "$VERSION" -s "$placeholder" -c
  say "stopping BigBlueButton"
  bbb-conf --stop >/dev/null || fail "bbb-conf --stop failed"
  systemctl stop nginx || fail "cannot stop nginx"
fi
scrub
left=$(identity_left)
[ -z "$left" ] || fail "what identifies this host is still there:" "$left"
(
  umask 077
  printf 'BAKE_KEY=%s\nBAKE_NAME=%s\nPUBLIC_IPV4=%s\nPRIVATE_IPV4=%s\n' "$BAKE_KEY" "$BAKE_NAME" "$PUBLIC_IPV4" "$PRIVATE_IPV4" >"$marker"
)
chmod 0600 "$marker"
# Last, the keys SSH lets the program in with (cloud-init gives a clone its own): until here a run that failed is
# run again over SSH by the next pulumi up.
rm -f "$ROOT/root/.ssh/authorized_keys" "$ROOT"/home/*/.ssh/authorized_keys
for file in "$ROOT/root/.ssh/authorized_keys" "$ROOT"/home/*/.ssh/authorized_keys; do
  [ ! -e "$file" ] || fail "cannot remove ${file#"$ROOT"}"
done
sync
systemd-run --on-active=5 --quiet systemctl poweroff ||
  fail "cannot schedule the power-off (systemd-run); the builder takes no SSH key any more: replace its VM" \
    "(pulumi up --replace <the URN ending in ::bake-${BAKE_KEY:0:12}-builder-vm>) or power it off (openstack server stop ${BAKE_NAME}-builder)"
say "baked $BAKE_NAME (BigBlueButton $VERSION, key $BAKE_KEY): nothing of this host left; powering off in 5 s"
