# helper_lib.sh: sourced by the test commands. The composer does not run
# it: its name has no command prefix.
name=$(basename "$0")
say() { echo "$name #$DETVM_TEST_INSTANCE: $*"; }
# fetch FILE prints node-1's HTTP response for /FILE (headers, then the
# file). busybox's nc, as its wget crashes without glibc's NSS modules.
fetch() { printf 'GET /%s HTTP/1.0\r\n\r\n' "$1" | nc -w 2 node-1 8080; }
ok() { fetch "$1" | grep -q '^HTTP/1.[01] 200'; }
