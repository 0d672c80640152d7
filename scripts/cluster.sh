#!/usr/bin/env bash
# cluster.sh — a local imgate cluster on 127.0.0.1: the services (scripts/services.sh), two
# savers, three nodes with --port auto, one dispatcher. Logs and pids under var/cluster/.
#
# Usage: scripts/cluster.sh up|down|status
#
# Environment:
#   IMGATE_CLUSTER_DIR   state dir (default var/cluster)
#   IMGATE_NAMESPACE     ZooKeeper namespace, Redis prefix and RabbitMQ name prefix (default imgate)
#   IMGATE_HTTP_ADDR     dispatcher address (default 127.0.0.1:8080)
#   IMGATE_NODES         number of nodes (default 3)
#   IMGATE_SAVERS        number of savers (default 2: a saver killed stalls nobody, see
#                        docs/operations.md); saver i answers /healthz on 127.0.0.1:(8069+i), node i on (8081+10i)
#   IMGATE_DELIVERY      the saver's --delivery: routed (default) or fanout
#   IMGATE_NODE_ARGS     extra flags for every node (split on spaces), e.g. "--replay-workers 16"
#   IMGATE_NODE_LOOPS    event loops per node (default: the machine's CPUs shared among the
#                        nodes, at least 1 — 1 for three nodes on two CPUs; a node alone on its
#                        machine keeps one loop per CPU; why: docs/performance.md, "Why sysmon
#                        costs a node so much here")
#   IMGATE_PORT_OFFSET   added to the savers' and nodes' HTTP ports (default 0: savers 8070,
#                        8071, nodes 8091, 8101, 8111), so that a second cluster (own
#                        namespace, dir and IMGATE_HTTP_ADDR) can run beside the first
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${IMGATE_CLUSTER_DIR:-var/cluster}
NS=${IMGATE_NAMESPACE:-imgate}
HTTP=${IMGATE_HTTP_ADDR:-127.0.0.1:8080}
NODES=${IMGATE_NODES:-3}
SAVERS=${IMGATE_SAVERS:-2}
DELIVERY=${IMGATE_DELIVERY:-routed}
OFF=${IMGATE_PORT_OFFSET:-0}
read -r -a NODE_ARGS <<<"${IMGATE_NODE_ARGS:-}"
LOOPS=${IMGATE_NODE_LOOPS:-$(($(nproc) / NODES))}
((LOOPS >= 1)) || LOOPS=1
BIN=bin/imgate
ZK=(--zk 127.0.0.1:2181)
AMQP=(--amqp amqp://guest:guest@127.0.0.1:5672/)
REDIS=(--redis 127.0.0.1:6379)
PG=(--pg "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")

log() { printf 'cluster: %s\n' "$*" >&2; }

# start NAME ARGS...: run bin/imgate ARGS in the background, log to DIR/NAME.log, pid in DIR/NAME.pid.
start() {
	local name=$1
	shift
	if [[ -f $DIR/$name.pid ]] && kill -0 "$(cat "$DIR/$name.pid")" 2>/dev/null; then
		log "$name already running (pid $(cat "$DIR/$name.pid"))"
		return
	fi
	setsid nohup "$BIN" "$@" >>"$DIR/$name.log" 2>&1 </dev/null &
	echo $! >"$DIR/$name.pid"
	log "$name started (pid $!, log $DIR/$name.log)"
}

# wait_http URL: poll URL until it answers 200 or 60 s pass.
wait_http() {
	local deadline=$((SECONDS + 60))
	until curl -fsS -o /dev/null "$1" 2>/dev/null; do
		((SECONDS < deadline)) || { log "no answer from $1 after 60s"; return 1; }
		sleep 0.3
	done
}

up() {
	scripts/services.sh up zookeeper rabbitmq redis postgres
	mkdir -p "$DIR" bin
	[[ -n ${IMGATE_NO_BUILD:-} ]] || go build -o "$BIN" ./cmd/imgate
	for i in $(seq 1 "$SAVERS"); do
		start "saver$i" saver "${ZK[@]}" "${AMQP[@]}" "${REDIS[@]}" "${PG[@]}" --namespace "$NS" \
			--http-addr "127.0.0.1:$((8069 + OFF + i))" --delivery "$DELIVERY"
	done
	start dispatch dispatch "${ZK[@]}" "${REDIS[@]}" "${PG[@]}" --namespace "$NS" --http-addr "$HTTP"
	for i in $(seq 1 "$NODES"); do
		start "node$i" node "${ZK[@]}" "${AMQP[@]}" "${REDIS[@]}" "${PG[@]}" --namespace "$NS" \
			--ws-addr 127.0.0.1:0 --port auto --node-id "$i" --event-loops "$LOOPS" --http-addr "127.0.0.1:$((8080 + OFF + 10 * i + 1))" \
			--allowed-origins "http://$HTTP,http://localhost:${HTTP##*:},http://127.0.0.1:${HTTP##*:}" "${NODE_ARGS[@]}"
	done
	wait_http "http://$HTTP/healthz"
	local deadline=$((SECONDS + 60))
	until [[ $(curl -fsS "http://$HTTP/api/v1/nodes" | grep -o '"nodeId"' | wc -l) -ge $NODES ]]; do
		((SECONDS < deadline)) || { log "fewer than $NODES nodes registered after 60s"; status; return 1; }
		sleep 0.3
	done
	status
	log "up: dispatcher http://$HTTP (try: curl 'http://$HTTP/api/v1/nodes/pick?userId=alice')"
}

down() {
	shopt -s nullglob
	for pidfile in "$DIR"/*.pid; do
		local pid
		pid=$(cat "$pidfile")
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid"
			local deadline=$((SECONDS + 20))
			while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
			kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
			log "stopped $(basename "$pidfile" .pid) (pid $pid)"
		fi
		rm -f "$pidfile"
	done
}

status() {
	shopt -s nullglob
	for pidfile in "$DIR"/*.pid; do
		local name pid state=down
		name=$(basename "$pidfile" .pid)
		pid=$(cat "$pidfile")
		kill -0 "$pid" 2>/dev/null && state=up
		printf '%-10s %-5s pid %s\n' "$name" "$state" "$pid"
	done
	printf 'nodes (from the dispatcher at %s):\n' "$HTTP"
	curl -fsS "http://$HTTP/api/v1/nodes" 2>/dev/null || printf '  dispatcher not answering\n'
	printf '\n'
}

case ${1:-} in
up) up ;;
down) down ;;
status) status ;;
*)
	echo "usage: $0 up|down|status" >&2
	exit 2
	;;
esac
