#!/usr/bin/env bash
# bench-groups.sh — fan-out cost (issue 12, item 3): `imgate bench --scenario groups` against
# imgate standalone --store sqlite and against Centrifugo channels of the same sizes, same run.
#
# Servers: sqlite (imgate standalone --store sqlite: persist every member's inbox row, then
# push), memory (--store memory: the same per-member inbox in memory, no disk), centrifugo
# (Centrifugo v6, memory engine: a channel publication, nothing per member stored).
# For every run × size × server: starts the server fresh (imgate with an empty data dir),
# pinned to CPU $SERVER_CPU, runs one group of SIZE members (one connection each) sending at
# the size's rate for DURATION from random members, pinned to CPU $GEN_CPU, stops the server.
# For imgate it then reads the SQLite file: inbox rows per message and the bytes of the
# message tables (dbstat: messages, inbox and their indexes) per message.
# Prints one line per size and server: medians over the runs [min–max].
# Raw reports: $OUT/<server>.<size>.<run>.json, store figures $OUT/sqlite.<size>.<run>.store.
#
# Connections come from 40 source addresses (127.0.0.2-127.0.0.41): imgate refuses a source
# address more than --max-pending-per-ip (256) connections that have not sent CONNECT_INIT yet,
# and a 5,000-member ramp at 2,000/s from one address got 2,252 HTTP 503s on a loaded machine.
#
# Environment: RUNS (3), SIZES ("10:200 500:20 5000:2", size:msgs/s), DURATION (20s),
# SERVERS ("sqlite memory centrifugo"; centrifugo only when scripts/peers.sh installed it),
# SERVER_CPU (0), GEN_CPU (1), BASE_PORT (28570: imgate ws, +1 its http, +3 centrifugo),
# OUT (var/bench-groups/<timestamp>), IMGATE_PEERS_DIR (/var/tmp/imgate-peers).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
SIZES=${SIZES:-10:200 500:20 5000:2}
DURATION=${DURATION:-20s}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
PEERS_DIR=${IMGATE_PEERS_DIR:-/var/tmp/imgate-peers}
CENTRIFUGO=$PEERS_DIR/bin/centrifugo
OUT=${OUT:-var/bench-groups/$(date +%Y%m%d-%H%M%S)}
SECRET=imgate-bench-secret
BASE_PORT=${BASE_PORT:-28570}
WS_PORT=$BASE_PORT HTTP_PORT=$((BASE_PORT + 1)) CENT_PORT=$((BASE_PORT + 3))
export IMGATE_API_KEY=bench-groups-api-key-0123456789

log() { printf 'bench-groups: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
for c in jq taskset sqlite3; do command -v $c >/dev/null || die "$c is needed"; done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [[ -z ${SERVERS:-} ]]; then
	SERVERS="sqlite memory"
	if [[ -x $CENTRIFUGO ]]; then SERVERS+=" centrifugo"; else log "centrifugo: not installed: run scripts/peers.sh"; fi
fi

log "building imgate → $OUT/imgate"
go build -o "$OUT/imgate" ./cmd/imgate
IMGATE=$OUT/imgate

# shellcheck source=scripts/bench-procs.sh
. scripts/bench-procs.sh
centrifugo_config "$OUT/centrifugo.json" "$CENT_PORT" "$SECRET" group
start_server() {
	local name=$1 port args=()
	case $name in
	sqlite | memory)
		rm -rf "$OUT/data"
		args=("$IMGATE" standalone --store "$name" --data-dir "$OUT/data" --ws-addr 127.0.0.1:$WS_PORT
			--http-addr 127.0.0.1:$HTTP_PORT --log-level warn --rate-limit 0)
		port=$WS_PORT URL=ws://127.0.0.1:$WS_PORT/ws ;;
	centrifugo)
		args=("$CENTRIFUGO" --config "$OUT/centrifugo.json")
		port=$CENT_PORT URL=ws://127.0.0.1:$CENT_PORT/connection/websocket ;;
	*) die "unknown server $name" ;;
	esac
	launch_pinned "$name" "$port" "${args[@]}"
}
trap stop_server EXIT

# store_figures SIZE RUN: inbox rows and message-table bytes per message of the stopped sqlite run.
store_figures() {
	local db=$OUT/data/imgate.db
	sqlite3 "$db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
	sqlite3 -separator ' ' "$db" "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM inbox),
		(SELECT sum(pgsize) FROM dbstat WHERE name IN ('messages','messages_sender_client','inbox','inbox_peer'))" |
		awk '{printf "{\"messages\":%d,\"inboxRows\":%d,\"bytes\":%d,\"rowsPerMsg\":%.1f,\"bytesPerMsg\":%.0f}\n", $1, $2, $3, $2/$1, $3/$1}' \
			>"$OUT/sqlite.$1.$2.store"
}

log "load average before: $(cut -d' ' -f1-3 /proc/loadavg); output in $OUT"
for run in $(seq "$RUNS"); do
	for sr in $SIZES; do
		size=${sr%%:*} rate=${sr##*:}
		for name in $SERVERS; do
			start_server "$name"
			proto=(--api "http://127.0.0.1:$HTTP_PORT")
			[[ $name == centrifugo ]] && proto=(--protocol centrifugo --centrifugo-secret "$SECRET")
			f=$OUT/$name.$size.$run.json
			taskset -c "$GEN_CPU" "$IMGATE" bench --url "$URL" "${proto[@]}" --scenario groups --group-size "$size" \
				--rate "$rate" --duration "$DURATION" --grace 30s --rate-connect 2000 --src-ips 127.0.0.2-127.0.0.41 --pid "$SERVER_PID" --json --quiet \
				--user-prefix "g${run}s$size" --seed "$run" >"$f" 2>>"$OUT/$name.bench.log" ||
				log "$name $size run $run: the generator reported a failure (see $f)"
			stop_server
			[[ $name == sqlite ]] && store_figures "$size" "$run"
			log "$(jq -r --arg n "$name" '"\($n) \(.groupSize): bound \(.conns.bound) of \(.users), acked \(.messages.acked), dlv \(.rates.deliveredPerSec|floor)/s, dlv p50 \(.latency.delivery.p50Us|floor)µs p99 \(.latency.delivery.p99Us|floor)µs, lost \(.audit.lost), lossy members \(.audit.lossyDevices), cpu \(.server[0].cpuCores // 0)"' "$f" 2>/dev/null || echo "$name $size: no report")$([[ $name == sqlite ]] && echo " store $(cat "$OUT/sqlite.$size.$run.store")")"
		done
	done
done

# med FILES JQ: "median [min–max]" of a jq expression over the files.
med() {
	local files=$1 expr=$2
	cat $files 2>/dev/null | jq -rs "[.[] | ($expr)] | sort | \"\(.[(length-1)/2|floor] | if . < 100 then (. * 100 | round / 100) else round end) [\(.[0] | if . < 100 then (. * 100 | round / 100) else round end)–\(.[-1] | if . < 100 then (. * 100 | round / 100) else round end)]\""
}
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-11s %6s %6s %6s  %-24s %-24s %-24s %5s %5s  %-18s %s\n' server size bound msg/s "deliveries/s" "delivery p50 ms" "delivery p99 ms" LOST lossy "inbox rows/msg" "bytes/msg"
for sr in $SIZES; do
	size=${sr%%:*} rate=${sr##*:}
	for name in $SERVERS; do
		fs="$OUT/$name.$size.*.json"
		lost=$(cat $fs | jq -s '[.[] | .audit.lost] | add // 0')
		lossy=$(cat $fs | jq -s '[.[] | .audit.lossyDevices] | add // 0')
		rows=- bytes=-
		if [[ $name == sqlite ]]; then
			rows=$(med "$OUT/sqlite.$size.*.store" .rowsPerMsg)
			bytes=$(med "$OUT/sqlite.$size.*.store" .bytesPerMsg)
		fi
		bound=$(cat $fs | jq -s '[.[] | .conns.bound] | min')
		printf '%-11s %6s %6s %6s  %-24s %-24s %-24s %5s %5s  %-18s %s\n' "$name" "$size" "$bound" "$rate" \
			"$(med "$fs" .rates.deliveredPerSec)" "$(med "$fs" '.latency.delivery.p50Us/1000')" \
			"$(med "$fs" '.latency.delivery.p99Us/1000')" "$lost" "$lossy" "$rows" "$bytes"
	done
done
