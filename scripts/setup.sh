#!/usr/bin/env bash
# setup.sh: install what detvm needs on a Debian 12 machine. Idempotent: a second
# run on a set-up machine does no network work and finishes in about a second.
#
# It adds bookworm-backports (for QEMU 10) using the archive URI the machine's
# own apt sources already name — never a hard-coded mirror — then installs the
# packages, fetches Debian's kernel package into the detvm cache, and builds
# detvm's patched QEMU into it (scripts/build-qemu.sh).
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get install); try: sudo make setup"
command -v apt-get >/dev/null || die "needs a Debian machine with apt-get"

export DEBIAN_FRONTEND=noninteractive
BACKPORTS=/etc/apt/sources.list.d/detvm-backports.sources

# archive_uri prints the URI of the apt source that serves suite "bookworm"
# (the main archive, not -security), from deb822 .sources files or the
# one-line sources.list format.
archive_uri() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		[ "$f" = "$BACKPORTS" ] && continue
		# deb822: stanzas separated by blank lines.
		awk '
			BEGIN { RS=""; FS="\n" }
			{
				uri=""; ok=0; deb=0
				for (i=1;i<=NF;i++) {
					if ($i ~ /^URIs:/)   { sub(/^URIs:[ \t]*/,"",$i); split($i,u,/[ \t]+/); uri=u[1] }
					if ($i ~ /^Suites:/) { if ($i ~ /(^|[ \t])bookworm([ \t]|$)/) ok=1 }
					if ($i ~ /^Types:/)  { if ($i ~ /(^|[ \t])deb([ \t]|$)/) deb=1 }
				}
				if (ok && deb && uri != "") { print uri; exit }
			}' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk '$1=="deb" { for (i=2;i<=NF;i++) if ($i !~ /^\[/) { if ($(i+1)=="bookworm") { print $i; exit } else break } }' "$f"
	done
}

need_update=0
if [ ! -f "$BACKPORTS" ]; then
	uri=$(archive_uri | head -n1)
	[ -n "$uri" ] || die "no apt source for suite 'bookworm' found in /etc/apt/sources.list{,.d}; add Debian 12's archive first"
	log "adding bookworm-backports from $uri"
	cat >"$BACKPORTS" <<SRC
# Added by detvm's setup: QEMU 10 comes from bookworm-backports.
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	need_update=1
fi

PKGS_BP="qemu-system-x86 qemu-utils"
PKGS="busybox-static e2fsprogs gcc libc6-dev make xz-utils etcd-server etcd-client redis-server redis-tools"

missing=""
for p in $PKGS_BP $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ] || [ "$need_update" = 1 ]; then
	log "apt-get update"
	apt-get update -qq
fi
if [ -n "$missing" ]; then
	log "installing:$missing"
	# etcd-server and redis-server would start host daemons on install;
	# detvm runs them only inside guests. policy-rc.d 101 = "don't start".
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		rm_policy=1
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	apt-get install -y -qq --no-install-recommends -t bookworm-backports $PKGS_BP >/dev/null
	apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
fi

ver=$(qemu-system-x86_64 --version | sed -n 's/^QEMU emulator version \([0-9]*\)\..*/\1/p')
[ -n "$ver" ] && [ "$ver" -ge 10 ] || die "QEMU >= 10 needed, found: $(qemu-system-x86_64 --version | head -n1); is bookworm-backports reachable?"
log "ok: $(qemu-system-x86_64 --version | head -n1)"

# Guest kernel: Debian's linux-image package, extracted into the cache. The
# controller writes the uncompressed vmlinux (PVH boot) from it on first use.
CACHE=${DETVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/detvm}
KDIR=$CACHE/kernel
if ! ls "$KDIR"/*/root/boot/vmlinuz-* >/dev/null 2>&1; then
	pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
	[ -n "$pkg" ] || die "cannot resolve linux-image-amd64 to a kernel package (apt-cache depends)"
	ver=${pkg#linux-image-}
	log "fetching guest kernel $pkg"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"; [ -n "${rm_policy:-}" ] && rm -f /usr/sbin/policy-rc.d; true' EXIT
	chmod 755 "$tmp" # apt's _apt user downloads into it
	(cd "$tmp" && apt-get download -qq "$pkg" 2>/dev/null) || die "apt-get download $pkg failed"
	mkdir -p "$KDIR/$ver.tmp"
	dpkg-deb -x "$tmp"/*.deb "$KDIR/$ver.tmp/root"
	rm -rf "$KDIR/$ver"
	mv "$KDIR/$ver.tmp" "$KDIR/$ver"
fi
log "ok: guest kernel in $KDIR: $(ls "$KDIR" | tr '\n' ' ')"

# detvm's own QEMU: upstream source of the installed version plus the patches
# in third_party/qemu/patches (the icount idle-warp race fix: DESIGN.md "Real
# fix", issue 8), built once per machine into $CACHE/qemu/<key>/. A few minutes
# the first time, well under a second once cached. Runs do not use it yet.
bash "$(dirname "${BASH_SOURCE[0]}")/build-qemu.sh"
