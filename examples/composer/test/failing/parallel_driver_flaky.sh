#!/bin/sh
# Fails on purpose on its second run: a failed property
# (exit:sidecar/parallel_driver_flaky.sh), and no finally_ command runs.
. "$(dirname "$0")/helper_lib.sh"
n=$(cat /tmp/flaky.runs 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" >/tmp/flaky.runs
say "run $n"
sleep 0.3
[ "$n" -ne 2 ] || { say "failing on purpose"; exit 1; }
