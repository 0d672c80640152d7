#!/usr/bin/env bash
# peers.sh — install the servers imgate is benchmarked against. Installs only; never runs them.
# Nothing is vendored: each peer is built from the Go module proxy with `go install` at run time.
#
# Usage: scripts/peers.sh [--with-nbio] [--force]
#   centrifugo  github.com/centrifugal/centrifugo/v6@v6.9.1 → $IMGATE_PEERS_DIR/bin/centrifugo
#               (a build of about 2 minutes; skipped when bin/.centrifugo-version says v6.9.1)
#   --with-nbio also lesismal/nbio's WebSocket example server (github.com/lesismal/nbio-examples,
#               websocket/server, listens on :8888, path /ws, echoes) → bin/nbio-echo; optional:
#               a warning, not a failure, when the module proxy does not serve it (it answered
#               403 "not available" when this script was written)
#   --force     rebuild even if installed
#
# Environment:
#   IMGATE_PEERS_DIR  install dir (default /var/tmp/imgate-peers); binaries in its bin/.
#
# The reference gorilla/websocket server is part of the repo: bench/baseline (see bench/doc.go).
# `imgate bench --protocol centrifugo` drives Centrifugo; scripts/bench-compare.sh runs the comparison.
set -euo pipefail

PEERS_DIR=${IMGATE_PEERS_DIR:-/var/tmp/imgate-peers}
BIN="$PEERS_DIR/bin"
CENTRIFUGO_VERSION=v6.9.1
NBIO_EXAMPLES_VERSION=${IMGATE_NBIO_EXAMPLES_VERSION:-latest}
WITH_NBIO=0
FORCE=0

log() { printf 'peers: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for arg in "$@"; do
	case "$arg" in
	--with-nbio) WITH_NBIO=1 ;;
	--force) FORCE=1 ;;
	-h | --help) sed -n '2,19p' "$0"; exit 0 ;;
	*) die "unknown argument $arg" ;;
	esac
done

command -v go >/dev/null || die "go is not installed"
mkdir -p "$BIN"

install_centrifugo() {
	# `go install` leaves the version unset (the binary says v0.0.0): a marker records it.
	local marker="$BIN/.centrifugo-version"
	if [[ $FORCE == 0 && -x "$BIN/centrifugo" && -f $marker && $(<"$marker") == "$CENTRIFUGO_VERSION" ]]; then
		log "centrifugo $CENTRIFUGO_VERSION already in $BIN"
		return
	fi
	log "building centrifugo $CENTRIFUGO_VERSION (about 2 minutes)"
	# GOFLAGS from the environment (e.g. -mod=vendor) must not leak into a foreign module's build.
	GOFLAGS= GOBIN="$BIN" go install "github.com/centrifugal/centrifugo/v6@$CENTRIFUGO_VERSION"
	printf '%s\n' "$CENTRIFUGO_VERSION" >"$marker"
	log "installed centrifugo $CENTRIFUGO_VERSION → $BIN/centrifugo"
}

install_nbio() {
	if [[ $FORCE == 0 && -x "$BIN/nbio-echo" ]]; then
		log "nbio-echo already in $BIN"
		return
	fi
	local tmp
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	log "building nbio WebSocket echo example (nbio-examples@$NBIO_EXAMPLES_VERSION)"
	if ! GOFLAGS= GOBIN="$tmp" go install "github.com/lesismal/nbio-examples/websocket/server@$NBIO_EXAMPLES_VERSION"; then
		# Optional peer: the module proxy reachable here has answered 403 for nbio-examples.
		log "warning: nbio echo example not installed (module not available); skipping"
		return
	fi
	mv "$tmp/server" "$BIN/nbio-echo"
	log "installed $BIN/nbio-echo (listens on :8888, path /ws)"
}

install_centrifugo
if [[ $WITH_NBIO == 1 ]]; then
	install_nbio
fi
log "done: $(ls "$BIN" | tr '\n' ' ')"
