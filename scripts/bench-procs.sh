# bench-procs.sh — sourced by the benchmark scripts (bench-compare.sh, bench-groups.sh,
# bench-cluster.sh, bench-storm.sh); not run on its own. Starting, waiting for and stopping
# the processes a benchmark measures. Uses the caller's die, OUT and SERVER_CPU.

# poll DEADLINE_S CMD...: run CMD every 0.3 s until it succeeds; fail after DEADLINE_S seconds.
poll() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 0.3
	done
}

# listening PORT: whether something listens on TCP PORT.
listening() { ss -Hltn "sport = :$1" | grep -q .; }

SERVER_PID=
# launch_pinned NAME PORT CMD...: start CMD pinned to SERVER_CPU, its output appended to
# OUT/NAME.server.log, and wait (≤ 30 s) until that process listens on PORT; sets SERVER_PID.
launch_pinned() {
	local name=$1 port=$2
	shift 2
	listening "$port" && die "127.0.0.1:$port is already in use by another process (set BASE_PORT)"
	taskset -c "$SERVER_CPU" "$@" >>"$OUT/$name.server.log" 2>&1 &
	SERVER_PID=$!
	local deadline=$((SECONDS + 30))
	until ss -Hltnp "sport = :$port" | grep -q "pid=$SERVER_PID,"; do
		kill -0 "$SERVER_PID" 2>/dev/null || die "$name exited at start (see $OUT/$name.server.log)"
		((SECONDS < deadline)) || die "$name does not listen on $port"
		sleep 0.2
	done
	sleep 1 # let the process settle before its RSS is read
}

# stop_server: SIGTERM the server launch_pinned started, SIGKILL after 10 s.
stop_server() {
	[[ -n $SERVER_PID ]] || return 0
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.2
	done
	kill -KILL "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}

# centrifugo_config FILE PORT SECRET NAMESPACE: write Centrifugo v6's config to FILE: memory
# engine, HTTP on 127.0.0.1:PORT, HMAC tokens with SECRET, one channel namespace whose
# channels any client may subscribe and publish to.
centrifugo_config() {
	cat >"$1" <<EOC
{
  "http_server": {"address": "127.0.0.1", "port": $2},
  "log": {"level": "error"},
  "engine": {"type": "memory"},
  "usage_stats": {"disabled": true},
  "client": {"token": {"hmac_secret_key": "$3"}},
  "channel": {"namespaces": [
    {"name": "$4", "allow_subscribe_for_client": true, "allow_publish_for_client": true}
  ]}
}
EOC
}
