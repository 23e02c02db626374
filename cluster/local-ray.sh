#!/usr/bin/env bash
# A multi-node Ray on this machine, on 127.0.0.1, for trying `--backend ray --address`.
#
#   cluster/local-ray.sh start [NODES]   # a head plus NODES-1 more nodes (default 2 in all)
#   cluster/local-ray.sh stop            # stops them (only the nodes this script started)
#
# Each node gets free ports of its own (Redis and others may hold the defaults) and one
# CPU. Token authentication is off: every port is bound to 127.0.0.1 only. A real cluster
# keeps Ray's token authentication on (see cluster/README.md).
set -euo pipefail
STATE="${AER_LOCAL_RAY_STATE:-${TMPDIR:-/tmp}/aer-local-ray}"
RAY="${RAY:-ray}"
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_node() {  # NAME ARGS...: `ray start --block` in a session of its own, pid kept
    local name=$1; shift
    setsid "$RAY" start --block --num-cpus=1 --node-ip-address=127.0.0.1 \
        --dashboard-agent-listen-port="$(free_port)" "$@" >"$STATE/$name.log" 2>&1 &
    echo $! >"$STATE/$name.pid"
}

wait_nodes() {  # ADDRESS COUNT
    for _ in $(seq 120); do
        if [ "$("$RAY" status --address "$1" 2>/dev/null | sed '/Pending:/q' | grep -c ' node_')" -ge "$2" ]; then
            return 0
        fi
        sleep 1
    done
    echo "local-ray: $2 nodes did not come up; logs in $STATE" >&2
    return 1
}

case "${1:-}" in
start)
    nodes=${2:-2}
    mkdir -p "$STATE"
    port=$(free_port)
    address="127.0.0.1:$port"
    start_node head --head --port="$port" --include-dashboard=false \
        --min-worker-port=22000 --max-worker-port=22499
    wait_nodes "$address" 1
    for i in $(seq 2 "$nodes"); do
        low=$((22000 + 500 * (i - 1)))
        start_node "node$i" --address="$address" \
            --min-worker-port=$low --max-worker-port=$((low + 499))
    done
    wait_nodes "$address" "$nodes"
    echo "$address" >"$STATE/address"
    echo "Ray with $nodes nodes at $address; run:"
    echo "  RAY_AUTH_MODE=disabled search run --backend ray --address $address"
    ;;
stop)
    for pidfile in "$STATE"/*.pid; do
        [ -e "$pidfile" ] || continue
        kill -- -"$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    done
    rm -f "$STATE/address"
    echo "stopped"
    ;;
*)
    echo "usage: $0 start [NODES] | stop" >&2
    exit 2
    ;;
esac
