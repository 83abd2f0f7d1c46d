// Stub commands for the remote steps, shared by the sandbox tests and the SSH test. Each records its
// arguments (the Sandbox does that) and behaves like the real one as far as the steps can tell.
import * as fs from "fs";
import * as path from "path";
import { shellQuote } from "../components/remote";
import { Sandbox } from "./sandbox";

/**
 * systemctl, as systemd 249's (Ubuntu 22.04) src/systemctl/ answers what the steps ask: it remembers which units run
 * in $SANDBOX/units/<unit>; `is-active` answers from there (systemctl-is-active.c: prints the state, active, inactive
 * or failed, unless --quiet; exit 0, or 3, EXIT_PROGRAM_NOT_RUNNING). A masked unit ($SANDBOX/masked/<unit>) is
 * refused: `enable` prints "Failed to enable unit: Unit file /etc/systemd/system/<unit>.service is masked."
 * (systemctl-enable.c over the manager's install error for -ERFKILL, dbus-manager.c), a job prints "Failed to start
 * <unit>.service: Unit <unit>.service is masked." (systemctl-start-unit.c over bus_unit_validate_load_state,
 * dbus-unit.c); exit 1 (translate_bus_error_to_exit_status keeps the error, systemctl exits EXIT_FAILURE).
 * SYSTEMCTL_FAIL=<verb>, or "<verb> <unit>" for one unit only, makes that verb fail: a start, restart or try-restart
 * job as a unit whose process exits with an error (src/shared/bus-wait-for-jobs.c, log_job_error_with_service_result:
 * "Job for <unit>.service failed because the control process exited with error code." and where to look; exit 1), the
 * unit left failed, not running; a reload job likewise, the unit running on; `enable` as a unit systemd does not know
 * ("Failed to enable unit: Unit file <unit>.service does not exist.", install.c's -ENOENT), `enable --now` as a unit
 * enabled whose start job fails (as above); `is-active` as a failed unit (failed, exit 3). The messages were read on
 * systemd's main branch; that 249 prints them alike is assumed, as are daemon-reload's reason and the message of any
 * other verb.
 * A service's state is kept under its name without ".service" (as the steps mostly name it), any other unit's under
 * its whole name. `enable` and `disable` keep whether the unit is enabled ($SANDBOX/enabled/<unit>; with --now
 * they also start or stop it, as systemctl-enable.c does after the change). A unit systemd has no unit file of
 * (none in /etc/systemd/system or /lib/systemd/system under ROOT) cannot be disabled: "Failed to disable unit: Unit
 * file <unit> does not exist.", exit 1 (src/core/dbus-manager.c, install_error for -ENOENT); one that also does not
 * run is not loaded and cannot be stopped: "Failed to stop <unit>: Unit <unit> not loaded.", exit 5
 * (src/core/dbus-unit.c, bus_unit_queue_job: a stop of a unit not found and inactive is BUS_ERROR_NO_SUCH_UNIT,
 * which src/systemctl/systemctl-util.c's translate_bus_error_to_exit_status makes EXIT_NOTINSTALLED).
 */
const SYSTEMCTL = `
verb=$1; shift
mkdir -p "$SANDBOX/units" "$SANDBOX/enabled"
name=""; quiet=false; now=false
for a in "$@"; do case $a in --quiet) quiet=true ;; --now) now=true ;; -*) ;; *) name=$a ;; esac; done
case $name in *.*) full=$name ;; *) full=$name.service ;; esac
unit=\${full%.service}
has_file() { [ -e "$ROOT/etc/systemd/system/$full" ] || [ -e "$ROOT/lib/systemd/system/$full" ]; }
if [ -e "$SANDBOX/masked/$unit" ]; then
  case $verb in
    enable) echo "Failed to enable unit: Unit file /etc/systemd/system/$full is masked." >&2; exit 1 ;;
    start|restart|try-restart|reload) echo "Failed to $verb $full: Unit $full is masked." >&2; exit 1 ;;
  esac
fi
if [ -n "\${SYSTEMCTL_FAIL:-}" ] && { [ "$SYSTEMCTL_FAIL" = "$verb" ] || [ "$SYSTEMCTL_FAIL" = "$verb $name" ]; }; then
  case $verb in
    start|restart|try-restart|reload)
      [ "$verb" = reload ] || rm -f "$SANDBOX/units/$unit"
      printf 'Job for %s failed because the control process exited with error code.\nSee "systemctl status %s" and "journalctl -xeu %s" for details.\n' "$full" "$full" "$full" >&2
      exit 1 ;;
    enable)
      case " $* " in
        *" --now "*)
          printf 'Job for %s failed because the control process exited with error code.\nSee "systemctl status %s" and "journalctl -xeu %s" for details.\n' "$full" "$full" "$full" >&2 ;;
        *) echo "Failed to enable unit: Unit file $full does not exist." >&2 ;;
      esac
      exit 1 ;;
    is-active) $quiet || echo failed; exit 3 ;;
    daemon-reload) echo "Failed to reload daemon: Connection timed out" >&2; exit 1 ;;
    *) echo "Failed to $verb $full (SYSTEMCTL_FAIL)" >&2; exit 1 ;;
  esac
fi
case $verb in
  disable) has_file || { echo "Failed to disable unit: Unit file $full does not exist." >&2; exit 1; } ;;
  stop) has_file || [ -e "$SANDBOX/units/$unit" ] || { echo "Failed to stop $full: Unit $full not loaded." >&2; exit 5; } ;;
esac
case $verb in
  start|restart) touch "$SANDBOX/units/$unit" ;;
  stop) rm -f "$SANDBOX/units/$unit" ;;
  enable) touch "$SANDBOX/enabled/$unit"; ! $now || touch "$SANDBOX/units/$unit" ;;
  disable) rm -f "$SANDBOX/enabled/$unit"; ! $now || rm -f "$SANDBOX/units/$unit" ;;
  is-active)
    if [ -f "$SANDBOX/units/$unit" ]; then $quiet || echo active; else $quiet || echo inactive; exit 3; fi ;;
esac`;

/**
 * systemd-run --unit=NAME [--collect] [--quiet] COMMAND, as systemd-run (systemd 249, src/run/run.c) does without
 * --wait: starts COMMAND as a transient service and returns at once; the unit is active while it runs and, with
 * --collect, gone once it ended. Here: a background process, detached from the step (it outlives it). A name
 * taken by a unit that runs, or by a unit file (/etc/systemd/system/NAME.service), is refused as the manager
 * refuses a transient unit that is not pristine (dbus-manager.c, transient_unit_from_message: "Failed to start
 * transient service unit: Unit NAME.service was already loaded or has a fragment file.", exit 1; read on
 * systemd's main branch, 249 assumed alike). Without --unit, systemd-run names the unit run-u<n> (run.c,
 * make_unit_name). With --on-active=TIME it makes a transient timer that starts COMMAND TIME after now and returns
 * at once: here the timer is recorded in $SANDBOX/timers/<unit> ("TIME COMMAND"), never fired (a fired
 * `systemctl poweroff` would end the host).
 */
const SYSTEMD_RUN = `
unit=""; cmd=(); delay=""
for a in "$@"; do case $a in --unit=*) unit=\${a#--unit=} ;; --on-active=*) delay=\${a#--on-active=} ;; -*) ;; *) cmd+=("$a") ;; esac; done
unit=\${unit:-run-u$RANDOM}
mkdir -p "$SANDBOX/units"
if [ -n "$delay" ]; then
  mkdir -p "$SANDBOX/timers"; printf '%s %s\\n' "$delay" "\${cmd[*]}" > "$SANDBOX/timers/$unit"; exit 0
fi
if [ -e "$SANDBOX/units/$unit" ] || [ -e "$ROOT/etc/systemd/system/$unit.service" ]; then
  echo "Failed to start transient service unit: Unit $unit.service was already loaded or has a fragment file." >&2; exit 1
fi
touch "$SANDBOX/units/$unit"
( "\${cmd[@]}"; rm -f "$SANDBOX/units/$unit" ) </dev/null >/dev/null 2>&1 &`;

/**
 * certbot, as certbot 2.1.0 (Ubuntu's python3-certbot; certbot/_internal/main.py, cert_manager.py, storage.py)
 * behaves for what the steps use: `certonly`: the lineage is --cert-name; without it, one that names exactly the
 * requested names (main.py _find_lineage_for_domains, cert_manager.find_duplicative_certs), else a new one named
 * after the first -d (storage.py, RenewableCert.new_lineage); it "issues" by copying the sandbox's test certificate
 * into live/<lineage>/ and records the lineage's names in $SANDBOX/certbot/<lineage>; `certificates` prints each
 * lineage as cert_manager's human-readable report does ("No certificates found." when there is none); `delete
 * --cert-name X` removes one, or fails as storage.renewal_file_for_certname does ("No certificate found with name X
 * (expected /etc/letsencrypt/renewal/X.conf).", exit 1). CERTBOT_FAIL=1: every certonly fails as a challenge the CA
 * could not check does: auth_handler.py's report of the failed authorizations on stdout (the Detail is the CA's,
 * assumed), then AuthorizationError "Some challenges have failed." on stderr as log.py's post_arg_parse_except_hook
 * prints it, with exit_with_advice's line, exit 1. CERTBOT_LOCKED=<verb>: that command finds certbot's lock taken by
 * another certbot (e.g. certbot.timer's renewal, which main.py's make_or_verify_needed_dirs waits for no more than
 * any other command): lock.py's LockError, printed likewise, exit 1.
 */
const CERTBOT = `
mkdir -p "$SANDBOX/certbot"
if [ -n "\${CERTBOT_LOCKED:-}" ] && [ "$CERTBOT_LOCKED" = "$1" ]; then
  echo "Another instance of Certbot is already running." >&2
  echo "Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details." >&2
  exit 1
fi
case $1 in
  certificates)
    if [ -z "$(ls "$SANDBOX/certbot")" ]; then echo "No certificates found."; exit 0; fi
    echo "Found the following certs:"
    for f in "$SANDBOX/certbot"/*; do
      name=\${f##*/}
      printf '  Certificate Name: %s\n    Serial Number: 1\n    Key Type: RSA\n    Domains: %s\n    Expiry Date: 2027-01-01 (VALID: 89 days)\n' "$name" "$(cat "$f")"
    done
    exit 0 ;;
  delete)
    name=""; prev=""; for a in "$@"; do [ "$prev" = --cert-name ] && name=$a; prev=$a; done
    [ -f "$SANDBOX/certbot/$name" ] || { echo "No certificate found with name $name (expected /etc/letsencrypt/renewal/$name.conf)." >&2; exit 1; }
    rm -rf "$SANDBOX/certbot/$name" "$ROOT/etc/letsencrypt/live/$name"
    exit 0 ;;
esac
name=""; domains=(); prev=""; auth=webroot
for a in "$@"; do [ "$prev" = -d ] && domains+=("$a"); [ "$prev" = --cert-name ] && name=$a; [ "$a" = --standalone ] && auth=standalone; prev=$a; done
if [ -n "\${CERTBOT_FAIL:-}" ]; then
  printf '\nCertbot failed to authenticate some domains (authenticator: %s). The Certificate Authority reported these problems:\n' "$auth"
  for d in "\${domains[@]}"; do
    printf '  Domain: %s\n  Type:   connection\n  Detail: 203.0.113.9: Fetching http://%s/.well-known/acme-challenge/t0ken: Timeout during connect (likely firewall problem)\n\n' "$d" "$d"
  done
  echo "Some challenges have failed." >&2
  echo "Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details." >&2
  exit 1
fi
if [ -z "$name" ]; then
  want=$(printf '%s\n' "\${domains[@]}" | sort -u | paste -sd ' ' -)
  for f in "$SANDBOX/certbot"/*; do
    [ -f "$f" ] && [ "$(tr ' ' '\n' < "$f" | sed '/^$/d' | sort -u | paste -sd ' ' -)" = "$want" ] && { name=\${f##*/}; break; }
  done
fi
name=\${name:-\${domains[0]}}
printf '%s\n' "\${domains[*]}" > "$SANDBOX/certbot/$name"
mkdir -p "$ROOT/etc/letsencrypt/live/$name"
cp "$SANDBOX/cert/fullchain.pem" "$SANDBOX/cert/privkey.pem" "$ROOT/etc/letsencrypt/live/$name/"`;

/**
 * fs_cli (FreeSWITCH v1.10, which BigBlueButton 3.0 packages as bbb-freeswitch-core; libs/esl/fs_cli.c): refuses
 * a connection unless $HOME/.fs_cli_conf holds the event socket's password (FS_DOWN=1: no FreeSWITCH at all),
 * exiting 255 (the source line in its message is assumed); answers the API commands the steps use as FreeSWITCH
 * does, an error too with exit 0 ("-ERR ..."): reloadxml, the sofia commands (mod_sofia's sofia.c), `fsctl
 * loglevel` (mod_commands.c's ctl_function). RELOADXML_ERR=1: reloadxml fails, quoting the gateway file as
 * FreeSWITCH quotes a broken line (assumed); FSCTL_ERR=1: fsctl answers -ERR.
 */
export const FS_CLI = `
[ -n "\${FS_DOWN:-}" ] && { echo "[ERROR] fs_cli.c:1679 main() Error Connecting [Socket Connection Error]"; exit 255; }
want=$(sed -n 's/.*name="password" value="\\([^"]*\\)".*/\\1/p' "$ROOT/opt/freeswitch/conf/autoload_configs/event_socket.conf.xml")
have=$(sed -n 's/^password => //p' "$HOME/.fs_cli_conf" 2>/dev/null)
[ "$have" = "$want" ] || { echo "[ERROR] fs_cli.c:1679 main() Error Connecting [auth/login failed]"; exit 255; }
[ "$1" = -x ] || { echo "fs_cli: interactive use in a test" >&2; exit 2; }
case $2 in
  reloadxml)
    if [ -n "\${RELOADXML_ERR:-}" ]; then echo "-ERR [$(grep password "$ROOT/opt/freeswitch/conf/sip_profiles/external/bbb-dialin.xml")]"
    else echo "+OK [Success]"; fi ;;
  "sofia profile external killgw bbb-dialin") echo "+OK gateway marked for deletion." ;;
  "sofia profile external rescan") echo "Reload XML [Success]"; echo "+OK scan complete" ;;
  "fsctl loglevel "*)
    if [ -n "\${FSCTL_ERR:-}" ]; then echo "-ERR INVALID COMMAND"; else echo "+OK log level: $(echo "\${2#fsctl loglevel }" | tr a-z A-Z) [4]"; fi ;;
  *) echo "-ERR $2 Command not found!" ;;
esac`;

/**
 * curl for bbb-webhooks' API behind a BBB server's nginx (/bigbluebutton/api/hooks/), as bbb-webhooks v3.x answers
 * (src/out/webhooks/api/api.js and responses.js; its hooks, src/db/redis/hooks.js): nginx's 502 page while
 * bbb-webhooks is down, BigBlueButton stopped, or HOOKS_DOWN=1; the checksum is checked against bbb-webhooks' own
 * copy of the secret ($SANDBOX/webhooks/secret, else bbb-web's securitySalt); hooks/list lists the hooks in memory
 * ($SANDBOX/webhooks/mem); hooks/destroy never destroys a permanent hook, as in bbb-webhooks. `otherwise`: the bash
 * that answers any other URL.
 */
export function hooksApiCurl(otherwise: string): string {
    return `
url=""; for a in "$@"; do case $a in http*) url=$a ;; esac; done
case $url in
  https://*/bigbluebutton/api/hooks/*)
    if [ -n "\${HOOKS_DOWN:-}" ] || [ ! -f "$SANDBOX/units/bbb-webhooks" ] || [ -e "$SANDBOX/bbb-stopped" ]; then echo "<html><center><h1>502 Bad Gateway</h1></center></html>"; exit 0; fi
    rest=\${url#*/bigbluebutton/api/}; call=\${rest%%\\?*}; query=\${rest#*\\?}
    sum=\${query##*checksum=}; query=\${query%checksum=*}; query=\${query%&}
    secret=$(cat "$SANDBOX/webhooks/secret" 2>/dev/null || sed -n 's/^securitySalt=//p' "$ROOT/etc/bigbluebutton/bbb-web.properties")
    if [ "$sum" != "$(printf '%s%s%s' "$call" "$query" "$secret" | sha1sum | cut -d' ' -f1)" ]; then
      echo "<response><returncode>FAILED</returncode><messageKey>checksumError</messageKey><message>You did not pass the checksum security check.</message></response>"; exit 0
    fi
    case $call in
      hooks/list)
        printf '<response><returncode>SUCCESS</returncode><hooks>'
        for f in "$SANDBOX/webhooks/mem"/*; do
          [ -f "$f" ] || continue
          printf '<hook><hookID>%s</hookID><callbackURL><![CDATA[%s]]></callbackURL><permanentHook>%s</permanentHook><rawData>false</rawData></hook>' "\${f##*/}" "$(sed -n 1p "$f")" "$(sed -n 2p "$f")"
        done
        echo '</hooks></response>' ;;
      hooks/destroy) echo "<response><returncode>FAILED</returncode><messageKey>destroyMissingHook</messageKey><message>The hook informed was not found.</message></response>" ;;
    esac ;;
  *) ${otherwise} ;;
esac`;
}

/**
 * restic with a Swift repository (swift:CONTAINER:/PREFIX) kept in $SWIFT/CONTAINER/PREFIX, a directory outside
 * every host, as the cloud's object store is (a replaced VM finds its backups there): the real restic (Debian's) runs
 * on that directory. What restic needs of Swift is modelled: it reads the cloud's login from the environment
 * (restic v0.14.0 internal/backend/swift/config.go ApplyEnvironment: OS_AUTH_URL and, for an application
 * credential, OS_APPLICATION_CREDENTIAL_ID and _SECRET); without them Keystone refuses it, which restic reports
 * as a failure to open the repository (exit 1, cmd/restic/main.go). A repository whose config object is not there
 * answers as restic does on Swift, for every command but init (and help, version): OpenRepository Stats the config
 * (cmd/restic/global.go, v0.12.1 L746-749, v0.14.0 L754-757: "unable to open config file: %v\nIs there a
 * repository at the following location?\n%v", the location as given), the Swift backend's Stat wraps the error of
 * its HEAD (internal/backend/swift/swift.go, v0.12.1 L197-200, v0.14.0 L219-222: errors.Wrap(err,
 * "conn.Object")), and ncw/swift maps the 404 to ObjectNotFound, whose text is "Object Not Found" (swift.go's
 * objectErrorMap); restic prints a Fatal error as "Fatal: ..." and exits 1. (A local directory would say "stat
 * .../config: no such file or directory" instead.) Other repositories go to the real restic as they are.
 */
export function swiftRestic(swift: string): string {
    return `
case \${RESTIC_REPOSITORY:-} in
  swift:*)
    spec=\${RESTIC_REPOSITORY#swift:}; container=\${spec%%:*}; prefix=\${spec#*:}
    if [ -z "\${OS_AUTH_URL:-}" ] || [ -z "\${OS_APPLICATION_CREDENTIAL_ID:-}" ] || [ -z "\${OS_APPLICATION_CREDENTIAL_SECRET:-}" ]; then
      echo "Fatal: unable to open config file: Stat: Authorization Failure" >&2; exit 1
    fi
    mkdir -p "${swift}/$container"
    case \${1:-} in
      init | help | version | --help | -h) ;;
      *)
        if [ ! -e "${swift}/$container$prefix/config" ] && [[ " $* " != *" --help "* ]]; then
          printf 'Fatal: unable to open config file: conn.Object: Object Not Found\\nIs there a repository at the following location?\\n%s\\n' "$RESTIC_REPOSITORY" >&2
          exit 1
        fi ;;
    esac
    export RESTIC_REPOSITORY="${swift}/$container$prefix" ;;
esac
exec /usr/bin/restic "$@"`;
}

/**
 * redis-cli SREM <hooks set> <id> and DEL <hook prefix>:<id> on bbb-webhooks' stub Redis ($SANDBOX/webhooks/redis,
 * the keys of bbb-webhooks v3.x). As redis-cli (Redis 6, Ubuntu 22.04's redis-tools; src/redis-cli.c) prints a reply
 * when its stdout is no terminal: an integer bare, how many members or keys were removed (always 1 here, where Redis
 * answers 0 for none: the step discards the count, so it is not modelled). REDIS_DOWN=1: nothing listens on Redis's
 * port: cliConnect's "Could not connect to Redis at 127.0.0.1:6379: Connection refused", exit 1.
 */
export const WEBHOOKS_REDIS_CLI = `
[ -z "\${REDIS_DOWN:-}" ] || { echo "Could not connect to Redis at 127.0.0.1:6379: Connection refused" >&2; exit 1; }
r="$SANDBOX/webhooks/redis"
case "$1 $2" in
  "SREM bigbluebutton:webhooks:out:hooks") grep -vx -- "$3" "$r/set" > "$r/set.new" || true; mv "$r/set.new" "$r/set"; echo 1 ;;
  "DEL bigbluebutton:webhooks:out:hook:"*) rm -f "$r/hook:\${2#bigbluebutton:webhooks:out:hook:}"; echo 1 ;;
  *) echo "(error) unexpected redis-cli $*"; exit 1 ;;
esac`;

/**
 * install -m MODE -o USER -g GROUP SRC DST (coreutils 8.32, src/install.c): copies and sets the mode (owners are
 * only recorded); a SRC that is not there fails as install's copy does ("install: cannot stat 'SRC': No such file
 * or directory", exit 1).
 */
const INSTALL = `
mode=""; args=()
while [ $# -gt 0 ]; do case $1 in -m) mode=$2; shift 2 ;; -o|-g) shift 2 ;; *) args+=("$1"); shift ;; esac; done
[ -e "\${args[0]}" ] || { echo "install: cannot stat '\${args[0]}': No such file or directory" >&2; exit 1; }
cp "\${args[0]}" "\${args[1]}" && chmod "$mode" "\${args[1]}"`;

/**
 * curl: a download of bbb-install.sh gets $SANDBOX/installer.sh (DOWNLOAD_FAIL=1: GitHub's 404, which curl -f
 * turns into exit 22, CURLE_HTTP_RETURNED_ERROR, as curl 7.81's src/tool_operate.c and lib/strerror.c word it); an
 * API call is answered like BBB 3.0's bbb-web does (bigbluebutton-web's ApiController.groovy, getMeetings, and
 * its checksum check in ParamsProcessorUtil): the checksum is checked against the secret bbb-web runs with (see
 * BBB_CONF), getMeetings lists the meetings in $SANDBOX/meetings (one meeting id a line). API_DOWN=1 or
 * BigBlueButton stopped: no answer (curl's exit 7, CURLE_COULDNT_CONNECT; its message shortened).
 */
const CURL = `
out=""; url=""; prev=""
for a in "$@"; do [ "$prev" = "-o" ] && out=$a; case $a in http*) url=$a ;; esac; prev=$a; done
case $url in
  */bbb-install.sh)
    [ -n "\${DOWNLOAD_FAIL:-}" ] && { echo "curl: (22) The requested URL returned error: 404" >&2; exit 22; }
    cp "$SANDBOX/installer.sh" "$out" ;;
  */bigbluebutton/api/*)
    { [ -n "\${API_DOWN:-}" ] || [ -e "$SANDBOX/bbb-stopped" ]; } && { echo "curl: (7) Failed to connect" >&2; exit 7; }
    rest=\${url#*/bigbluebutton/api/}; call=\${rest%%\\?*}; query=\${rest#*\\?}
    sum=\${query##*checksum=}; query=\${query%checksum=*}; query=\${query%&}
    # bbb-web answers to the secret it started with (running-salt), or else to the file's.
    salt=$(cat "$SANDBOX/running-salt" 2>/dev/null || sed -n 's/^securitySalt=//p' "$ROOT/etc/bigbluebutton/bbb-web.properties")
    want=$(printf '%s%s%s' "$call" "$query" "$salt" | sha1sum | cut -d' ' -f1)
    if [ "$sum" != "$want" ]; then
      echo "<response><returncode>FAILED</returncode><messageKey>checksumError</messageKey></response>"; exit 0
    fi
    printf '<response><returncode>SUCCESS</returncode><meetings>'
    [ -f "$SANDBOX/meetings" ] && while read -r id; do printf '<meeting><meetingID>%s</meetingID></meeting>' "$id"; done < "$SANDBOX/meetings"
    echo '</meetings></response>' ;;
  *) echo "curl: unexpected URL $url" >&2; exit 3 ;;
esac`;

/**
 * docker: containers live in $SANDBOX/docker/<name>/ (spec label, args, running); networks in
 * $SANDBOX/docker/networks/. `docker exec [-i] scalelite-api bin/rake TASK` emulates Scalelite's rake tasks (v1.8.5,
 * lib/tasks/servers.rake and status.rake) with SERVER_ID_IS_HOSTNAME (servers:sync as SCALELITE_SYNC below; the
 * container gets the stdin only with -i): servers in $SANDBOX/scalelite/<id>/{url,secret,state,load_multiplier,tag},
 * the load multiplier printed by `servers` as Ruby's BigDecimal prints it (1.0 is 0.1e1), the number of meetings its poller last saw on a server in
 * $SANDBOX/scalelite/<id>/meetings (none: never polled, so `status` leaves the cells blank as Tabulo prints nil).
 * `docker exec postgres pg_isready` answers as PostgreSQL's pg_isready exits (src/bin/scripts/pg_isready.c: 0
 * accepting, 2 no response); `docker run --rm <api image> bundle exec rake db:prepare` prepares Scalelite's database
 * (Rails 7.2's db:prepare, activerecord's railties/databases.rake, which Scalelite v1.8.5's bin/setup uses) or fails
 * as ActiveRecord does without PostgreSQL (its PG connection adapter; the wording assumed). The CLI's own answers are
 * the docker CLI's (docker/cli 24 to 29: cli/command/container/, image/, network/): `inspect` of what is not there
 * "Error: No such object: NAME", exit 1. DOCKER_FAIL=<verb>, or "<verb> <subcommand>" (e.g. "network create"), makes
 * that command fail as the daemon refuses it, its message printed by the CLI (exit 1; `docker run`, as run.go's
 * reportError does for any daemon error, exit 125 with "See 'docker run --help'."): pull, a tag the registry does not
 * have (the distribution API's MANIFEST_UNKNOWN: "manifest for IMAGE not found: manifest unknown: manifest unknown");
 * start, a port another process holds (libnetwork's "Bind for 0.0.0.0:443 failed: port is already allocated", then
 * start.go's "Error: failed to start containers: NAME"); network create, the daemon's address pools used up
 * (libnetwork's ipam: "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to
 * the network"); run, the name taken by a container the daemon still has (moby daemon/names.go's "Conflict. The
 * container name ... is already in use"); exec, a container that stopped meanwhile ("container NAME is not running");
 * any other command, a message of our own (assumed). `docker ps -a --format '{{.Names}}'` prints every container's name,
 * one a line (docker/cli's cli/command/container/list.go, its formatter's .Names; without -a the running ones only).
 */
const DOCKER = `
verb=$1; shift
if [ -n "\${DOCKER_FAIL:-}" ] && { [ "$DOCKER_FAIL" = "$verb" ] || [ "$DOCKER_FAIL" = "$verb \${1:-}" ]; }; then
  case "$verb \${1:-}" in
    "pull "*) echo "Error response from daemon: manifest for \${!#} not found: manifest unknown: manifest unknown" >&2; exit 1 ;;
    "start "*)
      echo "Error response from daemon: driver failed programming external connectivity on endpoint $1 (c0ffee$1): Bind for 0.0.0.0:443 failed: port is already allocated" >&2
      echo "Error: failed to start containers: $1" >&2; exit 1 ;;
    "network create") echo "Error response from daemon: could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network" >&2; exit 1 ;;
    "network inspect") echo "Error response from daemon: network \${2:-} not found" >&2; exit 1 ;;
    "run "*)
      name=""; prev=""; for a in "$@"; do [ "$prev" = --name ] && name=$a; prev=$a; done
      echo "docker: Error response from daemon: Conflict. The container name \\"/$name\\" is already in use by container \\"c0ffee$name\\". You have to remove (or rename) that container to be able to reuse that name." >&2
      echo "See 'docker run --help'." >&2; exit 125 ;;
    "exec "*) c=$1; [ "$c" = -i ] && c=$2; echo "Error response from daemon: container $c is not running" >&2; exit 1 ;;
    *) echo "Error response from daemon: docker $verb failed (DOCKER_FAIL)" >&2; exit 1 ;;
  esac
fi
d="$SANDBOX/docker"; s="$SANDBOX/scalelite"; mkdir -p "$d/networks" "$s"
case $verb in
  inspect)
    format=""; [ "$1" = "-f" ] && { format=$2; shift 2; }
    [ -d "$d/$1" ] || { echo "Error: No such object: $1" >&2; exit 1; }
    case $format in *bbb.spec*) cat "$d/$1/spec" ;; *Running*) cat "$d/$1/running" ;; *) echo "{}" ;; esac ;;
  rm) [ "$1" = "-f" ] && shift; rm -rf "\${d:?}/$1" ;;
  start) [ -d "$d/$1" ] || { echo "Error: No such container: $1" >&2; exit 1; }; echo true > "$d/$1/running"; echo "$1" ;;
  stop) [ -d "$d/$1" ] && echo false > "$d/$1/running"; echo "$1" ;;
  image) [ "$1" = inspect ] && [ -e "$d/images/\${2//\//_}" ] ;;
  pull) [ "$1" = -q ] && shift; mkdir -p "$d/images"; touch "$d/images/\${1//\//_}"; echo "$1" ;;
  run)
    if [ "$1" = --rm ]; then
      # A one-shot container: Scalelite's api image preparing its database (bundle exec rake db:prepare),
      # which needs PostgreSQL up ($SANDBOX/pg-down: it is not). DB_PREPARE_FAIL=1: the task fails.
      case "$*" in
        *"--entrypoint sh bigbluebutton/greenlight:"*" -c cat "*)
          # A file of Greenlight's image (its WORKDIR is the app's root), as install_greenlight_v3 reads them.
          f=\${!#}; cat "$SANDBOX/greenlight-image/\${f#cat }"; exit ;;
        *"rake db:prepare"*)
          if [ -n "\${DB_PREPARE_FAIL:-}" ] || [ -e "$SANDBOX/pg-down" ]; then
            echo "ActiveRecord::ConnectionNotEstablished: connection to server at \"postgres\", port 5432 failed: Connection refused" >&2; exit 1
          fi
          touch "$SANDBOX/scalelite-db-prepared"; exit 0 ;;
        *) echo "unexpected docker run $*" >&2; exit 1 ;;
      esac
    fi
    name=""; spec=""; args=("$@")
    while [ $# -gt 0 ]; do case $1 in --name) name=$2; shift 2 ;; --label) case $2 in bbb.spec=*) spec=\${2#bbb.spec=} ;; esac; shift 2 ;; *) shift ;; esac; done
    mkdir -p "$d/$name"; echo "$spec" > "$d/$name/spec"; echo true > "$d/$name/running"
    printf '%s\\n' "\${args[@]}" > "$d/$name/args"; echo "c0ffee$name" ;;
  network)
    case $1 in inspect) [ -e "$d/networks/$2" ] ;; create) touch "$d/networks/$2" ;; esac ;;
  ps)
    [ "$*" = "-a --format {{.Names}}" ] || [ "$*" = "--format {{.Names}}" ] || { echo "docker ps stub: $* is not modelled" >&2; exit 1; }
    for c in "$d"/*/running; do
      [ -f "$c" ] || continue
      if [ "$1" = -a ] || [ "$(cat "$c")" = true ]; then c=\${c%/running}; echo "\${c##*/}"; fi
    done ;;
  exec)
    # Without -i the container's stdin is empty (docker/cli's exec attaches stdin only with -i).
    interactive=false; [ "$1" = "-i" ] && { interactive=true; shift; }
    container=$1; shift
    [ "$(cat "$d/$container/running" 2>/dev/null)" = true ] || { echo "Error response from daemon: No such container: $container" >&2; exit 1; }
    [ "$container" = scalelite-api ] && [ "$1" = true ] && exit 0
    # pg_isready (PostgreSQL's): exit 2, "no response", while $SANDBOX/pg-not-ready counts down (or pg-down).
    if [ "$container" = postgres ] && [ "$1" = pg_isready ]; then
      [ -e "$SANDBOX/pg-down" ] && exit 2
      n=$(cat "$SANDBOX/pg-not-ready" 2>/dev/null || echo 0)
      if [ "$n" -gt 0 ]; then echo $((n - 1)) > "$SANDBOX/pg-not-ready"; exit 2; fi
      exit 0
    fi
    [ "$container" = scalelite-api ] && [ "$1" = bin/rake ] || { echo "unexpected exec $container $*" >&2; exit 1; }
    shift
    missing() { [ -d "$s/$1" ] || { echo "ERROR: No server found with id: $1" >&2; exit 1; }; }
    # A number as Ruby's BigDecimal#to_s prints it (\`rake servers\` prints the load multiplier so): 1.0 is 0.1e1.
    bigdecimal() { awk -v x="$1" 'BEGIN { if (x == 0) { print "0.0"; exit } e = 0; while (x >= 1) { x /= 10; e++ } while (x < 0.1) { x *= 10; e-- } d = sprintf("%.15g", x); sub(/^0\\./, "", d); print "0." d "e" e }'; }
    for task in "$@"; do
    name=\${task%%[*}; argstr=""; case $task in *[*) argstr=\${task#*[}; argstr=\${argstr%]} ;; esac
    IFS=, read -r a1 a2 a3 _ <<< "$argstr"
    case $name in
      servers)
        [ -n "$(ls "$s")" ] || { echo "No servers are configured" >&2; exit 0; }
        for id in $(ls "$s"); do
          printf 'id: %s\\n\\turl: %s\\n\\tsecret: %s\\n\\t%s\\n\\tload: %s\\n\\tload multiplier: %s\\n\\tbbb version: \\n\\ttag: %s\\n\\tonline\\n' \\
            "$id" "$(cat "$s/$id/url")" "$(cat "$s/$id/secret")" "$(cat "$s/$id/state")" "$(cat "$s/$id/meetings" 2>/dev/null || echo 0).0" \\
            "$(bigdecimal "$(cat "$s/$id/load_multiplier" 2>/dev/null || echo 1)")" "$(cat "$s/$id/tag" 2>/dev/null)"
        done ;;
      status)
        printf '\\n HOSTNAME  STATE  STATUS  MEETINGS  USERS  LARGEST MEETING  VIDEOS  LOAD  BBB VERSION  TAG\\n'
        for id in $(ls "$s"); do
          m=$(cat "$s/$id/meetings" 2>/dev/null || true)
          printf ' %s  %s  online  %s  %s  %s  %s  %s\\n' "$id" "$(cat "$s/$id/state")" "$m" "\${m:+0}" "\${m:+0}" "\${m:+0}" "\${m:+$m.0}"
        done ;;
      servers:add)
        [ -n "$a1" ] && [ -n "$a2" ] || { echo "Error: Please input at least a URL and a secret!" >&2; exit 1; }
        id=\${a1#https://}; id=\${id%%/*}
        [ -d "$s/$id" ] && { echo "rake aborted!" >&2; echo "ActiveRecord::RecordNotSaved: Server already exists with id '$id'" >&2; exit 1; }
        mkdir -p "$s/$id"; echo "$a1" > "$s/$id/url"; echo "$a2" > "$s/$id/secret"; echo disabled > "$s/$id/state"; echo "\${a3:-1.0}" > "$s/$id/load_multiplier"
        echo OK; echo "id: $id" ;;
      servers:enable) missing "$a1"; echo "Enabling server $a1..."; echo enabled > "$s/$a1/state"; echo OK ;;
      servers:cordon) missing "$a1"; echo "Cordoning server $a1..."; echo cordoned > "$s/$a1/state"; echo OK ;;
      servers:disable) missing "$a1"; echo "Disabling server $a1..."; echo disabled > "$s/$a1/state"; echo OK ;;
      servers:remove) missing "$a1"; echo "Removing server $a1..."; rm -rf "\${s:?}/$a1"; echo OK ;;
      servers:panic)
        missing "$a1"; echo "Panicking server $a1..."
        for _ in $(seq "$(cat "$s/$a1/meetings" 2>/dev/null || echo 0)"); do echo "Clearing Meeting id=m"; done
        echo 0 > "$s/$a1/meetings"; [ -n "$a2" ] || echo disabled > "$s/$a1/state"; echo OK ;;
      servers:update) missing "$a1"; echo "Updating server $a1..."; [ -n "$a2" ] && echo "$a2" > "$s/$a1/secret"; echo OK ;;
      servers:sync)
        [ -n "$a1" ] || { echo "ERROR: Missing 'path' parameter" >&2; exit 1; }
        # A file inside the container: none is there (File.read raises Ruby's Errno::ENOENT).
        [ "$a1" = - ] || { echo "ERROR: No such file or directory @ rb_sysopen - $a1" >&2; exit 1; }
        input=""; if $interactive; then input=$(cat); fi
        printf '%s' "$input" | ${shellQuote(process.execPath)} "$SANDBOX/scalelite-sync.js" "$s" "$a2" "$a3" || exit 1 ;;
      *) echo "rake aborted!" >&2; echo "Don't know how to build task '$task'" >&2; exit 1 ;;
    esac
    done ;;
  compose)
    # Docker Compose v2 (docker-compose-plugin v2.40, docker/compose: cmd/compose/): reads a compose file with or
    # without a version: key (the Compose Specification). $SANDBOX/no-compose-plugin: not installed, as the docker
    # CLI then answers (cli/cobra.go's unknown-command error). \`-f F up -d\` records the image each service of F
    # runs in $SANDBOX/docker/compose/<service>, starts its container, and makes the host directories of its bind mounts (\`- ./HOST:CTR\`,
    # relative to the file) that are missing, as the daemon does for a short-syntax bind mount ("always created as
    # a directory", Docker's bind mounts docs); COMPOSE_FAIL=1 makes up -d fail as a service that cannot start
    # does (the daemon's message assumed).
    [ -e "$SANDBOX/no-compose-plugin" ] && { echo "docker: 'compose' is not a docker command." >&2; exit 1; }
    [ "$1" = version ] && { echo "Docker Compose version v2.40.3"; exit 0; }
    [ "$1" = -f ] || { echo "docker compose: unexpected $*" >&2; exit 1; }
    file=$2; shift 2
    [ -f "$file" ] || { echo "open $file: no such file or directory" >&2; exit 1; }
    case $* in
      pull | down) ;;
      "up -d")
        [ -z "\${COMPOSE_FAIL:-}" ] || { echo "Error response from daemon: failed to create task for container greenlight-v3" >&2; exit 1; }
        mkdir -p "$d/compose"
        awk '/^  [A-Za-z0-9_-]+:$/ { svc = substr($1, 1, length($1) - 1) } /^    image: / && svc { print $2 > (dir "/" svc) }' dir="$d/compose" "$file"
        sed -n 's|^      - \\./\\([^:]*\\):.*|\\1|p' "$file" | while read -r bind; do mkdir -p "$(dirname "$file")/$bind"; done
        # Each service's container, by its container_name (the Compose Specification), running.
        sed -n 's|^    container_name: ||p' "$file" | while read -r name; do mkdir -p "$d/$name"; echo true > "$d/$name/running"; done ;;
      *) echo "docker compose: unexpected $*" >&2; exit 1 ;;
    esac ;;
  *) echo "docker: unexpected verb $verb" >&2; exit 1 ;;
esac`;

/**
 * Scalelite's `rake servers:sync[path,mode,dryrun]` (v1.8.5, lib/tasks/servers.rake L232-241 and lib/server_sync.rb
 * L21-173), run by the docker stub on its servers ($SANDBOX/scalelite/<id>/: url, secret, state, load_multiplier, tag,
 * meetings): the YAML document from stdin (path -; the docker stub hands it over only with docker exec -i, else it is
 * empty), `servers` mapping ids to url (default https://<id>/bigbluebutton/api), secret (required), enabled (default
 * true), load_multiplier (default 1.0, more than 0) and tag; each checked first, in its order, then created (disabled:
 * no state) or updated, enabled when it should be and is not, cordoned when it should not be and is; servers not
 * listed are kept (mode keep), or removed when Scalelite sees no meeting on them and else cordoned (cordon, the
 * default), or their meetings ended and removed (force); dryrun changes nothing. A failure is the task's "ERROR:
 * <message>" on stderr, exit 1 (a YAML syntax error's message is Psych's, assumed). What it logs goes to Rails' logger
 * (stdout in the image; the lines' format assumed).
 */
const SCALELITE_SYNC = `
const fs = require("fs");
const path = require("path");
const YAML = require(${JSON.stringify(require.resolve("yaml"))});
const [dir, modeArg, dryrunArg] = process.argv.slice(2);
const fail = (message) => { console.error("ERROR: " + message); process.exit(1); };
const log = (line) => console.log(line);
// Ruby's truthiness and ActiveSupport's blank?/presence.
const truthy = (v) => v !== false && v !== null && v !== undefined;
const blank = (v) => v === null || v === undefined || v === false || (typeof v === "string" && v.trim() === "") || (typeof v === "object" && Object.keys(v).length === 0);
const presence = (v) => (blank(v) ? null : v);
const number = (v) => (typeof v === "number" ? v : parseFloat(String(v)) || 0);
let doc;
try {
  doc = YAML.parse(fs.readFileSync(0, "utf8"));
} catch (e) {
  fail("(<unknown>): " + String(e.message).split("\\n")[0]);
}
// YAML.safe_load of nothing is false (Psych), null here: neither is a Hash.
if (doc === null || typeof doc !== "object" || Array.isArray(doc)) fail("Invalid YAML document");
const servers = doc.servers;
if (servers === null || typeof servers !== "object" || Array.isArray(servers)) fail("Servers parameter not a hash");
const modes = ["keep", "cordon", "force"];
const mode = modeArg || "cordon";
if (!modes.includes(mode)) fail("Unknown sync mode '" + mode + "' (choose: " + modes.join(" ") + ")");
const dryrun = !!dryrunArg && !["n", "no", "false"].includes(dryrunArg.toLowerCase());
const known = ["url", "secret", "enabled", "load_multiplier", "tag", "load", "state", "bbb_version", "online"];
for (const [id, params] of Object.entries(servers)) {
  if (params === null || typeof params !== "object") fail("undefined method '[]' for " + (params === null ? "nil" : "an instance of " + typeof params));
  if (params.url == null) params.url = "https://" + id + "/bigbluebutton/api";
  params.enabled = params.enabled == null || truthy(params.enabled);
  if (params.load_multiplier == null) params.load_multiplier = 1.0;
  params.tag = presence(params.tag);
  const bad = Object.keys(params).filter((k) => !known.includes(k));
  if (!/^[a-zA-Z0-9_.-]+$/.test(id)) fail("Server id=" + id + " contains invalid characters");
  if (blank(params.secret)) fail("Server id=" + id + " has no secret");
  if (bad.length > 0) fail("Server id=" + id + " has bad parameters: [" + bad.map((k) => JSON.stringify(k)).join(", ") + "]");
  if (number(params.load_multiplier) <= 0) fail("Server id=" + id + " has invalid load_multiplier=" + params.load_multiplier);
  let ok = false;
  try { const u = new URL(String(params.url)); ok = (u.protocol === "http:" || u.protocol === "https:") && u.hostname !== ""; } catch { ok = false; }
  if (!ok) fail("Server id=" + id + " has invalid url=" + params.url);
}
const file = (id, name) => path.join(dir, id, name);
const read = (id, name) => (fs.existsSync(file(id, name)) ? fs.readFileSync(file(id, name), "utf8").trim() : null);
const write = (id, name, value) => { if (!dryrun) fs.writeFileSync(file(id, name), String(value) + "\\n"); };
for (const [id, params] of Object.entries(servers)) {
  if (!fs.existsSync(path.join(dir, id))) {
    if (!dryrun) {
      fs.mkdirSync(path.join(dir, id), { recursive: true });
      write(id, "url", params.url); write(id, "secret", params.secret); write(id, "load_multiplier", params.load_multiplier);
      if (params.tag !== null) write(id, "tag", params.tag);
      write(id, "state", "disabled");
    }
    log("[" + id + "] Server created");
    if (dryrun) continue;
  }
  if (read(id, "url") !== String(params.url)) { write(id, "url", params.url); log("[" + id + "] Server updated: url=" + params.url); }
  if (read(id, "secret") !== String(params.secret)) { write(id, "secret", params.secret); log("[" + id + "] Server updated: secret=*****"); }
  if (number(read(id, "load_multiplier") ?? 1) !== number(params.load_multiplier)) {
    write(id, "load_multiplier", params.load_multiplier); log("[" + id + "] Server updated: load_multiplier=" + params.load_multiplier);
  }
  if (presence(read(id, "tag")) !== (params.tag === null ? null : String(params.tag))) {
    if (!dryrun) { if (params.tag === null) fs.rmSync(file(id, "tag"), { force: true }); else write(id, "tag", params.tag); }
    log("[" + id + "] Server updated: tag=" + (params.tag ?? ""));
  }
  const enabled = read(id, "state") === "enabled";
  if (params.enabled && !enabled) { write(id, "state", "enabled"); log("[" + id + "] Server enabled"); }
  else if (!params.enabled && enabled) { write(id, "state", "cordoned"); log("[" + id + "] Server disabled (cordoned)"); }
}
for (const id of fs.readdirSync(dir)) {
  if (Object.prototype.hasOwnProperty.call(servers, id)) continue;
  if (mode === "keep") { log("[" + id + "] Server not removed"); continue; }
  const remove = () => { if (!dryrun) fs.rmSync(path.join(dir, id), { recursive: true, force: true }); log("[" + id + "] Server removed"); };
  if (number(read(id, "meetings") ?? 0) === 0) { remove(); continue; }
  if (read(id, "state") === "enabled") { write(id, "state", "cordoned"); log("[" + id + "] Server not empty. Cordoned for removal"); }
  if (mode === "cordon") continue;
  log("[" + id + "] Server not empty. Ending meetings now...");
  write(id, "meetings", 0);
  remove();
}
`;

/**
 * docker-compose 1.24.0, which install_docker (bbb-install.sh v3.0.x-release, L1379-1410) downloads from
 * docker/compose's releases into /usr/local/bin unless an executable is there. Compose 1.x reads a file without
 * a version: key as the version 1 format, whose top-level keys are services (so Greenlight 3.8's compose file,
 * which has none, is refused); any other file it sends to the daemon with API version 1.25, which Docker 29
 * refuses (its minimum is 1.44; bigbluebutton/bbb-install#807).
 */
const COMPOSE_1_24 = `#!/usr/bin/env bash
[ "$1" = -f ] || { echo "docker-compose 1.24 stub: unexpected $*" >&2; exit 1; }
if ! grep -q '^version:' "$2"; then
  echo "ERROR: The Compose file '$2' is invalid because:" >&2
  echo "Unsupported config option for services: 'greenlight-v3'" >&2; exit 1
fi
echo "ERROR: client version 1.25 is too old. Minimum supported API version is 1.44, please upgrade your client to a newer version" >&2
exit 1
`;

/**
 * Files of the image bigbluebutton/greenlight (release-3.8.2.4; bigbluebutton/greenlight's docker-compose.yml
 * and sample.env at that tag, cut to what the steps touch): the compose file has no version: key.
 */
const GREENLIGHT_IMAGE_FILES: Record<string, string> = {
    "docker-compose.yml": `---
services:
  postgres:
    image: postgres:14-alpine3.20
    container_name: postgres
    volumes:
      - ./data/postgres/14/database_data:/var/lib/postgresql/data
    environment:
      - POSTGRES_USER=postgres
      - POSTGRES_PASSWORD=

  redis:
    image: redis:6.2-alpine3.20
    container_name: redis
    volumes:
      - ./data/redis/database_data:/data

  greenlight-v3:
    entrypoint: [bin/start]
    image: bigbluebutton/greenlight:v3
    container_name: greenlight-v3
    env_file: .env
    ports:
      - 127.0.0.1:5050:3000
    volumes:
      - ./data/greenlight-v3/storage:/usr/src/app/storage
`,
    "sample.env": "SECRET_KEY_BASE=\nBIGBLUEBUTTON_ENDPOINT=\nBIGBLUEBUTTON_SECRET=\nDATABASE_URL=\nREDIS_URL=\nLOG_LEVEL=info\n",
};

/**
 * bbb-conf, as bigbluebutton-config/bin/bbb-conf (bigbluebutton/bigbluebutton, v3.0.x; read at 00013312, the stored
 * copy with yq v4 and without Kurento: that it is v3.0.x-release's own is assumed) behaves: --secret prints the secret
 * of bbb-web.properties; --stop and --restart stop bigbluebutton.target, which ends every
 * meeting (moved from $SANDBOX/meetings to $SANDBOX/ended-meetings); --restart and --start start it with the
 * file's secret ($SANDBOX/running-salt; bbb-web reads it as Java properties, where the last line of a key counts). Like the real one it exits 0 whatever systemd made of it (its
 * --restart ends on a false `if [ $WATCH ]`): BBB_CONF_FAIL=--restart stops BigBlueButton, which then does
 * not come back (its API does not answer), and still exits 0. BBB_RELEASE_GONE=1: /etc/bigbluebutton/
 * bigbluebutton-release is gone (e.g. a package upgrade that did not finish): bbb-conf says BigBlueButton does not
 * appear to be installed and exits 1 before doing anything, whatever the option (its first check). Not modelled:
 * the checks --restart runs after starting (check_state: one puts FreeSWITCH's event-socket password on fs_cli's
 * command line, docs/upstream.md); any other option (--setsecret: the steps write its files themselves,
 * bbb-configure.sh) fails the test. A start writes Etherpad's API key where Etherpad is installed and has none.
 * --setip HOST, as its "--setip" block (docs/bake.md §3.3): serverURL PROTOCOL://HOST in bbb-web.properties
 * (PROTOCOL the current one's, http when none), securitySalt copied from bbb-web's package bigbluebutton.properties
 * when the file has none, bbbWebAPI and sharedSecret in bbb-apps-akka.conf, playback_host in bigbluebutton.yml, and
 * while bbb-fsesl-akka.conf's ESL password is ClueCon a new one (openssl rand -hex 8) in it, event_socket.conf.xml
 * and production.yml; then it stops and starts BigBlueButton. The real one's sed has the API secret on its command
 * line (docs/upstream.md, "Secrets on command lines"): not modelled (the stub writes it with printf); its yq has the
 * ESL password on its command line, as here.
 * --check prints its report's first line (its checks not modelled).
 */
const BBB_CONF = `
if [ -n "\${BBB_RELEASE_GONE:-}" ]; then
  printf '\\n# BigBlueButton does not appear to be installed.  Could not\\n# locate: /etc/bigbluebutton/bigbluebutton-release\\n\\n'; exit 1
fi
props="$ROOT/etc/bigbluebutton/bbb-web.properties"
stop() {
  echo "Stopping BigBlueButton"
  [ -s "$SANDBOX/meetings" ] && cat "$SANDBOX/meetings" >> "$SANDBOX/ended-meetings"
  : > "$SANDBOX/meetings"; touch "$SANDBOX/bbb-stopped"; rm -f "$SANDBOX/units/bbb-apps-akka"
}
start() {
  rm -f "$SANDBOX/bbb-stopped"; mkdir -p "$SANDBOX/units"; touch "$SANDBOX/units/bbb-apps-akka"
  sed -n 's/^securitySalt=//p' "$props" | tail -n1 > "$SANDBOX/running-salt"
  # Etherpad's first start writes its API key (etherpad-lite's APIHandler.js: "Creating with random contents").
  k="$ROOT/usr/share/etherpad-lite/APIKEY.txt"
  [ ! -d "\${k%/*}" ] || [ -s "$k" ] || head -c 32 /dev/urandom | sha256sum | cut -c1-64 > "$k"
  echo "Starting BigBlueButton"
}
case $1 in
  --secret) printf '\\n    URL: https://%s/bigbluebutton/\\n    Secret: %s\\n\\n' "$(hostname)" "$(sed -n 's/^securitySalt=//p' "$props")" ;;
  --stop) stop ;;
  --restart)
    stop
    [ "\${BBB_CONF_FAIL:-}" = --restart ] && { echo "Job for bigbluebutton.target failed."; exit 0; }
    start ;;
  --start) start ;;
  --setip)
    host=$2; touch "$props"
    url=$(sed -n 's/^bigbluebutton.web.serverURL=//p' "$props" | tail -n1); protocol=\${url%%://*}; [ -n "$url" ] || protocol=http
    if grep -q '^bigbluebutton.web.serverURL=' "$props"; then sed -i "s|^bigbluebutton.web.serverURL=.*|bigbluebutton.web.serverURL=$protocol://$host|" "$props"
    else echo "bigbluebutton.web.serverURL=$protocol://$host" >> "$props"; fi
    grep -q '^securitySalt=' "$props" || sed -n '/^securitySalt=/p' "$ROOT/usr/share/bbb-web/WEB-INF/classes/bigbluebutton.properties" >> "$props"
    salt=$(sed -n 's/^securitySalt=//p' "$props" | tail -n1)
    printf 'services {\\n  bbbWebAPI="%s://%s/bigbluebutton/api"\\n  sharedSecret="%s"\\n}\\n' "$protocol" "$host" "$salt" > "$ROOT/etc/bigbluebutton/bbb-apps-akka.conf"
    yml="$ROOT/usr/local/bigbluebutton/core/scripts/bigbluebutton.yml"
    [ -f "$yml" ] && sed -i "s|^playback_host: .*|playback_host: $host|" "$yml"
    fsesl="$ROOT/etc/bigbluebutton/bbb-fsesl-akka.conf"
    if grep -q 'password="ClueCon"' "$fsesl" 2>/dev/null; then
      esl=$(head -c 8 /dev/urandom | sha256sum | cut -c1-16)
      sed -i "s/password=\\"ClueCon\\"/password=\\"$esl\\"/" "$fsesl"
      sed -i "s/name=\\"password\\" value=\\"ClueCon\\"/name=\\"password\\" value=\\"$esl\\"/" "$ROOT/opt/freeswitch/etc/freeswitch/autoload_configs/event_socket.conf.xml"
      yq e -i ".freeswitch.esl_password = \\"$esl\\"" "$ROOT/etc/bigbluebutton/bbb-webrtc-sfu/production.yml"
    fi
    stop; start ;;
  --check) echo "BigBlueButton Server 3.0.19 (stub) ** Potential problems described below **" ;;
  *) echo "bbb-conf stub: $1 is not modelled" >&2; exit 2 ;;
esac`;

/**
 * What `apt-get install bigbluebutton` (the meta-package, BigBlueButton 3.0's packages under it) leaves on a host,
 * from the packages' own scripts (docs/bake.md Part 2, §2.2-2.4, which cites each; bigbluebutton/bigbluebutton
 * build/packages-template at the commits named there): every fpm-built postinst computes IP as the default route's
 * address (build/deb-helper.sh; here $SANDBOX/private-ip, else the host's own address as bbb-install.sh, which runs
 * apt-get, was given it: INTERNAL_IP behind NAT, else IP; else 10.0.0.11). dpkg's status file gets the packages.
 * bbb-web's postinst (after-install.sh L13-17, L26, L30-31): the package bigbluebutton.properties with a random
 * securitySalt and serverURL http://IP. bbb-freeswitch-core: vars.xml (external_*_ip=stun:..., and local_ip_v4=IP,
 * which its after-install.sh L11-12 writes where the file has the line: that 3.0's has it is assumed, docs/bake.md
 * "Open points"), event_socket.conf.xml with ClueCon (bbb-voice-conference's L6) and /opt/freeswitch/conf, the link
 * to etc/freeswitch. akka-bbb-fsesl's preinst (L5-19): bbb-fsesl-akka.conf with ClueCon. bbb-webrtc-sfu
 * (after-install.sh L9-39): its package config/default.yml with IP. bbb-graphql-server (after-install.sh L42-46): a
 * random Hasura admin secret in /etc/default/bbb-graphql-server and config.yaml (it ships "bigbluebutton", the
 * default it replaces). bbb-record-core: bigbluebutton.yml, playback_host 127.0.0.1 (the package's value assumed).
 * The package nginx site, port 80 only, server_name IP (newer bbb-html5 after-install.sh L23; 3.0 assumed alike).
 * bbb-config: bbb-conf, and /etc/bigbluebutton/bigbluebutton-release. Etherpad writes its APIKEY.txt at its first
 * start (see BBB_CONF). Ubuntu's nginx (a dependency): its unit file, /lib/systemd/system/nginx.service, which
 * systemctl looks for (its content does not matter here). The installs only: upgrades are not modelled.
 */
const BBB_PACKAGES = `
ip=$(cat "$SANDBOX/private-ip" 2>/dev/null || echo "\${INTERNAL_IP:-\${IP:-10.0.0.11}}")
rnd() { head -c 32 /dev/urandom | sha256sum | cut -c "1-$1"; }
mkdir -p "$ROOT/var/lib/dpkg"
for p in bigbluebutton bbb-config bbb-web bbb-html5 bbb-freeswitch-core bbb-fsesl-akka bbb-webrtc-sfu bbb-graphql-server bbb-etherpad bbb-record-core; do
  printf 'Package: %s\\nStatus: install ok installed\\nVersion: 1:3.0.19-1\\n\\n' "$p" >> "$ROOT/var/lib/dpkg/status"
done
mkdir -p "$ROOT/usr/share/bbb-web/WEB-INF/classes" "$ROOT/etc/bigbluebutton/bbb-webrtc-sfu" "$ROOT/opt/freeswitch/etc/freeswitch/autoload_configs" \\
  "$ROOT/usr/local/bigbluebutton/bbb-webrtc-sfu/config" "$ROOT/etc/default" "$ROOT/usr/share/bbb-graphql-server" "$ROOT/usr/local/bigbluebutton/core/scripts" \\
  "$ROOT/etc/nginx/sites-available" "$ROOT/usr/share/etherpad-lite" "$ROOT/usr/share/bigbluebutton/nginx"
printf 'bigbluebutton.web.serverURL=http://%s\\nsecuritySalt=%s\\n' "$ip" "$(rnd 40)" > "$ROOT/usr/share/bbb-web/WEB-INF/classes/bigbluebutton.properties"
fs=$ROOT/opt/freeswitch; [ -e "$fs/conf" ] || ln -s etc/freeswitch "$fs/conf"
printf '<include>\\n  <X-PRE-PROCESS cmd="set" data="local_ip_v4=%s"/>\\n  <X-PRE-PROCESS cmd="set" data="default_password=1234"/>\\n  <X-PRE-PROCESS cmd="set" data="external_rtp_ip=stun:stun.freeswitch.org"/>\\n  <X-PRE-PROCESS cmd="set" data="external_sip_ip=stun:stun.freeswitch.org"/>\\n</include>\\n' "$ip" > "$fs/conf/vars.xml"
printf '<configuration name="event_socket.conf" description="Socket Client">\\n  <settings>\\n    <param name="listen-ip" value="127.0.0.1"/>\\n    <param name="password" value="ClueCon"/>\\n  </settings>\\n</configuration>\\n' > "$fs/conf/autoload_configs/event_socket.conf.xml"
printf 'freeswitch {\\n    esl {\\n        host="127.0.0.1"\\n        port=8021\\n        password="ClueCon"\\n    }\\n}\\n' > "$ROOT/etc/bigbluebutton/bbb-fsesl-akka.conf"
printf 'freeswitch:\\n  ip: %s\\n  sip_ip: %s\\nmediasoup:\\n  webrtc:\\n    listenIps:\\n      - ip: %s\\n        announcedIp: %s\\n' "$ip" "$ip" "$ip" "$ip" > "$ROOT/usr/local/bigbluebutton/bbb-webrtc-sfu/config/default.yml"
hasura=$(rnd 32)
printf 'HASURA_GRAPHQL_ADMIN_SECRET=%s\\nHASURA_GRAPHQL_SERVER_PORT=8085\\n' "$hasura" > "$ROOT/etc/default/bbb-graphql-server"
printf 'version: 3\\nendpoint: http://127.0.0.1:8085\\nadmin_secret: %s\\n' "$hasura" > "$ROOT/usr/share/bbb-graphql-server/config.yaml"
printf 'playback_host: 127.0.0.1\\nplayback_protocol: http\\n' > "$ROOT/usr/local/bigbluebutton/core/scripts/bigbluebutton.yml"
printf 'server {\\n  listen 80;\\n  server_name %s;\\n  access_log /var/log/nginx/bigbluebutton.access.log;\\n}\\n' "$ip" > "$ROOT/etc/nginx/sites-available/bigbluebutton"
printf 'location /ws {\\n  proxy_pass http://%s:5066;\\n}\\n' "$ip" > "$ROOT/usr/share/bigbluebutton/nginx/sip.nginx"
echo "BIGBLUEBUTTON_RELEASE=3.0.19" > "$ROOT/etc/bigbluebutton/bigbluebutton-release"
mkdir -p "$ROOT/lib/systemd/system"; printf '[Unit]\\nDescription=nginx\\n' > "$ROOT/lib/systemd/system/nginx.service"
touch "$ROOT/etc/bigbluebutton/bbb-webrtc-sfu/production.yml"
cp "$SANDBOX/bbb-conf.stub" "$SANDBOX/bin/bbb-conf"
`;

/**
 * cloud-init (cloudinit/cmd/clean.py, canonical/cloud-init at 01dd4eeb, remove_artifacts and handle_clean_args):
 * \`status --wait\` exits CLOUD_INIT_RC (0 unless set); \`clean\` removes everything in /var/lib/cloud (the instance
 * state: the next boot runs cloud-init as a new instance) but seed/ (unless --seed), with --logs its logs
 * (/var/log/cloud-init.log, cloud-init-output.log, get_config_logfiles' defaults), and with --machine-id writes
 * "uninitialized" into /etc/machine-id, mode 0444 (on systemd: systemd makes a new machine id at the next boot).
 * It does not touch SSH host keys or authorized_keys (cc_ssh does, on the new instance's first boot).
 */
const CLOUD_INIT = `
case $1 in
  status) exit "\${CLOUD_INIT_RC:-0}" ;;
  clean)
    seed=false logs=false mid=false
    for a in "$@"; do case $a in --seed|-s) seed=true ;; --logs|-l) logs=true ;; --machine-id) mid=true ;; esac; done
    for f in "$ROOT/var/lib/cloud"/*; do [ -e "$f" ] || continue; { [ "\${f##*/}" = seed ] && ! $seed; } || rm -rf "$f"; done
    $logs && rm -f "$ROOT/var/log/cloud-init.log" "$ROOT/var/log/cloud-init-output.log"
    if $mid; then rm -f "$ROOT/etc/machine-id"; printf 'uninitialized\\n' > "$ROOT/etc/machine-id"; chmod 0444 "$ROOT/etc/machine-id"; fi
    exit 0 ;;
  *) echo "cloud-init stub: $1 is not modelled" >&2; exit 2 ;;
esac`;

/**
 * The bbb-install.sh the stub curl hands out, after bbb-install.sh at v3.0.x-release 26ce2d16 (bigbluebutton/
 * bbb-install; its functions named below with their lines): records its arguments, prints them (as the real one may),
 * then "installs" BigBlueButton: bbb-conf and bbb-web.properties with a secret of its own, restarting every
 * service (running meetings end; bbb-apps-akka, which holds the meetings, runs afterwards:
 * $SANDBOX/units/bbb-apps-akka). INSTALLER_RC=<n> makes it fail first, leaving everything as it was;
 * INSTALLER_DIES=1 makes it die midway, BigBlueButton stopped; INSTALLER_KILLED=1 makes it killed first with its
 * unit's processes, the runner above it too (the kernel's OOM killer, or systemctl kill), so that no exit code
 * is left. It works the same sourced (\`. bbb-install.sh\` with its arguments as positional parameters, $0 its
 * path), as the real one does: its last line is \`main "$@" || exit 1\`, and nothing in it reads BASH_SOURCE.
 */
const INSTALLER = `#!/usr/bin/env bash
SANDBOX=\${SANDBOX:-$(cd "$(dirname "$0")/../../../.." && pwd)}
printf '%s\\n' "bbb-install.sh $*" >> "$SANDBOX/calls.log"
echo "Installing with $*"
# main's getopts (L131-229), for the options the steps give. -c is checked as getopts meets it (check_coturn,
# L599-616, its messages through err: "bbb-install: ..." on stderr, exit 1): a host and a secret around ':'; and
# unless -s came first, check_host compares the address the TURN host's name resolves to with this host's
# (L589-597), which fails for a TURN server on another host (its message; the addresses here are examples). An
# option without its argument, or one it does not know, is getopts' error and usage_err's (L236-240).
HOST=""; EMAIL=""; COTURN=""; COTURN_HOST=""; COTURN_SECRET=""
while getopts "hs:r:c:v:e:p:m:t:xgadwjik" opt; do
  case $opt in
    s) HOST=$OPTARG ;;
    e) EMAIL=$OPTARG ;;
    c)
      COTURN=$OPTARG
      case $COTURN in *:*) ;; *) echo "bbb-install: Option for coturn must be <hostname>:<secret>" >&2; exit 1 ;; esac
      COTURN_HOST=$(echo "$OPTARG" | cut -d':' -f1); COTURN_SECRET=$(echo "$OPTARG" | cut -d':' -f2)
      [ -n "$COTURN_HOST" ] || { echo "bbb-install: -c option must contain <hostname>" >&2; exit 1; }
      [ -n "$COTURN_SECRET" ] || { echo "bbb-install: -c option must contain <secret>" >&2; exit 1; }
      [ -n "$HOST" ] || { echo "bbb-install: DNS lookup for $COTURN_HOST resolved to 203.0.113.2 but didn't match local 10.0.0.11." >&2; exit 1; } ;;
    \\?) echo "bbb-install: Invalid option: -$OPTARG" >&2; exit 1 ;;
  esac
done
sleep "\${INSTALLER_SECONDS:-0}"
if [ -n "\${INSTALLER_KILLED:-}" ]; then
  # Its parent is timeout, whose parent is the runner (/proc/PID/stat's 4th field is the parent's id).
  runner=$(awk '{ print $4 }' "/proc/$PPID/stat"); kill -KILL "$runner" "$PPID" $$
fi
[ "\${INSTALLER_RC:-0}" = 0 ] || exit "$INSTALLER_RC"
if [ -n "\${INSTALLER_DIES:-}" ]; then
  # Dies midway through the packages: BigBlueButton stopped (its meetings ended), not started again.
  [ -s "$SANDBOX/meetings" ] && cat "$SANDBOX/meetings" >> "$SANDBOX/ended-meetings"
  : > "$SANDBOX/meetings"; rm -f "$SANDBOX/units/bbb-apps-akka"; exit 100
fi
# get_IP (L470-541): an IP given in the environment skips detection; otherwise the address of the default
# route's interface ($SANDBOX/private-ip) and, behind NAT, the external one from DNS of -s ($SANDBOX/public-ip),
# taken only when \`nc -zw3 <external> 443\` connects: the router hairpins (HAIRPIN=1) or the address is on lo.
priv=$(cat "$SANDBOX/private-ip" 2>/dev/null || echo 10.0.0.11)
pub=$(cat "$SANDBOX/public-ip" 2>/dev/null || echo "$priv")
# INSTALLER_IGNORES_IP=1: a version that detects the addresses whatever the environment says.
[ -z "\${INSTALLER_IGNORES_IP:-}" ] || unset IP INTERNAL_IP
if [ -z "\${IP:-}" ]; then
  IP=$priv
  if [ "$pub" != "$priv" ] && { [ -n "\${HAIRPIN:-}" ] || ip -4 -o addr show dev lo | grep -q " inet $pub/32 "; }; then INTERNAL_IP=$priv IP=$pub; fi
fi
# need_pkg bigbluebutton (L333; need_pkg, L549-557): apt-get installs the packages only when \`dpkg -s\` says they
# are not installed (see BBB_PACKAGES); over installed packages, nothing is installed.
dpkg -s bigbluebutton >/dev/null 2>&1 || LC_CTYPE=C.UTF-8 apt-get install -yq bigbluebutton
# check_nat (L672-711): FreeSWITCH's vars.xml (the package's, external_*_ip=stun:stun.freeswitch.org) gets IP;
# behind NAT, IP goes on lo (\`ip addr add\`, which fails when it is there: the run stops under -e) and into
# dummy-nic.service, which adds it at boot.
vars="$SANDBOX/root/opt/freeswitch/conf/vars.xml"
sed -i -E "s/data=\\"external_(rtp|sip)_ip=[^\\"]*\\"/data=\\"external_\\1_ip=$IP\\"/" "$vars"
if [ -n "\${INTERNAL_IP:-}" ]; then
  ip addr add "$IP" dev lo
  nic="$SANDBOX/root/lib/systemd/system/dummy-nic.service"
  grep -q "$IP" "$nic" 2>/dev/null || { mkdir -p "$(dirname "$nic")"; printf '[Service]\\nExecStart=/sbin/ip addr add %s dev lo\\n' "$IP" > "$nic"; }
fi
# install_ssl (L1421-1697), only with -s and -e (L350-354): first \`bbb-conf --setip HOST\` unless bigbluebutton.yml
# holds HOST (L1422-1424); its certificate when there is none yet, the lineage named after the host (L1441-1478);
# the whole nginx site for HOST on 443 (L1546-1600); sip.nginx's proxy_pass to IP (L1641); serverURL https
# (L1645-1648); the media server's addresses in
# /etc/bigbluebutton/bbb-webrtc-sfu/production.yml (L1668-1694). Without -e: none of it (no certificate, the
# package's port-80 site, no addresses in production.yml).
if [ -n "$HOST" ] && [ -n "$EMAIL" ]; then
  grep -q "$HOST" "$SANDBOX/root/usr/local/bigbluebutton/core/scripts/bigbluebutton.yml" || bbb-conf --setip "$HOST"
  [ -f "$SANDBOX/root/etc/letsencrypt/live/$HOST/fullchain.pem" ] ||
    ROOT="$SANDBOX/root" certbot --email e --agree-tos --rsa-key-size 4096 -w /var/www/bigbluebutton-default/assets/ -d "$HOST" --deploy-hook "systemctl reload nginx" certonly
  printf 'server {\\n  listen 80;\\n  server_name %s;\\n  return 301 https://$server_name$request_uri;\\n}\\nserver {\\n  listen 443 ssl;\\n  server_name %s;\\n  access_log /var/log/nginx/bigbluebutton.access.log;\\n}\\n' "$HOST" "$HOST" \\
    > "$SANDBOX/root/etc/nginx/sites-available/bigbluebutton"
  sed -i "s/proxy_pass .*/proxy_pass http:\\/\\/$IP:5066;/g" "$SANDBOX/root/usr/share/bigbluebutton/nginx/sip.nginx"
  sed -i "s|^bigbluebutton.web.serverURL=http:|bigbluebutton.web.serverURL=https:|" "$SANDBOX/root/etc/bigbluebutton/bbb-web.properties"
  sfu="$SANDBOX/root/etc/bigbluebutton/bbb-webrtc-sfu/production.yml"; touch "$sfu"
  # (One yq call for bbb-install.sh's four: each costs a node start here.)
  yq e -i ".freeswitch.ip = \\"$IP\\" | .mediasoup.webrtc.listenIps[0].ip = \\"0.0.0.0\\" | .mediasoup.webrtc.listenIps[0].announcedIp = \\"$IP\\" | .mediasoup.plainRtp.listenIp.announcedIp = \\"$IP\\"" "$sfu"
fi
# With -c, configure_coturn (L1699-1753): bbb-web's TURN servers (turn on 3478, turns on 443) with the -c host and
# secret, root:bigbluebutton 0640, from a here-document (the secret on no command line). Without -c, install_coturn
# and install_haproxy (L356-375): a coturn of its own on this host with a secret of its own, its host the -s one,
# and HAProxy in front of nginx. INSTALLER_LOCAL_TURN=1: a version that sets up its own TURN server whatever -c
# says (assumed, as its TURN-only mode ignores the secret it is given).
if [ -z "$COTURN" ] || [ -n "\${INSTALLER_LOCAL_TURN:-}" ]; then
  COTURN_HOST=$HOST COTURN_SECRET=LocalTurn$RANDOM$RANDOM; mkdir -p "$SANDBOX/units"
  printf 'static-auth-secret=%s\\n' "$COTURN_SECRET" > "$SANDBOX/root/etc/turnserver.conf"
  touch "$SANDBOX/units/coturn" "$SANDBOX/units/haproxy"
fi
turn_xml="$SANDBOX/root/etc/bigbluebutton/turn-stun-servers.xml"
printf '<beans>\\n    <bean id="turn0" class="org.bigbluebutton.web.services.turn.TurnServer">\\n        <constructor-arg index="0" value="%s"/>\\n        <constructor-arg index="1" value="turn:%s:3478"/>\\n    </bean>\\n    <bean id="turn1" class="org.bigbluebutton.web.services.turn.TurnServer">\\n        <constructor-arg index="0" value="%s"/>\\n        <constructor-arg index="1" value="turns:%s:443?transport=tcp"/>\\n    </bean>\\n</beans>\\n' \\
  "$COTURN_SECRET" "$COTURN_HOST" "$COTURN_SECRET" "$COTURN_HOST" > "$turn_xml"
chown root:bigbluebutton "$turn_xml"; chmod 640 "$turn_xml"
# main: \`bbb-conf --setip HOST\` (L385-389), which restarts BigBlueButton (running meetings end).
bbb-conf --setip "$HOST"
# -g: install_greenlight_v3 (L832-1050): install_docker first (docker-compose 1.24.0 into /usr/local/bin unless
# an executable is there), then Greenlight's compose file and .env from the image bigbluebutton/greenlight:v3
# when absent, BBB's secret and URL into the .env, and \`docker-compose -f ... pull\` and \`up -d\` by name.
if [[ " $* " == *" -g "* ]]; then
  dc="$SANDBOX/root/usr/local/bin/docker-compose"
  [ -x "$dc" ] || { mkdir -p "$(dirname "$dc")"; cp "$SANDBOX/compose-1.24.stub" "$dc"; chmod +x "$dc"; }
  gl="$SANDBOX/root/root/greenlight-v3"; mkdir -p "$gl"
  [ -s "$gl/docker-compose.yml" ] || docker run --rm --entrypoint sh bigbluebutton/greenlight:v3 -c 'cat docker-compose.yml' > "$gl/docker-compose.yml"
  [ -s "$gl/.env" ] || docker run --rm --entrypoint sh bigbluebutton/greenlight:v3 -c 'cat sample.env' > "$gl/.env"
  salt=$(sed -n 's/^securitySalt=//p' "$SANDBOX/root/etc/bigbluebutton/bbb-web.properties")
  sed -i "s|^BIGBLUEBUTTON_ENDPOINT=.*|BIGBLUEBUTTON_ENDPOINT=https://$HOST/bigbluebutton/|; s|^BIGBLUEBUTTON_SECRET=.*|BIGBLUEBUTTON_SECRET=$salt|" "$gl/.env"
  "$dc" -f "$gl/docker-compose.yml" pull
  "$dc" -f "$gl/docker-compose.yml" up -d
fi
bbb-conf --check
`;

/**
 * getent, as glibc's nss/getent.c prints it (read from bminor/glibc at 04277e02, glibc 2.29; Debian 12's getent
 * 2.36 was checked to print the same, and Ubuntu 22.04 has 2.35): `ahosts NAME` (getaddrinfo, AF_UNSPEC) prints
 * one line per address and socket type, "%-15s %-6s %s", the canonical name on the first line only; `hosts NAME`
 * (gethostbyname2, AF_INET6 first, then AF_INET) prints "%-15s %s" per address of the first family that has
 * any. A name that does not resolve, or any failed lookup (getaddrinfo's EAI_AGAIN too), exits 2 with nothing
 * printed. The names come from the file `dns` (a shell word: `name address...` a line); an address as NAME
 * resolves to itself for ahosts. DNS_DOWN=1: every host lookup fails (exit 2), as when the resolver does not
 * answer. `passwd|group NAME|ID` read $ROOT/etc/{passwd,group}. Other databases are not modelled.
 */
export function getentStub(dns: string): string {
    return `
db=$1; key=$2
case $db in
  passwd|group)
    file="$ROOT/etc/$db"; field=1; case $key in *[!0-9]*) ;; *) field=3 ;; esac
    [ -f "$file" ] || exit 2
    awk -F: -v k="$key" -v f="$field" '$f == k { print; found = 1 } END { exit found ? 0 : 2 }' "$file"; exit ;;
  ahosts|hosts) [ -n "\${DNS_DOWN:-}" ] && exit 2 ;;
  *) echo "getent stub: database $db is not modelled" >&2; exit 1 ;;
esac
read -r -a addresses < <(awk -v k="$key" '$1 == k { $1 = ""; print; exit }' "${dns}" 2>/dev/null) || true
if [ \${#addresses[@]} -eq 0 ]; then
  case $key in *[!0-9a-f.:]*) exit 2 ;; esac
  [ "$db" = ahosts ] || exit 2
  addresses=("$key")
fi
if [ "$db" = hosts ]; then
  v6=(); v4=(); for a in "\${addresses[@]}"; do case $a in *:*) v6+=("$a") ;; *) v4+=("$a") ;; esac; done
  if [ \${#v6[@]} -gt 0 ]; then addresses=("\${v6[@]}"); else addresses=("\${v4[@]}"); fi
  for a in "\${addresses[@]}"; do printf '%-15s %s\\n' "$a" "$key"; done
  exit 0
fi
canon=$key
for a in "\${addresses[@]}"; do
  printf '%-15s %-6s %s\\n' "$a" STREAM "$canon"; canon=""
  printf '%-15s %-6s %s\\n' "$a" DGRAM ""
  printf '%-15s %-6s %s\\n' "$a" RAW ""
done`;
}

/**
 * yq, mikefarah's v4 (which bbb-install.sh installs, ppa:rmescandon/yq; mikefarah/yq v4's
 * cmd/evaluate_sequence_command.go, \`yq e\`, and pkg/yqlib's path expressions), for what the steps use: \`yq e PATH
 * FILE\` prints the value at a path like .a.b[0].c (a scalar as it is, "null" where there is none); \`yq e -i 'PATH =
 * "value"' FILE\` sets it, making the maps and lists on the way. A missing file fails as yq's does (Go's os.Open
 * error under cobra's "Error: " prefix: "Error: open FILE: no such file or directory", exit 1; assumed from Go's
 * wording); any other expression is refused.
 */
const YQ = `
const fs = require("fs");
const YAML = require(${JSON.stringify(require.resolve("yaml"))});
const args = process.argv.slice(2);
if (args[0] !== "e" && args[0] !== "eval") { console.error("yq stub: only 'yq e' is modelled"); process.exit(1); }
const inPlace = args[1] === "-i";
const [expression, file] = args.slice(inPlace ? 2 : 1);
if (!fs.existsSync(file)) { console.error("Error: open " + file + ": no such file or directory"); process.exit(1); }
// Reads are paths joined by ',' (one value a line); writes, assignments joined by '|'.
const terms = expression.split(inPlace ? "|" : ",").map((term) => /^\\s*((?:\\.[A-Za-z_][A-Za-z0-9_]*(?:\\[\\d+\\])?)+)\\s*(?:=\\s*"([^"]*)")?\\s*$/.exec(term));
if (terms.some((m) => !m || inPlace !== (m[2] !== undefined))) { console.error("yq stub: unsupported expression " + expression); process.exit(1); }
const keysOf = (path) => {
  const keys = [];
  for (const part of path.slice(1).split(".")) {
    const [, key, index] = /^([^[]+)(?:\\[(\\d+)\\])?$/.exec(part);
    keys.push(key); if (index !== undefined) keys.push(Number(index));
  }
  return keys;
};
// A file that is not YAML fails both ways, as yq's decoder does ("Error: bad file '...': yaml: ...", exit 1;
// the wording after "yaml:" is go-yaml's, assumed here).
let doc;
try {
  doc = YAML.parse(fs.readFileSync(file, "utf8")) ?? {};
} catch (e) {
  console.error("Error: bad file '" + file + "': yaml: " + String(e.message).split("\\n")[0]);
  process.exit(1);
}
for (const [, path, value] of terms) {
  const keys = keysOf(path);
  let node = doc;
  if (!inPlace) {
    for (const key of keys) node = node == null ? undefined : node[key];
    console.log(node == null ? "null" : typeof node === "object" ? YAML.stringify(node).trimEnd() : String(node));
    continue;
  }
  keys.forEach((key, i) => {
    if (i === keys.length - 1) { node[key] = value; return; }
    if (node[key] == null) node[key] = typeof keys[i + 1] === "number" ? [] : {};
    node = node[key];
  });
}
if (inPlace) fs.writeFileSync(file, YAML.stringify(doc));
`;

/**
 * ip (iproute2 5.15, Ubuntu 22.04; ip/ipaddress.c, lib/libnetlink.c), the addresses of lo only, kept in
 * $SANDBOX/lo-addrs (127.0.0.1/8 always there): \`ip -4 -o addr show dev lo\` prints them as ip-address(8) does;
 * \`ip addr add A dev lo\` adds A/32 (A without a prefix is a host address) and fails as the kernel's EEXIST reads
 * when it is there ("RTNETLINK answers: File exists": rtnl_talk's error, ipaddr_modify returns -2, which ip.c's
 * do_cmd turns into exit 2); \`ip addr del A/32 dev lo\` fails likewise when it is not ("Cannot assign requested
 * address", EADDRNOTAVAIL). IP_FAIL=add|del: that change is refused as the kernel refuses it to a root without
 * CAP_NET_ADMIN (a confined root, e.g. in a container): "RTNETLINK answers: Operation not permitted", exit 2.
 */
const IP = `
f="$SANDBOX/lo-addrs"; touch "$f"
case "$*" in "addr \${IP_FAIL:-none} "*) echo "RTNETLINK answers: Operation not permitted" >&2; exit 2 ;; esac
case "$*" in
  "-4 -o addr show dev lo")
    for a in 127.0.0.1/8 $(cat "$f"); do printf '1: lo    inet %s scope %s lo\\\\       valid_lft forever preferred_lft forever\\n' "$a" "$([ "$a" = 127.0.0.1/8 ] && echo host || echo global)"; done ;;
  "addr add "*" dev lo")
    a=$3; case $a in */*) ;; *) a=$a/32 ;; esac
    grep -qxF "$a" "$f" && { echo "RTNETLINK answers: File exists" >&2; exit 2; }
    echo "$a" >> "$f" ;;
  "addr replace "*" dev lo")
    a=$3; case $a in */*) ;; *) a=$a/32 ;; esac
    grep -qxF "$a" "$f" || echo "$a" >> "$f" ;;
  "addr del "*" dev lo")
    grep -qxF "$3" "$f" || { echo "RTNETLINK answers: Cannot assign requested address" >&2; exit 2; }
    grep -vxF "$3" "$f" > "$f.new"; mv "$f.new" "$f" ;;
  *) echo "ip stub: $* is not modelled" >&2; exit 1 ;;
esac`;

/**
 * nginx -t -c FILE by the real nginx (Debian's /usr/sbin/nginx and libnginx-mod-rtmp, whose ngx_rtmp_module.so the
 * configuration loads as on the host): nginx itself parses every file FILE includes, loads the modules and the
 * certificates, creates the paths it creates on a host (an HLS path, owned by its worker user) and refuses what it
 * refuses, with its own messages and exit status (1, src/core/nginx.c). It reads a copy of FILE's directory in which
 * the host's paths the configuration names (/var/..., /run/..., /etc/letsencrypt/...) point into the sandbox's ROOT,
 * and its messages name them as the host's again. Nothing else of nginx is modelled (the steps run it through systemctl).
 * Needs root, as on a host (`user www-data;` in Ubuntu's nginx.conf).
 */
export const NGINX_REAL_TEST = `
[ "$1" = -t ] && [ "$2" = -c ] && [ $# = 3 ] || { echo "nginx stub: only nginx -t -c FILE is modelled, not: $*" >&2; exit 1; }
[ -x /usr/sbin/nginx ] && [ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || { echo "nginx stub: the real nginx and libnginx-mod-rtmp are needed (apt-get install nginx libnginx-mod-rtmp)" >&2; exit 1; }
dir=$(dirname "$3"); copy=$(mktemp -d); trap 'rm -rf "$copy"' EXIT
cp -a "$dir/." "$copy/"
find "$copy" -type f -exec sed -i -e "s#$dir/#$copy/#g" -e "s#\\(^\\|[[:space:]\\"'=]\\)/\\(var\\|run\\|etc/letsencrypt\\)/#\\1$ROOT/\\2/#g" {} +
# A host has /run; the nginx package makes /var/log/nginx.
mkdir -p "$ROOT/run" "$ROOT/var/log/nginx"
out=$(/usr/sbin/nginx -t -c "$copy/\${3##*/}" 2>&1); rc=$?
printf '%s\\n' "$out" | sed -e "s#$copy/#$dir/#g" -e "s#$ROOT/#/#g" >&2
exit $rc`;

/** A self-signed certificate and key for the stub certbot (and the real coturn). */
export const TEST_CERT_SUBJECT = "/CN=turn.example.org";

export function installStubs(box: Sandbox): void {
    box.stub("systemctl", SYSTEMCTL);
    box.stub("systemd-run", SYSTEMD_RUN);
    // dpkg --configure -a (dpkg 1.21, Ubuntu 22.04): configures what an interrupted run left unpacked. DPKG_FAIL=1:
    // a package's post-installation script fails, reported as src/main/script.c (through subproc.c's "%s subprocess
    // returned error exit status %d") and errors.c print it (the package is an example), exit 1.
    // `dpkg -s PKG...` (dpkg-query's --status, src/query/main.c): prints each package's stanza of the status file
    // ($ROOT/var/lib/dpkg/status), exit 0; a package not in it: "dpkg-query: package 'PKG' is not installed and no
    // information is available" and dpkg's hint on stderr, exit 1 (what need_pkg, bbb-install.sh L549-557, tests).
    box.stub(
        "dpkg",
        `if [ "$1" = -s ]; then
  shift; rc=0
  for p in "$@"; do
    stanza=$(awk -v p="$p" '$0 == "Package: " p { on = 1 } on && /^$/ { exit } on { print }' "$ROOT/var/lib/dpkg/status" 2>/dev/null)
    [ -n "$stanza" ] && { printf '%s\n' "$stanza"; continue; }
    printf "dpkg-query: package '%s' is not installed and no information is available\\nUse dpkg --info (= dpkg-deb --info) to examine archive files.\\n" "$p" >&2; rc=1
  done
  exit $rc
fi
[ -z "\${DPKG_FAIL:-}" ] || {
  echo "Setting up bbb-html5 (1:3.0.4-1) ..."
  echo "dpkg: error processing package bbb-html5 (--configure):" >&2
  echo " installed bbb-html5 package post-installation script subprocess returned error exit status 1" >&2
  printf 'Errors were encountered while processing:\n bbb-html5\n' >&2; exit 1; }`,
    );
    box.stub("certbot", CERTBOT);
    box.stub("install", INSTALL);
    box.stub("curl", CURL);
    // apt-get (apt 2.4, Ubuntu 22.04; cmdline/apt-get.cc exits 100 on any error): APT_FAIL=1 fails as a missing
    // package does ("E: Unable to locate package", apt-private/private-cacheset.cc), APT_LOCKED=1 as a held dpkg lock
    // does (apt-pkg/contrib/fileutl.cc GetLock, "Could not get lock %s. It is held by process %d (%s)"); `update`
    // succeeds unless APT_UPDATE_FAIL=1 (apt-pkg/acquire-item.cc's "Failed to fetch", the resolver's reason).
    box.stub(
        "apt-get",
        `case "$*" in
  update*) [ -z "\${APT_UPDATE_FAIL:-}" ] || { echo "E: Failed to fetch http://archive.ubuntu.com/ubuntu/dists/jammy/InRelease  Temporary failure resolving 'archive.ubuntu.com'" >&2; exit 100; } ;;
  *) [ -z "\${APT_LOCKED:-}" ] || { echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)" >&2; exit 100; }
     [ -z "\${APT_FAIL:-}" ] || { echo "E: Unable to locate package \${@: -1}" >&2; exit 100; }
     # Docker's Compose v2 plugin, from Docker's repository (which bbb-install.sh's install_docker adds).
     case " $* " in *" docker-compose-plugin "*) rm -f "$SANDBOX/no-compose-plugin" ;; esac
     case " $* " in *" bigbluebutton "*) . "$SANDBOX/bbb-packages.sh" ;; esac ;;
esac`,
    );
    // chown [-R] OWNER[:GROUP] FILE... (coreutils 8.32, src/chown.c and chown-core.c; gnulib's userspec.c reads the
    // owner): CHOWN_FAIL=1 fails as an unknown user does ("chown: invalid user: ‘SPEC’", exit 1, nothing changed);
    // files under CHOWN_READONLY (a directory) are on a filesystem mounted read-only (ext4's errors=remount-ro after
    // an I/O error): "chown: changing ownership of 'FILE': Read-only file system" for each, exit 1.
    box.stub(
        "chown",
        `spec=""; files=(); for a in "$@"; do case $a in -*) ;; *) if [ -z "$spec" ]; then spec=$a; else files+=("$a"); fi ;; esac; done
[ -z "\${CHOWN_FAIL:-}" ] || { echo "chown: invalid user: \u2018$spec\u2019" >&2; exit 1; }
rc=0; for f in "\${files[@]}"; do
  case $f in "\${CHOWN_READONLY:-/nonexistent}"/*|"\${CHOWN_READONLY:-/nonexistent}") echo "chown: changing ownership of '$f': Read-only file system" >&2; rc=1 ;; esac
done; exit $rc`,
    );
    // hostname (Ubuntu's hostname 3.23, hostname.c): prints the host's name.
    box.stub("hostname", "echo bbb-test-host");
    box.stub("docker", DOCKER);
    // nginx -t (nginx 1.18, Ubuntu 22.04; src/core/nginx.c): exit 0 when the configuration tests good, 1 when
    // NGINX_BROKEN is set (the steps that print its messages stub their own).
    box.stub("nginx", '[ "$1" = -t ] && [ -z "${NGINX_BROKEN:-}" ]');
    box.stub("fs_cli", FS_CLI);
    box.write("yq.js", YQ);
    box.write("scalelite-sync.js", SCALELITE_SYNC);
    box.stub("yq", `exec ${shellQuote(process.execPath)} "$SANDBOX/yq.js" "$@"`);
    box.stub("ip", IP);
    box.write("installer.sh", INSTALLER);
    box.write("bbb-packages.sh", BBB_PACKAGES);
    box.stub("cloud-init", CLOUD_INIT);
    // sync (coreutils 8.32): flushes the filesystems' buffers; nothing to model.
    box.stub("sync");
    box.write("compose-1.24.stub", COMPOSE_1_24);
    for (const [file, text] of Object.entries(GREENLIGHT_IMAGE_FILES)) box.write(`greenlight-image/${file}`, text);
    box.stub("bbb-conf", BBB_CONF);
    fs.renameSync(path.join(box.bin, "bbb-conf"), box.file("bbb-conf.stub"));
    box.write("cert/fullchain.pem", "-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n");
    box.write("cert/privkey.pem", "-----BEGIN PRIVATE KEY-----\ntest\n-----END PRIVATE KEY-----\n");
}

/** Makes the sandbox look like a host where bbb-install.sh has run, answering to `secret`. */
export function installedBbb(box: Sandbox, secret: string): void {
    fs.copyFileSync(box.file("bbb-conf.stub"), path.join(box.bin, "bbb-conf"));
    box.write("root/etc/bigbluebutton/bbb-web.properties", `bigbluebutton.web.serverURL=https://bbb-1.example.org\nsecuritySalt=${secret}\n`);
    box.write("running-salt", `${secret}\n`);
    box.write("units/bbb-apps-akka", "");
}

/**
 * A server booted from a clone of `baked`'s disk (a bake's golden volume): a sandbox of its own with the stubs and
 * a copy of `baked`'s root, and the commands the packages installed there put on its PATH (bbb-conf). Nothing of
 * the builder's sandbox but its disk comes along: no running units, no meetings, no certbot lineages.
 */
export function bootedFromClone(baked: Sandbox): Sandbox {
    const box = new Sandbox();
    installStubs(box);
    fs.cpSync(baked.root, box.root, { recursive: true, verbatimSymlinks: true });
    if (fs.existsSync(path.join(box.root, "var/lib/dpkg/status"))) fs.copyFileSync(box.file("bbb-conf.stub"), path.join(box.bin, "bbb-conf"));
    return box;
}

/**
 * An attached OpenStack volume: $ROOT/dev/disk/by-id/virtio-<first 20 of the id> -> $ROOT/dev/vdb, with
 * stub blkid, mkfs.ext4, mountpoint, mount, blockdev and resize2fs that keep the disk's state in
 * $SANDBOX/disk/: the disk's size in bytes in size (1 TiB when absent; `blockdev --getsize64` prints it as
 * util-linux 2.37's disk-utils/blockdev.c does), its filesystem's in fs-size (the disk's when absent). blkid
 * (util-linux 2.37, misc-utils/blkid.c) finds the filesystem's UUID in uuid; `blkid -p -o export` prints
 * DEVNAME, UUID and TYPE, and exits 2 (BLKID_EXIT_NOTFOUND) on a blank disk; a disk that holds a partition table
 * instead (pttype: its type) is found (PTUUID, PTTYPE, exit 0) but has no UUID (`-s UUID` prints nothing, exit
 * 2). resize2fs prints what e2fsprogs' resize/main.c and online.c print (1.47); a filesystem with recorded
 * errors (fs-errors) is not grown online: the kernel refuses it (ext4_resize_begin), online.c's "Permission
 * denied to resize filesystem", exit 1. mountpoint (util-linux 2.37, sys-utils/mountpoint.c): exit 0 for the
 * mounted volume, else non-zero (32 upstream now, MOUNTPOINT_EXIT_NOMNT; 1 here, as assumed of 2.37).
 * `formatted`: the disk already holds a filesystem (e.g. a volume kept from an earlier VM).
 */
export function attachVolume(box: Sandbox, volumeId: string, formatted = false): void {
    box.write("root/dev/vdb", "");
    if (!fs.existsSync(box.file("root/etc/fstab"))) box.write("root/etc/fstab", "");
    fs.mkdirSync(box.file("root/dev/disk/by-id"), { recursive: true });
    fs.symlinkSync(box.file("root/dev/vdb"), box.file(`root/dev/disk/by-id/virtio-${volumeId.slice(0, 20)}`));
    if (formatted) box.write("disk/uuid", "0b5e55ed-0000-4000-8000-000000000001\n");
    box.stub("blkid", `if [ -f "$SANDBOX/disk/pttype" ]; then
  case "$*" in *"-s UUID"*) exit 2 ;; *) echo "DEVNAME=$3"; echo "PTUUID=5eed1e55"; echo "PTTYPE=$(cat "$SANDBOX/disk/pttype")"; exit 0 ;; esac
fi
[ -f "$SANDBOX/disk/uuid" ] || exit 2
case "$*" in *"-s UUID"*) cat "$SANDBOX/disk/uuid" ;; *) echo "DEVNAME=$3"; echo "UUID=$(cat "$SANDBOX/disk/uuid")"; echo TYPE=ext4 ;; esac`);
    // mkfs.ext4 (e2fsprogs 1.46, misc/mke2fs.c): MKFS_FAIL=1 fails as on a device whose size reads zero (the first
    // sentence of mke2fs's message; exit 1).
    box.stub(
        "mkfs.ext4",
        `[ -z "\${MKFS_FAIL:-}" ] || { echo "mkfs.ext4: Device size reported to be zero." >&2; exit 1; }
mkdir -p "$SANDBOX/disk"; echo 1a2b3c4d-0000-4000-8000-000000000002 > "$SANDBOX/disk/uuid"; rm -f "$SANDBOX/disk/fs-size"`,
    );
    box.stub("blockdev", `[ "$1" = --getsize64 ] && cat "$SANDBOX/disk/size" 2>/dev/null || echo 1099511627776`);
    box.stub(
        "resize2fs",
        `disk=$(cat "$SANDBOX/disk/size" 2>/dev/null || echo 1099511627776); fs=$(cat "$SANDBOX/disk/fs-size" 2>/dev/null || echo "$disk")
echo "resize2fs 1.47.0 (5-Feb-2023)" >&2
if [ "$fs" -ge "$disk" ]; then echo "The filesystem is already $((fs / 4096)) (4k) blocks long.  Nothing to do!"; exit 0; fi
echo "Filesystem at $1 is mounted on /mnt; on-line resizing required"
echo "old_desc_blocks = 1, new_desc_blocks = 2"
[ -e "$SANDBOX/disk/fs-errors" ] && { echo "resize2fs: Permission denied to resize filesystem" >&2; exit 1; }
echo "$disk" > "$SANDBOX/disk/fs-size"
echo "The filesystem on $1 is now $((disk / 4096)) (4k) blocks long."`,
    );
    box.stub("mountpoint", `[ -f "$SANDBOX/disk/mounted" ]`);
    // mount (util-linux 2.37, sys-utils/mount.c; libmount/src/context_mount.c words the error): MOUNT_FAIL=1 fails
    // as a wrong filesystem does (exit 32, MNT_EX_FAIL, mount(8)'s "mount failure").
    box.stub(
        "mount",
        `[ -z "\${MOUNT_FAIL:-}" ] || { echo "mount: $1: wrong fs type, bad option, bad superblock on /dev/vdb, missing codepage or helper program, or other error." >&2; exit 32; }
mkdir -p "$SANDBOX/disk"; echo "$1" > "$SANDBOX/disk/mounted"`,
    );
}
