#!/bin/sh
# May run beside other parallel drivers, itself included.
. "$(dirname "$0")/helper_lib.sh"
say start
fetch hosts | grep -q sidecar || { say "hosts lacks the sidecar"; exit 1; }
sleep 0.4
say done
