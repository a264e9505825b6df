#!/bin/sh
# Runs with no other driver beside it.
. "$(dirname "$0")/helper_lib.sh"
say start
ok hosts && ok group || { say "fetch failed"; exit 1; }
sleep 0.2
say done
