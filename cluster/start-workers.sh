#!/usr/bin/env bash
# N `search worker` processes on this machine, joining one study in a shared storage.
#
#   cluster/start-workers.sh N STORAGE_URL STUDY [search worker flags...]
#
# Start the study first (`search run CONFIG --storage URL` creates it and runs trials
# too), then run this on every machine that should help; together they run the study's
# budget once. Logs go to worker-K.log. For several machines use PostgreSQL
# (postgresql://USER@HOST/DB) and an `artifacts:` folder that every machine sees; a
# journal file (journal:FILE) serves processes of one machine.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 N STORAGE_URL STUDY [search worker flags...]" >&2
    exit 2
fi
n=$1 url=$2 study=$3
shift 3
threads=$(( $(nproc) / n )); [ "$threads" -ge 1 ] || threads=1   # split the cores
pids=()
for k in $(seq "$n"); do
    search worker --storage "$url" --study "$study" --threads "$threads" "$@" \
        >"worker-$k.log" 2>&1 &
    pids+=($!)
done
echo "started ${#pids[@]} workers (pids ${pids[*]}); watch with: search trials --storage $url --study $study"
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
