#!/usr/bin/env bash
# bench-cluster.sh — the cluster figures of docs/performance.md ("Cluster with batches"): the
# local cluster (scripts/cluster.sh) with --delivery fanout and routed beside one
# `imgate standalone --store sqlite`, measured in the same run, alternating configurations.
#
# Usage: scripts/bench-cluster.sh [main] [nodes] [saverkill] [report]
#   main   RUNS rounds; each round starts every configuration of CONFIGS fresh (cluster: schema
#          dropped, `vacuum analyze`, cluster up; standalone: a new data dir) and runs
#          saturation (p2p --rate 0 --inflight 4), then p2p at each rate of RATES; with
#          CPU_SAMPLE=1 pidstat samples every process during the saturation run; with
#          PROCS2=1 a second saturation run uses a generator of 2 processes.
#   nodes  for each node count of NODE_COUNTS and each delivery mode: a fresh cluster, one
#          p2p run at NODE_RATE msg/s; node deliveries per chat message from the saver's log.
#   saverkill  RUNS rounds of a fresh routed cluster with two savers: p2p at KILL_RATE msg/s
#          undisturbed (control), then again with `kill -9` of saver1 KILL_AFTER seconds in;
#          the senders' longest wait for an ACK (ack max) is the stall the kill caused.
#   report medians [min–max], same-round ratios and the saver's counters per run of OUT
#          (set OUT to an earlier run's directory to report it again).
#   (default: main nodes report)
#
# Environment: RUNS (3), CONFIGS ("fanout routed standalone"), CONNS (300), DURATION (10s),
#   RATES ("500 2000"), NODE_COUNTS ("3 6 12"), NODE_RATE (1000), CPU_SAMPLE (1), PROCS2 (1),
#   OUT (var/bench-cluster/<time>), IMGATE_NO_BUILD (set: use bin/imgate as it is),
#   KILL_RATE (500), KILL_AFTER (4), IMGATE_NAMESPACE (imgate: its schema is dropped before
#   every cluster start; give another one on a machine where someone else runs a cluster).
#
# Needs root only where scripts/services.sh does. Leaves the cluster down.
# The machine's PostgreSQL may run with autovacuum off (this one does): the saver's tables then
# bloat run after run, so every cluster start is preceded by `vacuum analyze`.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
CONFIGS=${CONFIGS:-fanout routed standalone}
CONNS=${CONNS:-300}
DURATION=${DURATION:-10s}
RATES=${RATES:-500 2000}
NODE_COUNTS=${NODE_COUNTS:-3 6 12}
NODE_RATE=${NODE_RATE:-1000}
KILL_RATE=${KILL_RATE:-500}
KILL_AFTER=${KILL_AFTER:-4}
CPU_SAMPLE=${CPU_SAMPLE:-1}
PROCS2=${PROCS2:-1}
OUT=${OUT:-var/bench-cluster/$(date +%Y%m%d-%H%M%S)}
BIN=bin/imgate
NS=${IMGATE_NAMESPACE:-imgate}
export IMGATE_NAMESPACE=$NS
PSQL=(psql -U postgres -h 127.0.0.1 -q -v ON_ERROR_STOP=1)
SA_HTTP=127.0.0.1:8090
SA_WS=127.0.0.1:8001
STEPS=("$@")
((${#STEPS[@]})) || STEPS=(main nodes report)

log() { printf 'bench-cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=scripts/bench-procs.sh
. scripts/bench-procs.sh # poll

http_ok() { curl -fsS -o /dev/null "$1" 2>/dev/null; }

SA_PID=
CLUSTER_DIR=
cleanup() {
	[[ -z $SA_PID ]] || { kill "$SA_PID" 2>/dev/null || true; wait "$SA_PID" 2>/dev/null || true; }
	[[ -z $CLUSTER_DIR ]] || IMGATE_CLUSTER_DIR=$CLUSTER_DIR scripts/cluster.sh down || true
}
trap cleanup EXIT

# cluster_up DIR DELIVERY NODES: fresh schema, vacuum, cluster up with its state in DIR.
cluster_up() {
	local dir=$1 delivery=$2 nodes=$3
	"${PSQL[@]}" -c "set client_min_messages = warning; drop schema if exists $NS cascade"
	"${PSQL[@]}" -c 'vacuum analyze'
	CLUSTER_DIR=$dir
	IMGATE_CLUSTER_DIR=$dir IMGATE_NODES=$nodes IMGATE_DELIVERY=$delivery IMGATE_NO_BUILD=1 \
		scripts/cluster.sh up >"$dir.up.log" 2>&1 || { cat "$dir.up.log" >&2; die "cluster up failed"; }
}

# cluster_down: stop the cluster, then delete the node queues of its own nodes. They would
# expire (x-expires, 5 min) but until then stay bound to the fanout exchange and take a copy
# of every batch of the next configuration.
cluster_down() {
	IMGATE_CLUSTER_DIR=$CLUSTER_DIR scripts/cluster.sh down >>"$CLUSTER_DIR.up.log" 2>&1
	local port
	for port in $(grep -ho 'msg=registered .* port=[0-9]*' "$CLUSTER_DIR"/node*.log | grep -o 'port=[0-9]*$' | cut -d= -f2 | sort -u); do
		rabbitmqctl -q delete_queue "$NS.node.127.0.0.1_$port" >/dev/null 2>&1 || true
	done
	CLUSTER_DIR=
}

standalone_up() {
	local dir=$1
	mkdir -p "$dir"
	http_ok "http://$SA_HTTP/healthz" && die "something already answers on $SA_HTTP"
	"$BIN" standalone --store sqlite --data-dir "$dir/data" --http-addr "$SA_HTTP" --ws-addr "$SA_WS" \
		>"$dir/standalone.log" 2>&1 &
	SA_PID=$!
	poll 30 http_ok "http://$SA_HTTP/healthz" || die "standalone not answering"
}

standalone_down() {
	kill "$SA_PID"
	wait "$SA_PID" 2>/dev/null || true
	SA_PID=
}

# saver_total DIR: the sum over the savers (DIR/saver*.log) of each one's last totalRecords.
saver_total() {
	local f t sum=0
	for f in "$1"/saver*.log; do
		[[ -f $f ]] || continue
		t=$(grep -o 'totalRecords=[0-9]*' "$f" 2>/dev/null | tail -1 | cut -d= -f2 || true)
		sum=$((sum + ${t:-0}))
	done
	echo "$sum"
}

# saver_lines DIR: "file:lines ..." of every saver log, the mark saver_sum counts from.
saver_lines() {
	local f
	for f in "$1"/saver*.log; do [[ -f $f ]] && printf '%s:%d ' "$f" "$(wc -l <"$f")"; done
}

# saver_sum MARK: consumed records amqpMessages nodeRecords fanoutBatches summed over the
# stats lines every saver logged after MARK (saver_lines).
saver_sum() {
	local m
	for m in $1; do tail -n +"$((${m##*:} + 1))" "${m%:*}"; done | grep 'saver published' | awk '
		{ for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] ~ /^(consumed|records|amqpMessages|nodeRecords|fanoutBatches)$/) s[kv[1]] += kv[2] } }
		END { printf "%d %d %d %d %d\n", s["consumed"], s["records"], s["amqpMessages"], s["nodeRecords"], s["fanoutBatches"] }'
}

saver_reached() { (($(saver_total "$1") >= $2)); }

# cpu_sample FILE: pidstat of every process, 3 samples of 2 s, starting 3 s into the run.
cpu_sample() {
	sleep 3 # a fixed offset into the send phase, not a wait for a condition
	pidstat -u -l 2 3 >"$1" 2>&1 || true
}

# bench NAME TARGET ARGS...: one generator run, JSON to $OUT/NAME.json, one summary line.
bench() {
	local name=$1 target=$2
	shift 2
	"$BIN" bench --scenario p2p --conns "$CONNS" --duration "$DURATION" --dispatcher "$target" \
		--user-prefix "${name//-/_}_$RANDOM" --json --quiet "$@" >"$OUT/$name.json"
	jq -r --arg n "$name" '"\($n) acked/s=\(.rates.ackedPerSec|floor) ack_p50=\(.latency.ack.p50Us/1000)ms ack_p99=\(.latency.ack.p99Us/1000)ms del_p50=\(.latency.delivery.p50Us/1000)ms del_p99=\(.latency.delivery.p99Us/1000)ms lost=\(.audit.lost) dup=\(.audit.duplicated) unacked=\(.audit.unacked) refused=\(.messages.refused) dropped=\(.conns.dropped)"' \
		"$OUT/$name.json" | sed "s/\$/ load=$(cut -d' ' -f1 /proc/loadavg)/" | tee -a "$OUT/summary.txt"
}

# cluster_bench DIR NAME ARGS...: bench against the cluster, then wait until the saver has logged
# every ACKed record and append its counters for this run to summary.txt.
cluster_bench() {
	local dir=$1 name=$2
	shift 2
	local from before acked c r m n f
	from=$(saver_lines "$dir")
	before=$(saver_total "$dir")
	bench "$name" http://127.0.0.1:8080 "$@"
	acked=$(jq .messages.acked "$OUT/$name.json")
	poll 40 saver_reached "$dir" $((before + acked)) || log "$name: saver logged fewer records than ACKed"
	read -r c r m n f < <(saver_sum "$from")
	printf '%s saver consumed=%d records=%d amqpMessages=%d nodeRecords=%d fanoutBatches=%d\n' \
		"$name" "$c" "$r" "$m" "$n" "$f" | tee -a "$OUT/summary.txt"
}

saturation() {
	local dir=$1 tag=$2 target=$3 run=$4
	local pid=
	if ((CPU_SAMPLE)); then
		cpu_sample "$OUT/$tag-sat-r$run.pidstat" &
		pid=$!
	fi
	if [[ $tag == standalone ]]; then
		bench "$tag-sat-r$run" "$target" --rate 0 --inflight 4
	else
		cluster_bench "$dir" "$tag-sat-r$run" --rate 0 --inflight 4
	fi
	[[ -z $pid ]] || wait "$pid"
	if ((PROCS2)); then
		if [[ $tag == standalone ]]; then
			bench "$tag-sat2p-r$run" "$target" --rate 0 --inflight 4 --procs 2
		else
			cluster_bench "$dir" "$tag-sat2p-r$run" --rate 0 --inflight 4 --procs 2
		fi
	fi
}

main() {
	local run tag rate
	for run in $(seq 1 "$RUNS"); do
		for tag in $CONFIGS; do
			log "round $run: $tag"
			if [[ $tag == standalone ]]; then
				standalone_up "$OUT/standalone-r$run"
				saturation "" standalone "http://$SA_HTTP" "$run"
				for rate in $RATES; do bench "standalone-rate$rate-r$run" "http://$SA_HTTP" --rate "$rate"; done
				standalone_down
			else
				local dir=$OUT/cluster-$tag-r$run
				cluster_up "$dir" "$tag" 3
				saturation "$dir" "$tag" http://127.0.0.1:8080 "$run"
				for rate in $RATES; do cluster_bench "$dir" "$tag-rate$rate-r$run" --rate "$rate"; done
				cluster_down
			fi
		done
	done
}

nodes() {
	local n tag
	for n in $NODE_COUNTS; do
		for tag in fanout routed; do
			log "nodes: $n, $tag"
			local dir=$OUT/nodes$n-$tag
			cluster_up "$dir" "$tag" "$n"
			cluster_bench "$dir" "nodes$n-$tag" --rate "$NODE_RATE"
			rabbitmqctl list_queues name messages consumers >"$OUT/nodes$n-$tag.queues" 2>&1 || true
			cluster_down
		done
	done
}

saverkill() {
	local run dir
	for run in $(seq 1 "$RUNS"); do
		log "saverkill: round $run"
		dir=$OUT/saverkill-r$run
		cluster_up "$dir" routed 3
		cluster_bench "$dir" "saverkill-ctl-r$run" --rate "$KILL_RATE"
		(
			sleep "$KILL_AFTER" # the scenario: the saver dies this far into the run
			kill -KILL "$(cat "$dir/saver1.pid")"
			log "saverkill: killed saver1 (pid $(cat "$dir/saver1.pid"))"
		) &
		local killer=$!
		bench "saverkill-r$run" http://127.0.0.1:8080 --rate "$KILL_RATE"
		wait "$killer"
		cluster_down
	done
	printf 'saverkill: ack max ms, control: %s\n' "$(field "saverkill-ctl-r*.json" '.latency.ack.maxUs/1000|round' | med)" | tee -a "$OUT/summary.txt"
	printf 'saverkill: ack max ms, saver1 killed: %s\n' "$(field "saverkill-r*.json" '.latency.ack.maxUs/1000|round' | med)" | tee -a "$OUT/summary.txt"
}

# med: numbers on stdin → "median [min–max]".
med() { sort -g | awk '{a[NR]=$1} END{ if(NR==0){print "-";exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%s [%s–%s]\n", m, a[1], a[NR]}'; }
field() { # field GLOB JQ: JQ applied to every report of OUT matching GLOB
	local f; for f in "$OUT"/$1; do [[ -f $f ]] && jq -r "$2" "$f"; done
}

# cpu FILE...: mean %CPU (100 = one core) by role over the pidstat samples of FILE.
cpu() {
for f in "$@"; do
	awk -v f="$(basename "$f" .pidstat)" '$1 ~ /^[0-9][0-9]:/ && $3 ~ /^[0-9]+$/ {
		if (!($1 in seen)) { seen[$1]=1; ns++ }
		cpu=$8; cmd=""; for(i=10;i<=NF;i++) cmd=cmd" "$i
		k="other"
		if (cmd ~ /beam.smp/) k="rabbitmq"
		else if (cmd ~ /imgate bench/) k="bench"
		else if (cmd ~ /imgate node/) k="nodes"
		else if (cmd ~ /imgate saver/) k="saver"
		else if (cmd ~ /imgate dispatch/) k="dispatch"
		else if (cmd ~ /imgate standalone/) k="standalone"
		else if (cmd ~ /^ postgres/) k="postgres"
		else if (cmd ~ /redis|zookeeper/) k="redis+zk"
		else if (cmd ~ /go-build|\.test /) k="foreign_tests"
		s[k]+=cpu; tot+=cpu
		if (k=="nodes") { match(cmd, /--node-id [0-9]+/); nd[substr(cmd, RSTART+10, RLENGTH-10)]+=cpu }
	} END { printf "%s", f; n=split("rabbitmq postgres nodes saver dispatch standalone bench redis+zk foreign_tests other", o, " "); for(i=1;i<=n;i++) if (o[i] in s) printf " %s=%.0f", o[i], s[o[i]]/ns; printf " total=%.0f  per-node:", tot/ns; for (k in nd) printf " %s=%.0f", k, nd[k]/ns; printf "\n" }' "$f"
	done
}

report() {
	local tag rate r s c
	field() { # field GLOB JQ
		local f; for f in $OUT/$1; do [[ -f $f ]] && jq -r "$2" "$f"; done
	}
	for tag in fanout routed standalone; do
		printf '== %s\n' "$tag"
		printf 'sat acked/s      %s\n' "$(field "$tag-sat-r*.json" '.rates.ackedPerSec|floor' | med)"
		printf 'sat ack p50 ms   %s\n' "$(field "$tag-sat-r*.json" '.latency.ack.p50Us/1000|.*10|round/10' | med)"
		printf 'sat ack p99 ms   %s\n' "$(field "$tag-sat-r*.json" '.latency.ack.p99Us/1000|.*10|round/10' | med)"
		printf 'sat del p99 ms   %s\n' "$(field "$tag-sat-r*.json" '.latency.delivery.p99Us/1000|.*10|round/10' | med)"
		printf 'sat2p acked/s    %s\n' "$(field "$tag-sat2p-r*.json" '.rates.ackedPerSec|floor' | med)"
		for rate in 500 2000; do
			printf 'rate%s del p50 ms %s\n' $rate "$(field "$tag-rate$rate-r*.json" '.latency.delivery.p50Us/1000|.*100|round/100' | med)"
			printf 'rate%s del p99 ms %s\n' $rate "$(field "$tag-rate$rate-r*.json" '.latency.delivery.p99Us/1000|.*100|round/100' | med)"
			printf 'rate%s ack p99 ms %s\n' $rate "$(field "$tag-rate$rate-r*.json" '.latency.ack.p99Us/1000|.*100|round/100' | med)"
		done
		printf 'lost total %s dup %s unacked %s refused %s dropped %s\n' \
			"$(field "$tag-*.json" '.audit.lost' | paste -sd+ | bc)" "$(field "$tag-*.json" '.audit.duplicated' | paste -sd+ | bc)" \
			"$(field "$tag-*.json" '.audit.unacked' | paste -sd+ | bc)" "$(field "$tag-*.json" '.messages.refused' | paste -sd+ | bc)" \
			"$(field "$tag-*.json" '.conns.dropped' | paste -sd+ | bc)"
	done
	echo "== same-round ratios cluster/standalone (saturation)"
	for r in 1 2 3; do
		s=$(jq .rates.ackedPerSec "$OUT/standalone-sat-r$r.json" 2>/dev/null) || continue
		for tag in fanout routed; do
			c=$(jq .rates.ackedPerSec "$OUT/$tag-sat-r$r.json" 2>/dev/null) || continue # not in CONFIGS
			echo "r$r $tag $(echo "scale=3; $c/$s" | bc)"
		done
	done
	echo "== saver counters per run: (consumed+amqp)/records, nodeRecords/records"
	grep ' saver ' "$OUT/summary.txt" | awk '{for(i=3;i<=NF;i++){split($i,kv,"=");v[kv[1]]=kv[2]} printf "%-22s records=%7d consumed/rec=%.4f amqp/rec=%.4f broker/rec=%.4f nodeRec/rec=%.3f recs/consumed=%.1f recs/amqp=%.1f\n",$1,v["records"],v["consumed"]/v["records"],v["amqpMessages"]/v["records"],(v["consumed"]+v["amqpMessages"])/v["records"],v["nodeRecords"]/v["records"],v["records"]/v["consumed"],v["records"]/(v["amqpMessages"]?v["amqpMessages"]:1)}'
	echo "== CPU by role at saturation (%, 100 = one core; mean of 3 pidstat samples of 2 s)"
	shopt -s nullglob
	local files=("$OUT"/*.pidstat)
	((${#files[@]} == 0)) || cpu "${files[@]}"
}

if [[ ${STEPS[*]} == report ]]; then
	report
	exit 0
fi
if ((CPU_SAMPLE)) && ! command -v pidstat >/dev/null; then
	die "CPU_SAMPLE=1 needs pidstat (Debian package sysstat: apt-get install sysstat), or set CPU_SAMPLE=0"
fi
mkdir -p "$OUT"
[[ -n ${IMGATE_NO_BUILD:-} ]] || go build -o "$BIN" ./cmd/imgate
[[ -x $BIN ]] || die "no $BIN"
http_ok http://127.0.0.1:8080/healthz && die "something already answers on 127.0.0.1:8080 (scripts/cluster.sh down?)"
scripts/services.sh up zookeeper rabbitmq redis postgres
log "autovacuum: $("${PSQL[@]}" -Atc 'show autovacuum') (off: every cluster start runs vacuum analyze)"
log "output in $OUT"
for step in "${STEPS[@]}"; do
	case $step in
	main | nodes | saverkill | report) "$step" ;;
	*) die "unknown step $step (main, nodes, saverkill, report)" ;;
	esac
done
log "done: $OUT/summary.txt"
