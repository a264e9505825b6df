#!/bin/sh
# Runs once the drivers are over: node-1 must answer again (it may take
# a while to recover from faults).
. "$(dirname "$0")/helper_lib.sh"
i=0
until ok hosts; do
	i=$((i + 1))
	[ "$i" -ge 20 ] && { say "node-1 does not answer"; exit 1; }
	sleep 0.1
done
say "node-1 answers"
