// Stubs for the exporters' steps (scripts/remote/node-exporter.sh, bbb-exporter.sh) and their host programs
// (scalelite-metrics.sh, recordings-metrics.sh), on top of test/stubs.ts: what runs is what systemd started last.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { Sandbox } from "./sandbox";
import { installStubs } from "./stubs";

/**
 * systemctl over test/stubs.ts's (kept as systemctl.shared, which answers and records the units' states): a start or
 * restart of one of the exporters also keeps what systemd hands the new process, as systemd reads it then (systemd.exec(5),
 * EnvironmentFile=: read when the unit starts): $SANDBOX/running/prometheus-node-exporter holds
 * /etc/default/prometheus-node-exporter, $SANDBOX/running/bigbluebutton-exporter the exporter's settings.env. A unit
 * keeps running with them until started again.
 */
const SYSTEMCTL = `
verb=$1; unit=""; for a in "$@"; do case $a in -*) ;; *) unit=$a ;; esac; done
"$SANDBOX/bin/systemctl.shared" "$@" || exit
mkdir -p "$SANDBOX/running"
case "$verb $unit" in
  "start prometheus-node-exporter"|"restart prometheus-node-exporter") cp "$ROOT/etc/default/prometheus-node-exporter" "$SANDBOX/running/$unit" ;;
  "start bigbluebutton-exporter"|"restart bigbluebutton-exporter") cp "$ROOT/etc/bigbluebutton-exporter/settings.env" "$SANDBOX/running/$unit" ;;
esac`;

/**
 * apt-get install over test/stubs.ts's (apt-get.shared, which models apt's failures): installing prometheus-node-exporter
 * the first time ($SANDBOX/pkg/ records installed packages) does what dpkg does with its package (Debian 12's 1.5.0-1,
 * read here with dpkg-deb: conffiles, postinst): /etc/default/prometheus-node-exporter is a conffile, shipped as
 * ARGS="" (listening on ":9100", every address); one already there that differs is a conffile dpkg asks about ("File on
 * system created by you or by a script."): with --force-confold it keeps it, else the question reads the step's stdin,
 * /dev/null, and dpkg fails ("end of file on stdin at conffile prompt", exit 100 from apt); then the package's unit
 * /lib/systemd/system/prometheus-node-exporter.service is there (the lines that matter here, as Ubuntu 22.04's reads:
 * its EnvironmentFile= has no "-", so the unit does not start without that file) and the postinst starts the exporter
 * (its dh_installinit/deb-systemd-invoke part) with that file. dpkg's conffile handling and its messages are as
 * remembered of dpkg, not re-read from its source here.
 */
const APT_GET = `
"$SANDBOX/bin/apt-get.shared" "$@" || exit
case " $* " in
  *" install "*" prometheus-node-exporter "*)
    [ -e "$SANDBOX/pkg/prometheus-node-exporter" ] && exit 0
    f="$ROOT/etc/default/prometheus-node-exporter"
    if [ -f "$f" ] && [ "$(cat "$f")" != 'ARGS=""' ]; then
      case " $* " in
        *" -o Dpkg::Options::=--force-confold "*) ;;
        *) echo "dpkg: error processing package prometheus-node-exporter (--configure):" >&2
           echo " end of file on stdin at conffile prompt" >&2; exit 100 ;;
      esac
    else
      mkdir -p "$ROOT/etc/default"; echo 'ARGS=""' > "$f"
    fi
    mkdir -p "$SANDBOX/pkg" "$ROOT/lib/systemd/system"; touch "$SANDBOX/pkg/prometheus-node-exporter"
    printf '[Service]\\nEnvironmentFile=/etc/default/prometheus-node-exporter\\nExecStart=/usr/bin/prometheus-node-exporter $ARGS\\n\\n[Install]\\nWantedBy=multi-user.target\\n' >"$ROOT/lib/systemd/system/prometheus-node-exporter.service"
    "$SANDBOX/bin/systemctl" start prometheus-node-exporter ;;
esac`;

/**
 * The addresses the node exporter listens on, from the ARGS systemd gave it: --web.listen-address (node_exporter 1.3.1,
 * node_exporter.go L146: default ":9100", every address, which ss prints as "*:9100"). NODE_EXPORTER_WILDCARD=1: it
 * listens on every address whatever its ARGS (e.g. an operator's drop-in replaced them).
 */
const NODE_EXPORTER_LISTEN = `node_listen() {
  [ -f "$SANDBOX/units/prometheus-node-exporter" ] && [ -f "$SANDBOX/running/prometheus-node-exporter" ] || return 1
  local a; a=$(sed -n 's/.*--web.listen-address=\\([^ "]*\\).*/\\1/p' "$SANDBOX/running/prometheus-node-exporter")
  [ -z "\${NODE_EXPORTER_WILDCARD:-}" ] || a=""
  echo "\${a:-*:9100}"
}`;

/**
 * curl for the exporters' /metrics (nothing else: the steps ask nothing else). The node exporter answers on the
 * address it listens on (any, when it listens on every one; NODE_EXPORTER_DOWN=1: it does not, curl's exit 7). The
 * BigBlueButton exporter answers on BIND_IP:PORT of the settings systemd gave it (settings.py L37-38, server.py L29) what
 * its collector yields (collector.py L60-126): bbb_api_up 1.0 when getMeetings, signed with its API_SECRET
 * (api_lib.py L40-48), succeeds against API_BASE_URL: this server's https://bbb-1.example.org/bigbluebutton/api/,
 * answering to the secret BigBlueButton runs with ($SANDBOX/running-salt); else 0.0 (api_lib.py L50-71). Anything that is
 * not listening (BBB_EXPORTER_DOWN=1: the exporter exited, e.g. on settings it refuses, settings.py L24): curl's "Failed to
 * connect", exit 7.
 */
const CURL = `
${NODE_EXPORTER_LISTEN}
url=""; for a in "$@"; do case $a in http*) url=$a ;; esac; done
refused() { echo "curl: (7) Failed to connect to \${url#http://}: Connection refused" >&2; exit 7; }
case $url in
  http://*:9100/metrics)
    at=\${url#http://}; at=\${at%/metrics}
    [ -z "\${NODE_EXPORTER_DOWN:-}" ] && listen=$(node_listen) || refused
    [ "$listen" = "$at" ] || [ "$listen" = "*:9100" ] || refused
    printf '# TYPE node_exporter_build_info gauge\\nnode_exporter_build_info{version="1.3.1"} 1\\n' ;;
  http://*:9688/metrics)
    at=\${url#http://}; at=\${at%/metrics}; env="$SANDBOX/running/bigbluebutton-exporter"
    [ -z "\${BBB_EXPORTER_DOWN:-}" ] && [ -f "$SANDBOX/units/bigbluebutton-exporter" ] && [ -f "$env" ] || refused
    [ "$(sed -n 's/^BIND_IP=//p' "$env"):$(sed -n 's/^PORT=//p' "$env")" = "$at" ] || refused
    up=0.0
    [ "$(sed -n 's/^API_BASE_URL=//p' "$env")" = "https://bbb-1.example.org/bigbluebutton/api/" ] &&
      [ "$(sed -n 's/^API_SECRET=//p' "$env")" = "$(cat "$SANDBOX/running-salt" 2>/dev/null)" ] && up=1.0
    printf '# TYPE bbb_api_up gauge\\nbbb_api_up %s\\n# TYPE bbb_exporter gauge\\nbbb_exporter{version="0.7.1"} 1.0\\n' "$up" ;;
  *) echo "curl: unexpected URL $url" >&2; exit 3 ;;
esac`;

/** ss -Hltn "sport = :9100" (iproute2, Ubuntu 22.04): one line a listening socket, the local address:port 4th (ss's usual output, not read from its source). */
const SS = `
${NODE_EXPORTER_LISTEN}
case "$*" in
  *"sport = :9100"*) if listen=$(node_listen); then echo "LISTEN 0      4096   $listen   *:*"; fi ;;
  *) echo "ss: unexpected $*" >&2; exit 1 ;;
esac`;

/**
 * git (2.34, Ubuntu 22.04) for `git clone --quiet --no-checkout URL DIR`, `git -C DIR checkout --quiet REF` and
 * `git -C DIR rev-parse HEAD`, over a stand-in of greenstatic/bigbluebutton-exporter: $SANDBOX/upstream/<commit>/ holds
 * each commit's tree. Its messages (as git prints them; not re-read from its source): a directory that is no repository,
 * "fatal: not a git repository (or any of the parent directories): .git" (exit 128); a commit the clone does not have,
 * "error: pathspec 'REF' did not match any file(s) known to git" (exit 1); GIT_DOWN=1, the server not reachable ("fatal:
 * unable to access 'URL': Could not resolve host: github.com", exit 128).
 */
const GIT = `
dir=.; while [ "$1" = -C ] || [ "$1" = -c ]; do [ "$1" = -C ] && dir=$2; shift 2; done
verb=$1; shift
case $verb in
  clone)
    args=(); for a in "$@"; do case $a in -*) ;; *) args+=("$a") ;; esac; done
    [ -z "\${GIT_DOWN:-}" ] || { echo "fatal: unable to access '\${args[0]}': Could not resolve host: github.com" >&2; exit 128; }
    mkdir -p "\${args[1]}/.git" ;;
  checkout)
    [ -d "$dir/.git" ] || { echo "fatal: not a git repository (or any of the parent directories): .git" >&2; exit 128; }
    ref=\${!#}
    [ -d "$SANDBOX/upstream/$ref" ] || { echo "error: pathspec '$ref' did not match any file(s) known to git" >&2; exit 1; }
    cp -r "$SANDBOX/upstream/$ref/." "$dir/"; echo "$ref" > "$dir/.git/HEAD" ;;
  rev-parse)
    [ -f "$dir/.git/HEAD" ] || { echo "fatal: not a git repository (or any of the parent directories): .git" >&2; exit 128; }
    cat "$dir/.git/HEAD" ;;
  *) echo "git: unexpected $verb" >&2; exit 1 ;;
esac`;

/**
 * python3 -m venv DIR (Python 3.10's venv module, Ubuntu's python3-venv): DIR/pyvenv.cfg, DIR/bin/python and DIR/bin/pip.
 * That pip (22.0) installs `-r FILE` by noting the requirements it installed in DIR/installed; PIP_FAIL=1: the index does not
 * have a pinned version ("ERROR: Could not find a version that satisfies the requirement ...", then "ERROR: No matching
 * distribution found for ...", exit 1; pip's wording as remembered, not re-read).
 */
const PYTHON3 = `
[ "$1 $2" = "-m venv" ] || { echo "python3: unexpected $*" >&2; exit 2; }
dir=$3; mkdir -p "$dir/bin"; echo "home = /usr/bin" > "$dir/pyvenv.cfg"
printf '#!/bin/bash\\nexit 0\\n' > "$dir/bin/python"
cat > "$dir/bin/pip" <<'PIP'
#!/bin/bash
printf '%s\\n' "pip $*" >> "$SANDBOX/calls.log"
prev=""; for a in "$@"; do [ "$prev" = -r ] && req=$a; prev=$a; done
if [ -n "\${PIP_FAIL:-}" ]; then
  first=$(head -n1 "$req")
  echo "ERROR: Could not find a version that satisfies the requirement $first (from versions: none)" >&2
  echo "ERROR: No matching distribution found for \${first%%=*}" >&2; exit 1
fi
cp "$req" "$(dirname "$0")/../installed"
PIP
chmod +x "$dir/bin/python" "$dir/bin/pip"`;

/** A host with test/stubs.ts's stubs and these over them. */
export function exporterHost(): Sandbox {
    const box = new Sandbox();
    installStubs(box);
    // systemctl and apt-get wrap the shared ones, which record the call: the wrappers record nothing themselves.
    for (const [name, body] of [["systemctl", SYSTEMCTL], ["apt-get", APT_GET]]) {
        fs.renameSync(path.join(box.bin, name), path.join(box.bin, `${name}.shared`));
        fs.writeFileSync(path.join(box.bin, name), `#!/bin/bash\nSANDBOX=\${SANDBOX:-$(cd "$(dirname "$0")/.." && pwd)}\nROOT="$SANDBOX/root"\n${body}\n`, { mode: 0o755 });
    }
    box.stub("curl", CURL);
    box.stub("ss", SS);
    box.stub("git", GIT);
    box.stub("python3", PYTHON3);
    return box;
}

/** The exporter's tree at a commit, as far as the step looks at it (requirements.txt: v0.7.1's, L1-7). */
export function upstreamCommit(box: Sandbox, commit: string): void {
    box.write(`upstream/${commit}/requirements.txt`, "certifi==2024.2.2\nchardet==5.2.0\nidna==3.6\nprometheus-client==0.20.0\nrequests==2.31.0\nurllib3==2.2.1\nxmltodict==0.13.0\n");
    box.write(`upstream/${commit}/bbb-exporter/server.py`, "# server.py\n");
}

/** promtool check metrics (Prometheus' own linter; Debian's prometheus package) on a metrics text: its exit code and what it said. */
export function promtoolCheck(text: string): { status: number | null; output: string } {
    const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** A file's mode, e.g. "600". */
export function modeOf(file: string): string {
    return (fs.statSync(file).mode & 0o777).toString(8);
}
