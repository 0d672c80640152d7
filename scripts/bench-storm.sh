#!/usr/bin/env bash
# bench-storm.sh — the reconnect storm of docs/performance.md (issue 9): a local cluster of its
# own (scripts/cluster.sh: 3 nodes, 2 savers, a dispatcher), USERS users connected with
# `imgate bench --scenario storm` to node1 alone (--url, each CONNECT_INIT with a cursor), then
# node1 killed with kill -9; every user reconnects through the dispatcher (random delay in
# [0, JITTER), then backoff) to node2 or node3 and is bound again once its replay and init ACK
# arrived. The bench reports drops, per-user rebind times and the whole storm's duration.
#
# Usage: scripts/bench-storm.sh            (RUNS runs, then the cluster is stopped)
#
# Environment: USERS (15000), RUNS (3), JITTER (1s), RATE_CONNECT (2000), SRC_IPS
#   (127.0.0.2-127.0.0.101: users come from many addresses; a node admits at most 256
#   connections per IP before their CONNECT_INIT, --max-pending-per-ip), OUT
#   (var/bench-storm/<time>), IMGATE_NO_BUILD (set: use bin/imgate as it is), IMGATE_NODE_ARGS
#   (extra node flags, e.g. "--replay-workers 16"; scripts/cluster.sh). The cluster runs
#   with IMGATE_NAMESPACE=storm, IMGATE_CLUSTER_DIR=var/storm, dispatcher 127.0.0.1:8180 and
#   IMGATE_PORT_OFFSET=300 (savers 8370/8371, nodes 8391/8401/8411) unless set otherwise, so
#   that it runs beside scripts/cluster.sh's default cluster. Each run uses a fresh user prefix.
#   Leaves the cluster down.
set -euo pipefail
cd "$(dirname "$0")/.."

USERS=${USERS:-15000}
RUNS=${RUNS:-3}
JITTER=${JITTER:-1s}
RATE_CONNECT=${RATE_CONNECT:-2000}
SRC_IPS=${SRC_IPS:-127.0.0.2-127.0.0.101}
OUT=${OUT:-var/bench-storm/$(date +%Y%m%d-%H%M%S)}
export IMGATE_NAMESPACE=${IMGATE_NAMESPACE:-storm}
export IMGATE_CLUSTER_DIR=${IMGATE_CLUSTER_DIR:-var/storm}
export IMGATE_HTTP_ADDR=${IMGATE_HTTP_ADDR:-127.0.0.1:8180}
export IMGATE_PORT_OFFSET=${IMGATE_PORT_OFFSET:-300}
OFF=$IMGATE_PORT_OFFSET
DIR=$IMGATE_CLUSTER_DIR
BIN=bin/imgate

log() { printf 'bench-storm: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# shellcheck source=scripts/bench-procs.sh
. scripts/bench-procs.sh # poll

BENCH_PID=
cleanup() {
	[[ -z $BENCH_PID ]] || kill "$BENCH_PID" 2>/dev/null || true
	scripts/cluster.sh down >>"$OUT/cluster.log" 2>&1 || true
	local port
	for port in $(grep -ho 'msg=registered .* port=[0-9]*' "$DIR"/node*.log 2>/dev/null | grep -o 'port=[0-9]*$' | cut -d= -f2 | sort -u); do
		rabbitmqctl -q delete_queue "$IMGATE_NAMESPACE.node.127.0.0.1_$port" >/dev/null 2>&1 || true
	done
}

mkdir -p "$OUT"
for port in "${IMGATE_HTTP_ADDR##*:}" $((8070 + OFF)) $((8071 + OFF)) $((8091 + OFF)) $((8101 + OFF)) $((8111 + OFF)); do
	if ss -ltn "sport = :$port" | grep -q LISTEN; then
		[[ -f $DIR/dispatch.pid ]] && kill -0 "$(cat "$DIR/dispatch.pid")" 2>/dev/null ||
			die "port $port is taken: set IMGATE_PORT_OFFSET / IMGATE_HTTP_ADDR"
	fi
done
trap cleanup EXIT
[[ -n ${IMGATE_NO_BUILD:-} ]] || go build -o "$BIN" ./cmd/imgate
export IMGATE_NO_BUILD=1

# node_ws I: the WebSocket port node I registered last (its log's "registered" line).
node_ws() { grep -o 'msg=registered .* port=[0-9]*' "$DIR/node$1.log" | tail -1 | grep -o 'port=[0-9]*$' | cut -d= -f2; }

# node_conns I: node I's imgate_connections gauge.
node_conns() { curl -fsS "http://127.0.0.1:$((8081 + OFF + 10 * $1))/metrics" 2>/dev/null | awk '/^imgate_connections\{state="bound"\}/{print $2}'; }

# cpu_ticks: "name ticks" (utime + stime, 1/100 s) of every cluster role, the generator and
# PostgreSQL, Redis and RabbitMQ (all their processes).
cpu_ticks() {
	local f pid
	for f in "$DIR"/*.pid; do
		pid=$(cat "$f")
		[[ -r /proc/$pid/stat ]] && printf '%s %s\n' "$(basename "$f" .pid)" "$(awk '{print $14 + $15}' "/proc/$pid/stat")"
	done
	[[ -n $BENCH_PID && -r /proc/$BENCH_PID/stat ]] && printf 'bench %s\n' "$(awk '{print $14 + $15}' "/proc/$BENCH_PID/stat")"
	for svc in postgres redis-server beam.smp; do
		printf '%s %s\n' "$svc" "$(for pid in $(pgrep -x "$svc"); do awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null; done | awk '{s += $1} END {print s + 0}')"
	done
}

held() { local n; n=$(node_conns 1) || n=0; [[ ${n:-0} -ge $USERS ]]; }

log "load: $(uptime)"
for run in $(seq 1 "$RUNS"); do
	rm -f "$DIR/node1.log.prev"
	[[ -f $DIR/node1.log ]] && mv "$DIR/node1.log" "$DIR/node1.log.prev"
	scripts/cluster.sh up >>"$OUT/cluster.log" 2>&1 || die "cluster up failed (see $OUT/cluster.log)"
	poll 30 node_ws 1 >/dev/null || die "node1 did not register"
	ws="ws://127.0.0.1:$(node_ws 1)/ws"
	prefix="storm$(date +%H%M%S)r$run"
	log "run $run: $USERS users onto node1 ($ws), prefix $prefix; load $(uptime | sed 's/.*load/load/')"
	"$BIN" bench --scenario storm --url "$ws" --dispatcher "http://$IMGATE_HTTP_ADDR" --conns "$USERS" --src-ips "$SRC_IPS" \
		--rate-connect "$RATE_CONNECT" --duration 120s --storm-max 120s --storm-jitter "$JITTER" \
		--user-prefix "$prefix" --quiet --json >"$OUT/run$run.json" 2>"$OUT/run$run.err" &
	BENCH_PID=$!
	poll 120 held || die "node1 never held $USERS connections"
	for i in 2 3; do curl -fsS "http://127.0.0.1:$((8081 + OFF + 10 * i))/metrics" >"$OUT/run$run.node$i.before.prom"; done
	curl -fsS "http://$IMGATE_HTTP_ADDR/metrics" >"$OUT/run$run.dispatch.before.prom" || true
	log "run $run: node1 holds $(node_conns 1); kill -9 node1 (pid $(cat "$DIR/node1.pid"))"
	cpu_ticks >"$OUT/run$run.cpu.before"
	kill -9 "$(cat "$DIR/node1.pid")"
	# The killed node may stay a zombie for a while (kill -0 still succeeds): forget its pid
	# so that the next run's `cluster.sh up` starts node1 again.
	rm -f "$DIR/node1.pid"
	# The storm: until the bench has every user bound again (its phase leaves "storm").
	poll 150 bash -c "! kill -0 $BENCH_PID 2>/dev/null || [[ \$(curl -fsS http://127.0.0.1:$((8081 + OFF + 20))/metrics http://127.0.0.1:$((8081 + OFF + 30))/metrics | awk '/^imgate_connections\\{state=\"bound\"\\}/{s += \$2} END {print s + 0}') -ge $USERS ]]" || true
	cpu_ticks >"$OUT/run$run.cpu.after"
	log "run $run: CPU seconds from the kill until all are bound again (by the nodes' gauges): $(awk 'NR == FNR {a[$1] = $2; next} {printf "%s %.2f  ", $1, ($2 - a[$1]) / 100}' "$OUT/run$run.cpu.before" "$OUT/run$run.cpu.after")"
	wait "$BENCH_PID" || log "run $run: bench exit status $?"
	BENCH_PID=
	for i in 2 3; do curl -fsS "http://127.0.0.1:$((8081 + OFF + 10 * i))/metrics" >"$OUT/run$run.node$i.after.prom"; done
	curl -fsS "http://$IMGATE_HTTP_ADDR/metrics" >"$OUT/run$run.dispatch.after.prom" || true
	jq -c '{storm: .storm | {dropped, rebound, failed, attempts, replayed, seconds, dropSpreadSeconds,
		rebind: .rebind | {count, p50: .p50Us, p99: .p99Us, max: .maxUs}, reinit: .init | {p50: .p50Us, p99: .p99Us, max: .maxUs},
		repick: .pick | {p50: .p50Us, p99: .p99Us, max: .maxUs}}, errors}' "$OUT/run$run.json" | tee -a "$OUT/summary.jsonl"
done
log "load: $(uptime)"
log "medians over $RUNS runs (storm seconds, rebind p50/p99/max ms):"
jq -s '{seconds: (map(.storm.seconds) | sort | .[length/2|floor]),
	rebindP50ms: (map(.storm.rebind.p50/1000) | sort | .[length/2|floor]),
	rebindP99ms: (map(.storm.rebind.p99/1000) | sort | .[length/2|floor]),
	rebindMaxMs: (map(.storm.rebind.max/1000) | sort | .[length/2|floor]),
	failed: map(.storm.failed)}' "$OUT/summary.jsonl" | tee "$OUT/medians.json"
log "results in $OUT"
