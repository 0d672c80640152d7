#!/usr/bin/env bash
# bench-compare.sh — imgate against its peers, same harness, same machine, same run.
#
# Builds imgate, then for every server × scenario × run: starts the server fresh, pinned to CPU
# $SERVER_CPU (taskset), runs `imgate bench --json` pinned to CPU $GEN_CPU, stops the server.
# Prints one table: medians over the runs (min–max in brackets) and the ratio of imgate
# (--store none) to each peer. Raw reports: $OUT/<server>.<scenario>.<run>.json.
#
# Usage: scripts/bench-compare.sh [--quick]
#   --quick   the `make bench` version (about four minutes): RUNS=3, idle p2p devices, small and short
#
# Servers (SERVERS, space-separated; default: all that are available):
#   imgate      imgate standalone --store none --event-loops $EVENT_LOOPS (live only, like the peers)
#   imgate-el2  the same with --event-loops 2 (the default on this machine), still on one CPU
#   sqlite      imgate standalone --store sqlite (persist, then push) --event-loops $EVENT_LOOPS
#   gorilla     bench/baseline: gorilla/websocket, two goroutines per connection
#   centrifugo  Centrifugo v6 (memory engine), driven by `imgate bench --protocol centrifugo`;
#               only when scripts/peers.sh installed it
#
# Scenarios (SCENARIOS, default "idle p2p lat devices"):
#   idle     IDLE_CONNS connections bound and held IDLE_HOLD: server RSS growth per connection
#   p2p      P2P_CONNS users, closed loop (INFLIGHT unACKed per connection) for DURATION: ACKed/s,
#            server CPU while sending, ACKed messages per server CPU-second
#   lat      P2P_CONNS users at a fixed rate: half of the lowest median p2p saturation of the
#            servers in this run (LAT_RATE overrides), the same for all: delivery percentiles
#   devices  DEV_USERS users × 3 devices, closed loop: deliveries/s and per server CPU-second
#
# Environment: RUNS (3), IDLE_CONNS (10000), IDLE_HOLD (5s), P2P_CONNS (1000), INFLIGHT (4),
# DURATION (5s), DEV_USERS (300), EVENT_LOOPS (1), SERVER_CPU (0), GEN_CPU (1), BASE_PORT (28470:
# imgate ws, +1 its http, +2 gorilla, +3 centrifugo; refused when in use), OUT
# (var/bench/<timestamp>), IMGATE_PEERS_DIR (/var/tmp/imgate-peers). Above 19,000 idle connections
# the generator uses 2 processes and source addresses 127.0.0.2-127.0.0.9.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ${1:-} == --quick ]]; then
	: "${RUNS:=3}" "${IDLE_CONNS:=2000}" "${IDLE_HOLD:=1s}" "${DURATION:=2s}" "${DEV_USERS:=200}" "${P2P_CONNS:=500}"
	: "${SCENARIOS:=idle p2p devices}"
elif [[ -n ${1:-} ]]; then
	sed -n '2,30p' "$0"
	exit 2
fi
RUNS=${RUNS:-3}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_HOLD=${IDLE_HOLD:-5s}
P2P_CONNS=${P2P_CONNS:-1000}
INFLIGHT=${INFLIGHT:-4}
DURATION=${DURATION:-5s}
DEV_USERS=${DEV_USERS:-300}
EVENT_LOOPS=${EVENT_LOOPS:-1}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
SCENARIOS=${SCENARIOS:-idle p2p lat devices}
PEERS_DIR=${IMGATE_PEERS_DIR:-/var/tmp/imgate-peers}
CENTRIFUGO=$PEERS_DIR/bin/centrifugo
OUT=${OUT:-var/bench/$(date +%Y%m%d-%H%M%S)}
SECRET=imgate-bench-secret
BASE_PORT=${BASE_PORT:-28470}
WS_PORT=$BASE_PORT HTTP_PORT=$((BASE_PORT + 1)) GORILLA_PORT=$((BASE_PORT + 2)) CENT_PORT=$((BASE_PORT + 3))

log() { printf 'bench-compare: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
command -v jq >/dev/null || die "jq is needed (apt-get install jq)"
command -v taskset >/dev/null || die "taskset is needed (util-linux)"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

if [[ -z ${SERVERS:-} ]]; then
	SERVERS="imgate sqlite gorilla"
	if [[ -x $CENTRIFUGO ]]; then
		SERVERS+=" centrifugo"
	else
		log "centrifugo: not installed: run scripts/peers.sh"
	fi
fi

log "building imgate → $OUT/imgate"
go build -o "$OUT/imgate" ./cmd/imgate
IMGATE=$OUT/imgate

# shellcheck source=scripts/bench-procs.sh
. scripts/bench-procs.sh
centrifugo_config "$OUT/centrifugo.json" "$CENT_PORT" "$SECRET" personal

# start_server NAME RUN: start it pinned to SERVER_CPU; sets SERVER_PID and URL.
start_server() {
	local name=$1 run=$2 port args=()
	case $name in
	imgate | imgate-el2 | sqlite)
		local loops=$EVENT_LOOPS store=none
		[[ $name == imgate-el2 ]] && loops=2
		[[ $name == sqlite ]] && store=sqlite
		rm -rf "$OUT/data"
		args=("$IMGATE" standalone --store "$store" --data-dir "$OUT/data" --event-loops "$loops"
			--ws-addr 127.0.0.1:$WS_PORT --http-addr 127.0.0.1:$HTTP_PORT --log-level warn --rate-limit 0)
		port=$WS_PORT URL=ws://127.0.0.1:$WS_PORT/ws ;;
	gorilla)
		args=("$IMGATE" bench baseline --addr 127.0.0.1:$GORILLA_PORT)
		port=$GORILLA_PORT URL=ws://127.0.0.1:$GORILLA_PORT/ws ;;
	centrifugo)
		args=("$CENTRIFUGO" --config "$OUT/centrifugo.json")
		port=$CENT_PORT URL=ws://127.0.0.1:$CENT_PORT/connection/websocket ;;
	*) die "unknown server $name" ;;
	esac
	launch_pinned "$name" "$port" "${args[@]}"
}

trap stop_server EXIT

# bench NAME SCEN RUN ARGS...: one generator run against the started server.
bench() {
	local name=$1 scen=$2 run=$3
	shift 3
	local proto=()
	[[ $name == centrifugo ]] && proto=(--protocol centrifugo --centrifugo-secret "$SECRET")
	local f=$OUT/$name.$scen.$run.json
	if ! taskset -c "$GEN_CPU" "$IMGATE" bench --url "$URL" "${proto[@]}" --pid "$SERVER_PID" --json --quiet \
		--user-prefix "b${run}$scen" --seed "$run" "$@" >"$f" 2>>"$OUT/$name.bench.log"; then
		log "$name $scen run $run: the generator reported a failure (see $f)"
	fi
	log "$(jq -r --arg n "$name" --arg s "$scen" '"\($n) \($s): bound \(.conns.bound), acked \(.rates.ackedPerSec|floor)/s, dlv \(.rates.deliveredPerSec|floor)/s, dlv p99 \(.latency.delivery.p99Us)µs, lost \(.audit.lost), \(.server[0].bytesPerConn|floor) B/conn, cpu \(.server[0].cpuCores // 0)"' "$f" 2>/dev/null || echo "$name $scen: no report")"
}

idle_args() {
	local a=(--scenario idle --conns "$IDLE_CONNS" --duration "$IDLE_HOLD" --rate-connect 5000 --keepalive 20s)
	if ((IDLE_CONNS > 19000)); then
		a+=(--procs 2 --src-ips 127.0.0.2-127.0.0.9)
	fi
	echo "${a[@]}"
}

run_scenario() {
	local scen=$1 extra=()
	for run in $(seq "$RUNS"); do
		for name in $SERVERS; do
			case $scen in
			idle) extra=($(idle_args)) ;;
			p2p) extra=(--scenario p2p --conns "$P2P_CONNS" --rate 0 --inflight "$INFLIGHT" --duration "$DURATION") ;;
			lat) extra=(--scenario p2p --conns "$P2P_CONNS" --rate "$LAT_RATE" --duration "$DURATION") ;;
			devices) extra=(--scenario devices --users "$DEV_USERS" --devices 3 --rate 0 --inflight "$INFLIGHT" --duration "$DURATION") ;;
			esac
			start_server "$name" "$run"
			bench "$name" "$scen" "$run" "${extra[@]}"
			stop_server
		done
	done
}

# median NAME SCEN JQ: median over the runs of a jq expression on the reports.
median() {
	cat "$OUT/$1.$2".*.json 2>/dev/null | jq -s "[.[] | ($3)] | sort | .[(length-1)/2|floor] // empty"
}
# num V: V rounded: two decimals below 100, none above.
num() { jq -n "$1 | if . < 100 then (. * 100 | round / 100) else round end"; }
range() {
	cat "$OUT/$1.$2".*.json 2>/dev/null |
		jq -rs "[.[] | ($3) | if . < 100 then (. * 100 | round / 100) else round end] | sort | \"\(.[0])–\(.[-1])\""
}
sum_lost() { cat "$OUT/$1.$2".*.json 2>/dev/null | jq -s '[.[] | .audit.lost] | add // 0'; }

load=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before: $load; output in $OUT"
for scen in $SCENARIOS; do
	if [[ $scen == lat ]]; then
		if [[ -z ${LAT_RATE:-} ]]; then
			LAT_RATE=
			for name in $SERVERS; do
				s=$(median "$name" p2p '.rates.ackedPerSec')
				[[ -n $s ]] || continue
				h=$(jq -n "$s / 2 | floor")
				if [[ -z $LAT_RATE ]] || ((h < LAT_RATE)); then LAT_RATE=$h; fi
			done
			: "${LAT_RATE:=2000}"
		fi
		log "lat: fixed rate $LAT_RATE/s for every server"
	fi
	run_scenario "$scen"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# The table: one row per scenario × metric, one column per server, then imgate ÷ each peer.
{
	printf 'metric'
	for name in $SERVERS; do printf '\t%s' "$name"; done
	for name in $SERVERS; do [[ $name == imgate ]] || printf '\timgate/%s' "$name"; done
	printf '\n'
	row() { # LABEL SCEN JQ [lower-is-better]
		local label=$1 scen=$2 expr=$3 inv=${4:-} v
		declare -A val
		printf '%s' "$label"
		for name in $SERVERS; do
			v=$(median "$name" "$scen" "$expr")
			val[$name]=$v
			if [[ -z $v ]]; then printf '\t-'; else printf '\t%s [%s]' "$(num "$v")" "$(range "$name" "$scen" "$expr")"; fi
		done
		for name in $SERVERS; do
			[[ $name == imgate ]] && continue
			if [[ -z ${val[imgate]:-} || -z ${val[$name]:-} ]] || jq -e -n "${val[imgate]} == 0 or ${val[$name]} == 0" >/dev/null; then
				printf '\t-'
			elif [[ -n $inv ]]; then
				printf '\t%s' "$(jq -n "${val[$name]} / ${val[imgate]} * 100 | floor / 100")×"
			else
				printf '\t%s' "$(jq -n "${val[imgate]} / ${val[$name]} * 100 | floor / 100")×"
			fi
		done
		printf '\n'
	}
	for scen in $SCENARIOS; do
		case $scen in
		idle)
			row "idle: RSS bytes/conn @$IDLE_CONNS (ratio: peer÷imgate)" idle '.server[0].bytesPerConn' inv
			row "idle: bound connections" idle '.conns.bound' ;;
		p2p)
			row "p2p: ACKed msg/s, closed loop ($P2P_CONNS conns × $INFLIGHT)" p2p '.rates.ackedPerSec'
			row "p2p: server CPU cores while sending" p2p '.server[0].cpuCores // 0'
			row "p2p: ACKed msg per server CPU-second" p2p 'if (.server[0].cpuCores // 0) > 0 then .rates.ackedPerSec / .server[0].cpuCores else 0 end'
			row "p2p: delivery p99 µs at saturation (ratio: peer÷imgate)" p2p '.latency.delivery.p99Us' inv ;;
		lat)
			row "lat @${LAT_RATE}/s: delivery p50 µs (ratio: peer÷imgate)" lat '.latency.delivery.p50Us' inv
			row "lat @${LAT_RATE}/s: delivery p99 µs (ratio: peer÷imgate)" lat '.latency.delivery.p99Us' inv
			row "lat @${LAT_RATE}/s: delivery p99.9 µs (ratio: peer÷imgate)" lat '.latency.delivery.p999Us' inv
			row "lat @${LAT_RATE}/s: server CPU cores" lat '.server[0].cpuCores // 0' inv ;;
		devices)
			row "devices: deliveries/s ($DEV_USERS users × 3, closed loop)" devices '.rates.deliveredPerSec'
			row "devices: deliveries per server CPU-second" devices 'if (.server[0].cpuCores // 0) > 0 then .rates.deliveredPerSec / .server[0].cpuCores else 0 end'
			row "devices: delivery p99 µs (ratio: peer÷imgate)" devices '.latency.delivery.p99Us' inv ;;
		esac
	done
	printf 'lost (all runs, all scenarios)'
	for name in $SERVERS; do
		t=0
		for scen in $SCENARIOS; do t=$((t + $(sum_lost "$name" "$scen"))); done
		printf '\t%s' "$t"
	done
	printf '\n'
} >"$OUT/table.tsv"

echo
echo "imgate vs peers — medians of $RUNS runs [min–max]; server on CPU $SERVER_CPU, generator on CPU $GEN_CPU;"
echo "imgate --event-loops $EVENT_LOOPS; $(nproc) CPUs, $(uname -r); load average $load before, $load_after after"
echo "ratios: imgate ÷ peer (higher is better for imgate), or peer ÷ imgate where marked (lower-is-better metrics)"
column -t -s $'\t' "$OUT/table.tsv"
echo "reports: $OUT"
