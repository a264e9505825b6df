#!/bin/sh
# Runs last, and only if every driver exited 0.
. "$(dirname "$0")/helper_lib.sh"
say "every driver succeeded"
