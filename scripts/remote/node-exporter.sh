#!/usr/bin/env bash
# Every host (turn, bbb, scalelite, greenlight, monitoring): Prometheus' node exporter, Ubuntu's package
# prometheus-node-exporter without its Recommends (prometheus-node-exporter-collectors adds timers of its own:
# apt, smartmon, ipmitool; not wanted). It listens on the host's fixed address only (the monitoring host's
# security group is admitted to port 9100 by fixed address; docs/monitoring.md, "Firewall"), never on all
# addresses (the package's default, ":9100"), and reads the textfile directory /var/lib/prometheus/node-exporter
# (given explicitly: upstream's default is none, Debian's package patches in that one; Ubuntu 22.04's is not
# verified). No collector beyond the defaults: --collector.netdev.address-info (interface addresses) stays off.
# The ARGS go to /etc/default/prometheus-node-exporter, which the package's unit reads (EnvironmentFile=, then
# ExecStart=/usr/bin/prometheus-node-exporter $ARGS: Debian 12's package, 1.5.0-1); written before the package is
# installed, and kept by dpkg (--force-confold), so that the exporter starts bound to that address from the first.
# On the Scalelite host also the Scalelite metrics (scripts/remote/scalelite-metrics.sh, run every minute).
# Inputs: LISTEN_IPV4 (the host's fixed IPv4) PORT (components/ports.ts EXPORTER_PORTS.node) ROLE (turn|bbb|scalelite|greenlight|monitoring), and on scalelite
# SCALELITE_METRICS_PROGRAM (the text of scripts/remote/scalelite-metrics.sh); EXPORTER_WAIT_SECONDS (optional,
# default 30): how long the exporter may take to answer after a (re)start.
# Uses scripts/remote/lib.sh, sent ahead of this script.
set -euo pipefail

: "${LISTEN_IPV4:?}" "${PORT:?}" "${ROLE:?}"
ipv4_inputs LISTEN_IPV4
case $ROLE in
  turn | bbb | greenlight | monitoring) ;;
  scalelite) : "${SCALELITE_METRICS_PROGRAM:?}" ;;
  *) fail "ROLE '$ROLE' is not turn, bbb, scalelite, greenlight or monitoring" ;;
esac
unit=prometheus-node-exporter
listen=$LISTEN_IPV4:$PORT

# 1. The exporter's arguments, then the package. A restart they need is owed until it happened (lib.sh's pending
# work): the exporter keeps its old arguments until then.
mkdir -p "$ROOT/etc/default" "$ROOT$TEXTFILE_DIR"
if write_if_changed "$ROOT/etc/default/$unit" 0644 root:root <<DEFAULTS; then
# Written by bbb's $STEP step (Pulumi); changes here are overwritten.
# Read by $unit.service (EnvironmentFile=); see: prometheus-node-exporter --help.
ARGS="--web.listen-address=$listen --collector.textfile.directory=$TEXTFILE_DIR"
DEFAULTS
  pending_add restart
  say "set the node exporter's arguments: listen on $listen, textfiles in $TEXTFILE_DIR"
fi
apt_install -o Dpkg::Options::=--force-confold --no-install-recommends prometheus-node-exporter

# 2. Running with those arguments.
unit_running "$unit"

# 3. The Scalelite host's metrics, from Scalelite's own view of its servers (rake status).
if [ "$ROLE" = scalelite ]; then
  textfile_timer bbb-scalelite-metrics "$SCALELITE_METRICS_PROGRAM" minutely "$TEXTFILE_DIR/scalelite.prom" || true
fi

# 4. It answers on its address, and on that address only.
wait_metrics "http://$listen/metrics" "${EXPORTER_WAIT_SECONDS:-30}" >/dev/null ||
  fail "the node exporter does not answer on http://$listen/metrics (see: journalctl -u $unit)"
bound=$(ss -Hltn "sport = :$PORT" | awk '{ print $4 }' | sort -u | paste -sd ' ' -)
[ "$bound" = "$listen" ] || fail "port $PORT is bound on '$bound', not on $listen only (see: ss -ltnp 'sport = :$PORT')"
say "the node exporter answers on $listen only"
