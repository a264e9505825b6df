#!/bin/sh
# health.sh: once the load is over, every member must say it is healthy
# (it has a leader and can commit). Each answer is an SDK assertion from
# the shell, through the detvm-sdk helper every guest has, so it is a
# verdict of the run: "always: every member is healthy after the load",
# failed with the member's answer as its details if one is not.
for m in node-1 node-2 node-3; do
	tries=0
	until reply=$(printf 'GET /health HTTP/1.0\r\n\r\n' | nc -w 2 "$m" 2379 | tail -n 1) &&
		echo "$reply" | grep -q '"health":"true"'; do
		tries=$((tries + 1))
		[ "$tries" -ge 10 ] && break
		sleep 0.5
	done
	ok=false
	echo "$reply" | grep -q '"health":"true"' && ok=true
	detvm-sdk always "$ok" "every member is healthy after the load" "{\"member\":\"$m\",\"tries\":$tries}"
	echo "$m: $reply"
done
