#!/usr/bin/env bash
# services.sh — make the four backing services of imgate available on 127.0.0.1 for tests and
# local clusters: ZooKeeper (2181), RabbitMQ (5672, guest/guest), Redis (6379) and PostgreSQL
# (5432, trust auth for user postgres); and two programs the tests run themselves, which "up"
# installs when missing and never starts: Debian's headless Chromium (/usr/bin/chromium), which
# the web page's browser tests drive (cmd/imgate/browser_*_test.go), and nginx, which the TLS
# proxy test (cmd/imgate TestClusterTLSProxy) runs with its own config.
#
# Usage: scripts/services.sh up|down|status [service...]
#   services: zookeeper rabbitmq redis postgres chromium nginx (default: all)
#
#   up      for each service: use it if its port answers; else start it if installed; else install it
#           from Debian packages (apt-get update once) and start it bound to 127.0.0.1. Then poll for
#           readiness with a deadline. Idempotent: a second run changes nothing.
#   down    stops only what this script started (pids/markers under the state dir).
#   status  one line per service.
#
# Environment:
#   IMGATE_SERVICES_DIR      state dir (default /var/tmp/imgate-services): ZooKeeper config, data,
#                            log; pid files and "started" markers.
#   IMGATE_SERVICES_TIMEOUT  readiness deadline per service in seconds (default 120).
#
# Must run as root when it has to install or start anything (CI does).
set -euo pipefail

STATE_DIR=${IMGATE_SERVICES_DIR:-/var/tmp/imgate-services}
TIMEOUT=${IMGATE_SERVICES_TIMEOUT:-120}
HOST=127.0.0.1
ALL_SERVICES=(zookeeper rabbitmq redis postgres chromium nginx)
APT_UPDATED=0

log() { printf 'services: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
	timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# wait_for NAME CMD...: poll CMD every 0.5s until it succeeds or TIMEOUT seconds pass.
wait_for() {
	local name=$1
	shift
	local deadline=$((SECONDS + TIMEOUT))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			log "$name: not ready after ${TIMEOUT}s"
			return 1
		fi
		sleep 0.5
	done
}

# pid_alive FILE PATTERN: the pid in FILE runs and its command line matches PATTERN.
pid_alive() {
	local file=$1 pattern=$2 pid
	[[ -s $file ]] || return 1
	pid=$(<"$file")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/$pid/cmdline ]] || return 1
	local cmdline
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmdline == *"$pattern"* ]]
}

# kill_pidfile NAME FILE PATTERN: TERM the recorded process, wait for it, KILL it after 30s.
kill_pidfile() {
	local name=$1 file=$2 pattern=$3 pid deadline
	if ! pid_alive "$file" "$pattern"; then
		rm -f "$file"
		return 0
	fi
	pid=$(<"$file")
	log "$name: stopping pid $pid"
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$((SECONDS + 30))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "$name: pid $pid ignored TERM, sending KILL"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.2
	done
	rm -f "$file"
}

# ensure_pkg PKG: install a Debian package unless it is installed already.
ensure_pkg() {
	local pkg=$1
	if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
		return 0
	fi
	[[ $(id -u) -eq 0 ]] || die "$pkg is not installed and installing needs root"
	if ((APT_UPDATED == 0)); then
		log "apt-get update"
		apt-get update -qq >&2
		APT_UPDATED=1
	fi
	log "installing $pkg"
	# policy-rc.d 101 keeps the package's maintainer scripts from starting daemons on their own.
	local policy=/usr/sbin/policy-rc.d made_policy=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		made_policy=1
	fi
	local rc=0
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >&2 || rc=$?
	if ((made_policy)); then rm -f "$policy"; fi
	((rc == 0)) || die "apt-get install $pkg failed (exit $rc)"
}

mark() { mkdir -p "$STATE_DIR" && : >"$STATE_DIR/$1.started"; }
marked() { [[ -e $STATE_DIR/$1.started ]]; }
unmark() { rm -f "$STATE_DIR/$1.started"; }

# ---------------------------------------------------------------- ZooKeeper

ZK_DIR=$STATE_DIR/zk
ZK_PID=$ZK_DIR/zookeeper.pid
ZK_MAIN=org.apache.zookeeper.server.quorum.QuorumPeerMain

zk_ready() {
	local out
	out=$(timeout 3 bash -c "exec 3<>/dev/tcp/$HOST/2181; printf srvr >&3; cat <&3" 2>/dev/null) || true
	[[ $out == *$'\n'Mode:* || $out == Mode:* ]]
}

zk_up() {
	if port_open 2181; then
		wait_for zookeeper zk_ready || die "zookeeper: port 2181 answers but 'srvr' shows no Mode:"
		log "zookeeper: up on $HOST:2181"
		return 0
	fi
	[[ -r /usr/share/java/zookeeper.jar ]] || ensure_pkg zookeeper
	[[ -r /usr/share/java/zookeeper.jar ]] || die "zookeeper: /usr/share/java/zookeeper.jar missing after install"
	command -v java >/dev/null || ensure_pkg default-jre-headless

	mkdir -p "$ZK_DIR/conf" "$ZK_DIR/data"
	cat >"$ZK_DIR/conf/zoo.cfg" <<-EOF
		# written by scripts/services.sh
		tickTime=2000
		dataDir=$ZK_DIR/data
		clientPort=2181
		clientPortAddress=$HOST
		admin.enableServer=false
		4lw.commands.whitelist=srvr,ruok
		minSessionTimeout=1000
		maxSessionTimeout=60000
		maxClientCnxns=0
		autopurge.snapRetainCount=3
		autopurge.purgeInterval=1
	EOF
	# zookeeper.jar's manifest Class-Path names its dependencies; add an slf4j binding
	# (slf4j-simple logs to stderr, which goes to the log file) when the machine has one.
	local cp="$ZK_DIR/conf:/usr/share/java/zookeeper.jar"
	if [[ -r /usr/share/java/slf4j-simple.jar ]]; then
		cp="$cp:/usr/share/java/slf4j-simple.jar"
	fi

	log "zookeeper: starting (log $ZK_DIR/zookeeper.log)"
	# setsid + nohup: the server outlives this script and its terminal.
	setsid nohup java -Xmx512m -Dzookeeper.log.dir="$ZK_DIR" \
		-cp "$cp" "$ZK_MAIN" "$ZK_DIR/conf/zoo.cfg" \
		>>"$ZK_DIR/zookeeper.log" 2>&1 </dev/null &
	echo $! >"$ZK_PID"
	mark zookeeper

	local deadline=$((SECONDS + TIMEOUT))
	until zk_ready; do
		if ! pid_alive "$ZK_PID" "$ZK_MAIN"; then
			tail -n 20 "$ZK_DIR/zookeeper.log" >&2 || true
			rm -f "$ZK_PID"
			unmark zookeeper
			die "zookeeper: process exited during start-up"
		fi
		((SECONDS < deadline)) || die "zookeeper: not ready after ${TIMEOUT}s (log $ZK_DIR/zookeeper.log)"
		sleep 0.5
	done
	log "zookeeper: up on $HOST:2181 (pid $(<"$ZK_PID"))"
}

zk_down() {
	if marked zookeeper || [[ -e $ZK_PID ]]; then
		kill_pidfile zookeeper "$ZK_PID" "$ZK_MAIN"
		unmark zookeeper
		log "zookeeper: stopped"
	else
		log "zookeeper: not started by services.sh, left alone"
	fi
}

zk_status() {
	local how=external
	if pid_alive "$ZK_PID" "$ZK_MAIN"; then how="started by services.sh, pid $(<"$ZK_PID")"; fi
	if zk_ready; then
		echo "zookeeper  $HOST:2181  up ($how)"
	elif port_open 2181; then
		echo "zookeeper  $HOST:2181  not ready"
	else
		echo "zookeeper  $HOST:2181  down"
	fi
}

# ---------------------------------------------------------------- RabbitMQ

rabbit_ready() {
	port_open 5672 && rabbitmqctl -q status >/dev/null 2>&1
}

rabbit_up() {
	if port_open 5672; then
		log "rabbitmq: up on $HOST:5672"
		return 0
	fi
	command -v rabbitmq-server >/dev/null || ensure_pkg rabbitmq-server
	# Bind the node, its distribution port and epmd to loopback unless the operator configured it.
	if [[ ! -e /etc/rabbitmq/rabbitmq-env.conf ]]; then
		mkdir -p /etc/rabbitmq
		cat >/etc/rabbitmq/rabbitmq-env.conf <<-'EOF'
			# written by imgate scripts/services.sh
			NODENAME=rabbit@localhost
			NODE_IP_ADDRESS=127.0.0.1
			ERL_EPMD_ADDRESS=127.0.0.1
			export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"
		EOF
	fi
	log "rabbitmq: starting"
	rabbitmq-server -detached >&2
	mark rabbitmq
	wait_for rabbitmq rabbit_ready || die "rabbitmq: not ready (see /var/log/rabbitmq)"
	log "rabbitmq: up on $HOST:5672"
}

rabbit_down() {
	if marked rabbitmq; then
		log "rabbitmq: stopping"
		# shutdown (unlike stop) waits until the node has exited.
		rabbitmqctl -q shutdown >&2 || log "rabbitmq: shutdown failed"
		unmark rabbitmq
		log "rabbitmq: stopped"
	else
		log "rabbitmq: not started by services.sh, left alone"
	fi
}

rabbit_status() {
	local how=external
	if marked rabbitmq; then how="started by services.sh"; fi
	if port_open 5672; then
		echo "rabbitmq   $HOST:5672  up ($how)"
	else
		echo "rabbitmq   $HOST:5672  down"
	fi
}

# ---------------------------------------------------------------- Redis

REDIS_PID=$STATE_DIR/redis.pid

redis_ready() {
	[[ $(redis-cli -h $HOST -p 6379 ping 2>/dev/null) == PONG ]]
}

redis_up() {
	if port_open 6379; then
		log "redis: up on $HOST:6379"
		return 0
	fi
	command -v redis-server >/dev/null || ensure_pkg redis-server
	mkdir -p "$STATE_DIR" /var/lib/redis /var/log/redis
	log "redis: starting"
	redis-server --daemonize yes --bind "$HOST" -::1 --port 6379 --save "" --appendonly no \
		--dir /var/lib/redis --logfile /var/log/redis/ci.log --pidfile "$REDIS_PID" >&2
	mark redis
	wait_for redis redis_ready || die "redis: not ready (log /var/log/redis/ci.log)"
	log "redis: up on $HOST:6379"
}

redis_down() {
	if marked redis; then
		kill_pidfile redis "$REDIS_PID" redis-server
		unmark redis
		log "redis: stopped"
	else
		log "redis: not started by services.sh, left alone"
	fi
}

redis_status() {
	local how=external
	if pid_alive "$REDIS_PID" redis-server; then how="started by services.sh, pid $(<"$REDIS_PID")"; fi
	if port_open 6379; then
		echo "redis      $HOST:6379  up ($how)"
	else
		echo "redis      $HOST:6379  down"
	fi
}

# ---------------------------------------------------------------- PostgreSQL

PG_HBA_MARK='# imgate scripts/services.sh'

pg_version() {
	ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1
}

pg_ready() {
	local out
	out=$(psql -h $HOST -U postgres -d postgres -w -Atqc 'select 1' 2>/dev/null) || return 1
	[[ $out == 1 ]]
}

# pg_trust VERSION: let user postgres in over 127.0.0.1 without a password (CI only).
pg_trust() {
	local v=$1 hba
	hba=/etc/postgresql/$v/main/pg_hba.conf
	[[ -w $hba ]] || return 0
	grep -qF "$PG_HBA_MARK" "$hba" && return 0
	log "postgres: adding trust for 127.0.0.1 and ::1 to $hba"
	{
		echo "host all postgres 127.0.0.1/32 trust $PG_HBA_MARK"
		echo "host all postgres ::1/128 trust $PG_HBA_MARK"
		cat "$hba"
	} >"$hba.imgate-new"
	chown --reference="$hba" "$hba.imgate-new"
	chmod --reference="$hba" "$hba.imgate-new"
	mv "$hba.imgate-new" "$hba"
	pg_ctlcluster --skip-systemctl-redirect "$v" main reload >&2 || true
}

pg_up() {
	local v
	if ! port_open 5432; then
		command -v pg_ctlcluster >/dev/null && [[ -n $(pg_version) ]] || ensure_pkg postgresql
		v=$(pg_version)
		[[ -n $v ]] || die "postgres: no version under /etc/postgresql"
		if [[ ! -d /etc/postgresql/$v/main ]]; then
			log "postgres: creating cluster $v/main"
			pg_createcluster "$v" main >&2
		fi
		log "postgres: starting $v/main"
		pg_ctlcluster --skip-systemctl-redirect "$v" main start >&2
		mark postgres
		wait_for postgres port_open 5432 || die "postgres: port 5432 not open"
	fi
	if ! pg_ready; then
		v=$(pg_version)
		[[ -n $v ]] && pg_trust "$v"
		wait_for postgres pg_ready || die "postgres: psql -h $HOST -U postgres fails (trust auth?)"
	fi
	log "postgres: up on $HOST:5432"
}

pg_down() {
	if marked postgres; then
		log "postgres: stopping"
		pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main stop >&2 || log "postgres: stop failed"
		unmark postgres
		log "postgres: stopped"
	else
		log "postgres: not started by services.sh, left alone"
	fi
}

pg_status() {
	local how=external
	if marked postgres; then how="started by services.sh"; fi
	if pg_ready; then
		echo "postgres   $HOST:5432  up ($how)"
	elif port_open 5432; then
		echo "postgres   $HOST:5432  not ready (psql as postgres fails)"
	else
		echo "postgres   $HOST:5432  down"
	fi
}

# ---------------------------------------------------------------- Chromium

CHROMIUM=/usr/bin/chromium

chromium_up() {
	[[ -x $CHROMIUM ]] || ensure_pkg chromium
	[[ -x $CHROMIUM ]] || die "chromium: $CHROMIUM missing after install"
	log "chromium: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
}

chromium_down() { :; } # a program the tests start and stop themselves

chromium_status() {
	if [[ -x $CHROMIUM ]]; then
		echo "chromium   $CHROMIUM  installed ($("$CHROMIUM" --version 2>/dev/null | tr -d '\n'))"
	else
		echo "chromium   $CHROMIUM  missing (scripts/services.sh up chromium installs it)"
	fi
}

# ---------------------------------------------------------------- nginx

# nginx is a tool here, not a service: the TLS proxy test starts its own nginx on a free
# 127.0.0.1 port with a config in a temp dir (docs/deploy.md has the production config).
nginx_bin() { command -v nginx || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; }; }

nginx_up() {
	[[ -n $(nginx_bin) ]] || ensure_pkg nginx
	[[ -n $(nginx_bin) ]] || die "nginx: not found after install"
	log "nginx: installed ($(nginx_bin); not started: tests run their own)"
}

nginx_down() { log "nginx: nothing to stop (never started by services.sh)"; }

nginx_status() {
	if [[ -n $(nginx_bin) ]]; then
		echo "nginx      $(nginx_bin)  installed (started by tests only)"
	else
		echo "nginx      -  not installed"
	fi
}

# ---------------------------------------------------------------- main

usage() {
	echo "usage: $0 up|down|status [zookeeper|rabbitmq|redis|postgres|chromium|nginx ...]" >&2
	exit 2
}

run() {
	local action=$1 svc=$2
	case $svc in
	zookeeper) "zk_$action" ;;
	rabbitmq) "rabbit_$action" ;;
	redis) "redis_$action" ;;
	postgres | postgresql) "pg_$action" ;;
	chromium) "chromium_$action" ;;
	nginx) "nginx_$action" ;;
	*) usage ;;
	esac
}

main() {
	(($# >= 1)) || usage
	local action=$1
	shift
	local services=("$@")
	((${#services[@]})) || services=("${ALL_SERVICES[@]}")
	case $action in
	up | status) ;;
	down)
		# stop in reverse order of start
		local rev=() i
		for ((i = ${#services[@]} - 1; i >= 0; i--)); do rev+=("${services[i]}"); done
		services=("${rev[@]}")
		;;
	*) usage ;;
	esac
	local svc
	for svc in "${services[@]}"; do
		run "$action" "$svc"
	done
}

main "$@"
