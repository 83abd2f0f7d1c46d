// Stub commands for the remote steps, shared by the sandbox tests and the SSH test. Each records its
// arguments (the Sandbox does that) and behaves like the real one as far as the steps can tell.
import * as fs from "fs";
import * as path from "path";
import { Sandbox } from "./sandbox";

/**
 * systemctl: remembers which units run in $SANDBOX/units/<unit>; `is-active` answers from there.
 * SYSTEMCTL_FAIL=<verb> makes that verb fail.
 */
const SYSTEMCTL = `
verb=$1; shift
[ "\${SYSTEMCTL_FAIL:-}" = "$verb" ] && exit 1
mkdir -p "$SANDBOX/units"
unit=""; for a in "$@"; do case $a in -*) ;; *) unit=$a ;; esac; done
case $verb in
  start|restart) touch "$SANDBOX/units/$unit" ;;
  stop) rm -f "$SANDBOX/units/$unit" ;;
  is-active) [ -f "$SANDBOX/units/$unit" ] ;;
esac`;

/** certbot: "issues" a certificate by copying the sandbox's test certificate into the live directory. */
const CERTBOT = `
[ -n "\${CERTBOT_FAIL:-}" ] && { echo "Challenge failed for domain" >&2; exit 1; }
domain=""; prev=""; for a in "$@"; do [ "$prev" = "-d" ] && domain=$a; prev=$a; done
mkdir -p "$ROOT/etc/letsencrypt/live/$domain"
cp "$SANDBOX/cert/fullchain.pem" "$SANDBOX/cert/privkey.pem" "$ROOT/etc/letsencrypt/live/$domain/"`;

/** install -m MODE -o USER -g GROUP SRC DST: copies and sets the mode (owners are only recorded). */
const INSTALL = `
mode=""; args=()
while [ $# -gt 0 ]; do case $1 in -m) mode=$2; shift 2 ;; -o|-g) shift 2 ;; *) args+=("$1"); shift ;; esac; done
cp "\${args[0]}" "\${args[1]}" && chmod "$mode" "\${args[1]}"`;

/**
 * curl: a download of bbb-install.sh gets $SANDBOX/installer.sh; an API call is answered like BBB does:
 * the checksum is checked against securitySalt in bbb-web.properties, getMeetings lists the meetings in
 * $SANDBOX/meetings (one meeting id a line). API_DOWN=1: no answer.
 */
const CURL = `
out=""; url=""; prev=""
for a in "$@"; do [ "$prev" = "-o" ] && out=$a; case $a in http*) url=$a ;; esac; prev=$a; done
case $url in
  */bbb-install.sh)
    [ -n "\${DOWNLOAD_FAIL:-}" ] && { echo "curl: (22) The requested URL returned error: 404" >&2; exit 22; }
    cp "$SANDBOX/installer.sh" "$out" ;;
  */bigbluebutton/api/*)
    [ -n "\${API_DOWN:-}" ] && { echo "curl: (7) Failed to connect" >&2; exit 7; }
    rest=\${url#*/bigbluebutton/api/}; call=\${rest%%\\?*}; query=\${rest#*\\?}
    sum=\${query##*checksum=}; query=\${query%checksum=*}; query=\${query%&}
    salt=$(sed -n 's/^securitySalt=//p' "$ROOT/etc/bigbluebutton/bbb-web.properties")
    want=$(printf '%s%s%s' "$call" "$query" "$salt" | sha1sum | cut -d' ' -f1)
    if [ "$sum" != "$want" ]; then
      echo "<response><returncode>FAILED</returncode><messageKey>checksumError</messageKey></response>"; exit 0
    fi
    printf '<response><returncode>SUCCESS</returncode><meetings>'
    [ -f "$SANDBOX/meetings" ] && while read -r id; do printf '<meeting><meetingID>%s</meetingID></meeting>' "$id"; done < "$SANDBOX/meetings"
    echo '</meetings></response>' ;;
  *) echo "curl: unexpected URL $url" >&2; exit 3 ;;
esac`;

/** bbb-conf: --secret prints the current one (as BBB does), --setsecret stores it, --restart succeeds. */
const BBB_CONF = `
props="$ROOT/etc/bigbluebutton/bbb-web.properties"
case $1 in
  --secret) printf '\\n    URL: https://%s/bigbluebutton/\\n    Secret: %s\\n\\n' "$(hostname)" "$(sed -n 's/^securitySalt=//p' "$props")" ;;
  --setsecret) [ -n "\${SETSECRET_BROKEN:-}" ] && exit 0; sed -i "s/^securitySalt=.*/securitySalt=$2/" "$props"; echo "Setting secret to $2" ;;
  --restart) echo "Restarting BigBlueButton ..." ;;
esac`;

/**
 * The bbb-install.sh the stub curl hands out: records its arguments, prints them (as the real one may),
 * then "installs" BigBlueButton: bbb-conf and bbb-web.properties with a secret of its own.
 */
const INSTALLER = `#!/usr/bin/env bash
SANDBOX=\${SANDBOX:-$(cd "$(dirname "$0")/../../../.." && pwd)}
printf '%s\\n' "bbb-install.sh $*" >> "$SANDBOX/calls.log"
echo "Installing with $*"
[ "\${INSTALLER_RC:-0}" = 0 ] || exit "$INSTALLER_RC"
mkdir -p "$SANDBOX/root/etc/bigbluebutton"
props="$SANDBOX/root/etc/bigbluebutton/bbb-web.properties"
[ -f "$props" ] || printf 'bigbluebutton.web.serverURL=https://bbb\\nsecuritySalt=InstallerMadeThisSecret0123456789abcdefgh\\n' > "$props"
cp "$SANDBOX/bbb-conf.stub" "$SANDBOX/bin/bbb-conf"
`;

/** A self-signed certificate and key for the stub certbot (and the real coturn). */
export const TEST_CERT_SUBJECT = "/CN=turn.example.org";

export function installStubs(box: Sandbox): void {
    box.stub("systemctl", SYSTEMCTL);
    box.stub("certbot", CERTBOT);
    box.stub("install", INSTALL);
    box.stub("curl", CURL);
    box.stub("apt-get");
    box.stub("chown");
    box.stub("hostname", "echo bbb-test-host");
    box.write("installer.sh", INSTALLER);
    box.stub("bbb-conf", BBB_CONF);
    fs.renameSync(path.join(box.bin, "bbb-conf"), box.file("bbb-conf.stub"));
    box.write("cert/fullchain.pem", "-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n");
    box.write("cert/privkey.pem", "-----BEGIN PRIVATE KEY-----\ntest\n-----END PRIVATE KEY-----\n");
}

/** Makes the sandbox look like a host where bbb-install.sh has run, answering to `secret`. */
export function installedBbb(box: Sandbox, secret: string): void {
    fs.copyFileSync(box.file("bbb-conf.stub"), path.join(box.bin, "bbb-conf"));
    box.write("root/etc/bigbluebutton/bbb-web.properties", `bigbluebutton.web.serverURL=https://bbb-1.example.org\nsecuritySalt=${secret}\n`);
}
