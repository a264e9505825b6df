#!/bin/sh
# workload.sh ROUNDS: puts, gets and a compare-and-swap txn against every
# member of the etcd cluster, with real TCP from the sidecar guest. Each
# operation is retried (the cluster may still be electing a leader); the
# script exits non-zero if one never succeeds, which detvm reports as a
# failed property.
n=${1:-10}
all="http://node-1:2379,http://node-2:2379,http://node-3:2379"
ctl() { /usr/bin/etcdctl --dial-timeout=2s --command-timeout=3s "$@"; }
retry() {
	tries=0
	until "$@"; do
		tries=$((tries + 1))
		[ "$tries" -ge 20 ] && { echo "gave up: $*"; exit 1; }
		sleep 0.2
	done
}
cas() { # cas KEY EXPECTED: a txn that records whether KEY held EXPECTED
	printf 'value("%s") = "%s"\n\nput %s-cas ok\n\nput %s-cas failed\n\n' "$1" "$2" "$1" "$1" |
		ctl --endpoints "$all" txn
}
i=0
while [ "$i" -lt "$n" ]; do
	for m in node-1 node-2 node-3; do
		retry ctl --endpoints "http://$m:2379" put "k$i" "v$i-via-$m"
		retry ctl --endpoints "http://$m:2379" get "k$i"
	done
	retry cas "k$i" "v$i-via-node-3"
	i=$((i + 1))
done
echo "workload: $n rounds done"
