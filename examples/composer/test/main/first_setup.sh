#!/bin/sh
# Runs once, before anything else: waits for node-1 to serve.
. "$(dirname "$0")/helper_lib.sh"
i=0
until ok hosts; do
	i=$((i + 1))
	[ "$i" -ge 100 ] && { say "node-1 never answered"; exit 1; }
	sleep 0.1
done
say "node-1 is up after $i retries"
