#!/usr/bin/env bash
# A Quarry cluster on this machine: one writer node and N read-only nodes over one object store,
# behind HAProxy (Debian package `haproxy`, installed here if missing): reads (GET, and the
# search / query / scroll / count / retrieve / text-search / eval POSTs) are balanced round-robin
# over the read-only nodes; every other request goes to the writer.
#
#   scripts/cluster.sh start N [STORE_URL]   (default STORE_URL: file://$STATE/store)
#   scripts/cluster.sh stop
#
# Ports: the balancer on $LB_PORT (default 8080), the writer on 8090, read-only nodes on 8091….
# State (pids, node folders, logs) in $STATE (default /tmp/quarry-cluster). Uses the release
# binary in $QUARRY (default: built by cargo; an s3:// store needs `--features object-store`).
# NODE_CPU=F caps each read-only node at F of one core (scripts/cpu_cap.sh; needs root), as
# nodes on machines of their own have a core budget each.
set -euo pipefail
cd "$(dirname "$0")/.."
state=${STATE:-/tmp/quarry-cluster}
lb=${LB_PORT:-8080}
follow=${FOLLOW_MS:-500}
quarry=${QUARRY:-}
stop() {
  for f in "$state"/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    # A writer gives its lease up on a clean shutdown: wait for it, so the next one starts at once.
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$f"
  done
}
wait_port() {
  for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "node on port $1 did not come up (see $state/*.log)" >&2
  return 1
}
case "${1:-}" in
  stop)
    stop
    echo "cluster stopped"
    ;;
  start)
    n=${2:?usage: scripts/cluster.sh start N [STORE_URL]}
    mkdir -p "$state"
    store=${3:-file://$state/store}
    [ "${store#file://}" != "$store" ] && mkdir -p "${store#file://}"
    command -v haproxy >/dev/null || apt-get install -y -q haproxy >/dev/null
    if [ -z "$quarry" ]; then
      export CARGO_TARGET_DIR="${QUARRY_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/quarry/target}}"
      cargo build --release -q -p quarry-cli
      quarry=$CARGO_TARGET_DIR/release/quarry
    fi
    stop
    "$quarry" serve --data "$store" --cache-dir "$state/writer" --port 8090 --timeout "${TIMEOUT:-900}" >"$state/writer.log" 2>&1 &
    echo $! >"$state/writer.pid"
    wait_port 8090
    servers=""
    for i in $(seq 1 "$n"); do
      port=$((8090 + i))
      rm -rf "$state/reader-$i"
      "$quarry" serve --data "$store" --cache-dir "$state/reader-$i" --read-only --follow-ms "$follow" \
        --port "$port" >"$state/reader-$i.log" 2>&1 &
      echo $! >"$state/reader-$i.pid"
      [ -n "${NODE_CPU:-}" ] && bash scripts/cpu_cap.sh "$(cat "$state/reader-$i.pid")" "reader-$i" "$NODE_CPU"
      wait_port "$port"
      servers="$servers    server r$i 127.0.0.1:$port check
"
    done
    cat >"$state/haproxy.cfg" <<CFG
global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend quarry
    bind 127.0.0.1:$lb
    acl read_method method GET HEAD
    acl read_post path_reg ^/collections/[^/]+/points(/search|/search/batch|/query|/query/batch|/scroll|/count)?\$ ^/quarry/collections/[^/]+/(text-search|eval)\$ ^/quarry/groups/[^/]+/search\$
    use_backend readers if read_method or read_post
    default_backend writer
backend writer
    server w 127.0.0.1:8090 check
backend readers
    balance roundrobin
    option httpchk GET /readyz
$servers
CFG
    haproxy -f "$state/haproxy.cfg" -db >"$state/haproxy.log" 2>&1 &
    echo $! >"$state/haproxy.pid"
    sleep 0.5
    echo "cluster: writer :8090, $n read-only node(s) :8091-:$((8090 + n)), balancer http://127.0.0.1:$lb, store $store"
    ;;
  *)
    echo "usage: scripts/cluster.sh start N [STORE_URL] | stop" >&2
    exit 2
    ;;
esac
