#!/bin/sh
# workload.sh N: write N keys to the primary, wait for the replica to
# acknowledge them (WAIT), then read each back from the replica.
n=${1:-10}
cli() { /usr/bin/redis-cli -h "$@"; }
tries=0
until [ "$(cli node-2 info replication | grep -c 'master_link_status:up')" = 1 ]; do
	tries=$((tries + 1)); [ "$tries" -ge 50 ] && { echo "replica never linked"; exit 1; }
	sleep 0.2
done
i=0
while [ "$i" -lt "$n" ]; do
	cli node-1 set "k$i" "v$i" >/dev/null || exit 1
	i=$((i + 1))
done
[ "$(cli node-1 wait 1 5000)" = 1 ] || { echo "replica did not acknowledge"; exit 1; }
i=0
while [ "$i" -lt "$n" ]; do
	got=$(cli node-2 get "k$i")
	[ "$got" = "v$i" ] || { echo "replica has k$i=$got, want v$i"; exit 1; }
	i=$((i + 1))
done
echo "workload: $n keys replicated"
