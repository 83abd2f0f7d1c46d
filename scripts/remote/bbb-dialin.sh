#!/usr/bin/env bash
# BBB host, after the installer: phone dial-in through a SIP provider. FreeSWITCH registers at the provider
# as gateway bbb-dialin on its external profile (port SIP_PORT, context public); a call to the DID is answered,
# asks for the conference PIN (PIN_DIGITS digits, the length of BBB's voice bridge numbers, which bbb-web's
# defaultNumDigitsForTelVoice sets elsewhere) and joins the conference of that number in BBB's default
# dialplan as an authorized caller. In a pool (PEERS: the other BBB servers' addresses), a server joins the
# caller only to a conference it hosts (one with a web participant's audio, as BBB's docs check it); for
# any other PIN it forwards the call over SIP to the other servers in turn as bbbpin-<PIN>, and a server
# accepts such a call from a peer only for a conference it hosts (404 otherwise, so the next one is tried).
# FreeSWITCH reloads only when a file changed.
# Inputs: FQDN DID (the digits the provider sends as destination) GATEWAY_HOST GATEWAY_USERNAME
#         GATEWAY_PASSWORD (secret: only ever in the gateway file, never printed nor on a command line)
#         PIN_DIGITS (5 to 11: BBB's default dialplan takes conference numbers of 5 to 11 digits);
#         PEERS (space-separated IPv4 addresses of the pool's other BBB servers; empty without Scalelite)
#         SIP_PORT (the port the firewall opens for SIP: FreeSWITCH's external profile must listen on it)
#         optional GATEWAY_DROP_SECONDS (default 3): the wait between dropping a changed gateway and rescanning.
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${FQDN:?}" "${DID:?}" "${GATEWAY_HOST:?}" "${GATEWAY_USERNAME:?}" "${GATEWAY_PASSWORD:?}" "${PIN_DIGITS:?}" "${SIP_PORT:?}"
PEERS=${PEERS?}
read -r -a peers <<<"$PEERS"
for peer in "${peers[@]}"; do
  [[ $peer =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || fail "PEERS must be IPv4 addresses, got '$peer'"
done
[[ $DID =~ ^[0-9]{3,20}$ ]] || fail "the dial-in number (DID) must be the 3 to 20 digits the provider sends as destination, got '$DID'"
[[ $PIN_DIGITS =~ ^([5-9]|1[01])$ ]] ||
  fail "PIN_DIGITS must be 5 to 11 (BBB's dialplan takes conference numbers of 5 to 11 digits), got '$PIN_DIGITS'"
[[ $GATEWAY_HOST =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$ ]] ||
  fail "the SIP gateway host must be a host name or address with an optional :port, got '$GATEWAY_HOST'"
for name in GATEWAY_USERNAME GATEWAY_PASSWORD; do
  value=${!name}
  # Printable characters only; FreeSWITCH's pre-processor would expand $${...} in the XML.
  [[ $value =~ ^[[:print:]]+$ ]] || fail "$name must be printable characters on one line"
  [[ $value != *"\$\${"* ]] || fail "$name must not contain '\$\${' (FreeSWITCH would expand it)"
done
unset value

conf=$ROOT/opt/freeswitch/conf
if [ ! -d "$conf/sip_profiles" ] || [ ! -d "$conf/dialplan" ]; then
  fail "FreeSWITCH is not installed ($conf is missing): bbb-install.sh has not completed on this host"
fi
external_port=$(sed -n 's/.*data="external_sip_port=\([0-9]*\)".*/\1/p' "$conf/vars.xml" 2>/dev/null | tail -n1)
[ -z "$external_port" ] || [ "$external_port" = "$SIP_PORT" ] ||
  fail "FreeSWITCH's external SIP profile listens on port $external_port, but the firewall opens $SIP_PORT to the provider"
fs_cli_ready

xml_escape() {
  local s=$1
  s=${s//'&'/'&amp;'}
  s=${s//'<'/'&lt;'}
  s=${s//'>'/'&gt;'}
  s=${s//'"'/'&quot;'}
  s=${s//"'"/'&apos;'}
  printf '%s' "$s"
}

# A reload that failed is tried again on the next run, even though the files are then unchanged.
mkdir -p "$conf/sip_profiles/external" "$conf/dialplan/public"
gateway_changed=false
dialplan_changed=false
pending gateway && gateway_changed=true
pending dialplan && dialplan_changed=true

# The password lives only here: root and FreeSWITCH (freeswitch:daemon) may read it.
if write_if_changed "$conf/sip_profiles/external/bbb-dialin.xml" 0640 freeswitch:daemon <<GATEWAY; then gateway_changed=true; fi
<include>
  <!-- Managed by bbb (Pulumi, bbb-dialin step); changes here are overwritten. -->
  <gateway name="bbb-dialin">
    <param name="proxy" value="$(xml_escape "$GATEWAY_HOST")"/>
    <param name="username" value="$(xml_escape "$GATEWAY_USERNAME")"/>
    <param name="password" value="$(xml_escape "$GATEWAY_PASSWORD")"/>
    <param name="extension" value="$DID"/>
    <param name="register" value="true"/>
    <param name="context" value="public"/>
    <param name="retry-seconds" value="10"/>
    <param name="ping" value="25"/>
  </gateway>
</include>
GATEWAY

# A caller to the DID is asked for the PIN (the conference's voice bridge number) and handed to BBB's
# conference extension in the default context with bbb_authorized=true. A caller who gives no valid PIN in
# three tries hears the bad-PIN prompt and may try twice more, then is hung up on.
pin_prompt="$PIN_DIGITS $PIN_DIGITS 3 30000 #"

# In a pool: forward a PIN this server does not host to the peers in turn; take peers' forwarded calls for
# the conferences hosted here. Only the peers' addresses are trusted for bbbpin- calls.
pool_extensions() {
  local targets="" peer peer_pattern=""
  for peer in "${peers[@]}"; do
    targets+="${targets:+|}sofia/external/bbbpin-\${pin}@$peer:$SIP_PORT"
    peer_pattern+="${peer_pattern:+|}${peer//./\\.}"
  done
  cat <<POOL

  <extension name="bbb_dialin_forward">
    <condition field="destination_number" expression="^SEND_TO_CONFERENCE\$"/>
    <condition field="\${pin}" expression="^\\d{$PIN_DIGITS}\$">
      <action application="set" data="continue_on_fail=true"/>
      <action application="set" data="hangup_after_bridge=true"/>
      <action application="bridge" data="$targets"/>
      <action application="transfer" data="BBB_DIALIN_NOT_FOUND XML public"/>
    </condition>
  </extension>
  <extension name="bbb_dialin_from_peer">
    <condition field="network_addr" expression="^($peer_pattern)\$"/>
    <condition field="destination_number" expression="^bbbpin-(\\d{$PIN_DIGITS})\$">
      <action application="set" data="pin=\$1"/>
      <action application="transfer" data="BBB_DIALIN_FROM_PEER XML public"/>
    </condition>
  </extension>
  <extension name="bbb_dialin_peer_conference">
    <condition field="destination_number" expression="^BBB_DIALIN_FROM_PEER\$"/>
    <condition field="\${conference \${pin} list}" expression="/sofia/">
      <action application="set" data="bbb_authorized=true"/>
      <action application="transfer" data="\${pin} XML default"/>
      <anti-action application="respond" data="404"/>
    </condition>
  </extension>
POOL
}
invalid=ivr/ivr-that_was_an_invalid_entry.wav
# The PIN's conditions: the conference must also be hosted here (a web participant's audio in it), so that a
# caller never opens an empty conference of a guessed PIN, which no meeting would ever join.
pin_condition="<condition field=\"\${pin}\" expression=\"^\\d{$PIN_DIGITS}\$\""
check_conditions="$pin_condition/>"$'\n    <condition field="${conference ${pin} list}" expression="/sofia/">'
pool=""
[ "${#peers[@]}" -eq 0 ] || pool=$(pool_extensions)
if write_if_changed "$conf/dialplan/public/bbb-dialin.xml" 0644 freeswitch:daemon <<DIALPLAN; then dialplan_changed=true; fi
<include>
  <!-- Managed by bbb (Pulumi, bbb-dialin step); changes here are overwritten. -->
  <extension name="bbb_dialin_from_provider">
    <condition field="destination_number" expression="^$DID\$">
      <action application="start_dtmf"/>
      <action application="answer"/>
      <action application="sleep" data="1000"/>
      <action application="play_and_get_digits" data="$pin_prompt conference/conf-pin.wav $invalid pin \\d+"/>
      <action application="transfer" data="SEND_TO_CONFERENCE XML public"/>
    </condition>
  </extension>
  <extension name="bbb_dialin_check_conference">
    <condition field="destination_number" expression="^SEND_TO_CONFERENCE\$"/>
    $check_conditions
      <action application="set" data="bbb_authorized=true"/>
      <action application="transfer" data="\${pin} XML default"/>
    </condition>
  </extension>$pool
  <extension name="bbb_dialin_bad_pin">
    <condition field="destination_number" expression="^(SEND_TO_CONFERENCE|BBB_DIALIN_NOT_FOUND)\$"/>
    <condition field="\${bbb_dialin_retries}" expression="^x{0,1}\$">
      <action application="set" data="bbb_dialin_retries=\${bbb_dialin_retries}x"/>
      <action application="unset" data="pin"/>
      <action application="play_and_get_digits" data="$pin_prompt conference/conf-bad-pin.wav $invalid pin \\d+"/>
      <action application="transfer" data="SEND_TO_CONFERENCE XML public"/>
    </condition>
  </extension>
  <extension name="bbb_dialin_give_up">
    <condition field="destination_number" expression="^(SEND_TO_CONFERENCE|BBB_DIALIN_NOT_FOUND)\$">
      <action application="playback" data="conference/conf-bad-pin.wav"/>
      <action application="hangup" data="CALL_REJECTED"/>
    </condition>
  </extension>
</include>
DIALPLAN

if [ "$gateway_changed" = false ] && [ "$dialplan_changed" = false ]; then
  say "the dial-in gateway and dialplan for $DID are unchanged"
  exit 0
fi
[ "$gateway_changed" = false ] || pending_add gateway
[ "$dialplan_changed" = false ] || pending_add dialplan

say "reloading the FreeSWITCH configuration"
fs_api reloadxml "$GATEWAY_PASSWORD"
if [ "$gateway_changed" = true ]; then
  # rescan adds new gateways but keeps a known one as it was: a changed gateway is dropped first.
  # The profile drops a killed gateway within a second or two; rescan then loads it anew.
  fs_cli_run "sofia profile external killgw bbb-dialin" >/dev/null 2>&1 || true
  sleep "${GATEWAY_DROP_SECONDS:-3}"
  fs_api "sofia profile external rescan" "$GATEWAY_PASSWORD"
  say "gateway bbb-dialin registers at $GATEWAY_HOST as $GATEWAY_USERNAME"
fi
pending_done gateway
pending_done dialplan
say "calls to $DID ($FQDN) ask for a $PIN_DIGITS-digit conference PIN"
