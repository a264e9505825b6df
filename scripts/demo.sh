#!/usr/bin/env bash
# demo.sh: what `make demo` shows after setup. A 3-node etcd cluster and a
# sidecar workload run deterministically with a snapshot every second of
# virtual time; the run is replayed from its bundle and checked epoch by
# epoch; then it is rewound to its first snapshot and branched with
# another seed. Each step prints its verdict and trace hash.
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/demo-$(date +%Y%m%d-%H%M%S)
scen=examples/etcd/short.yaml
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

bin/detvm doctor
step "1/4 run $scen (3 etcd members + a sidecar doing puts, gets and txns), snapshot every 1 s"
bin/detvm run "$scen" --out "$out/run" --snapshot-every 1s
step "2/4 replay it from its bundle: same inputs, every epoch checked"
bin/detvm replay "$out/run/replay.detvm" --out "$out/replay"
step "3/4 the snapshots it took"
bin/detvm snapshot ls --dir "$out/run"
first=$(bin/detvm snapshot ls --dir "$out/run" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
step "4/4 rewind to snapshot $first and branch with seed 9: another future, itself reproducible"
bin/detvm run "$scen" --store "$out/run" --from-snapshot "$first" --branch-seed 9 --out "$out/branch"
step "all of it is in $out"
