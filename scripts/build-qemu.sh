#!/usr/bin/env bash
# build-qemu.sh: build detvm's own qemu-system-x86_64 — upstream QEMU of the
# installed bookworm-backports version plus the patches in
# third_party/qemu/patches/ (the icount idle-warp race fix, DESIGN.md "Real
# fix"; the virtual-time hold that detvm's barrier uses) — and cache it.
# Idempotent: with the result cached it does no network work and returns in
# well under a second.
#
#   result: $CACHE/qemu/<key>/qemu-system-x86_64 (+ build-info.txt next to it)
#           and a symlink $CACHE/qemu/<variant> -> <key> ("default" unless
#           DETVM_QEMU_VARIANT is set)
#   CACHE = ${DETVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/detvm}
#   key   = sha256 over the orig tarball's sha256, each patch's name and
#           sha256 (in the order applied) and the configure flags.
#
# Source: Debian's orig tarball (qemu_<upstream>.orig.tar.xz, the "+ds" repack
# of upstream) found in the bookworm-backports Sources index. The .dsc and the
# Debian tarball are not served by every mirror, so this does not use
# `apt-get source`: it downloads the orig tarball by URL and checks its SHA-256
# against the Sources index itself. Debian's own patches are not applied.
#
# Environment:
#   DETVM_QEMU_VARIANT  comma-separated modifiers of the default patch set
#                       (third_party/qemu/patches/*.patch, the fix included):
#     stock          leave out the fix (0001-icount-*): upstream's behaviour
#     race-widened   add test-only/*.patch: DETVM_QEMU_RACE_DELAY_US=N at run
#                    time widens the race window (stress test only, never for
#                    real runs); "stock,race-widened" must diverge, "race-widened"
#                    must not
#     vcpu-warp      replace the fix by experimental/*.patch (warp in the vCPU
#                    thread), to measure against it
#   DETVM_QEMU_PRINT_PATH=1  print the binary's path on stdout when done.
#
# Needs root only for what it may have to install (a deb-src source, build
# dependencies); a cached build needs nothing.
set -euo pipefail
# All of it in one block: bash parses the block before running it, so editing
# or checking out this file while a build runs cannot derail the run.
{

log() { printf 'build-qemu: %s\n' "$*" >&2; }
die() { printf 'build-qemu: error: %s\n' "$*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PATCHDIR=$ROOT/third_party/qemu/patches
CACHE=${DETVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/detvm}
QCACHE=$CACHE/qemu
BACKPORTS=/etc/apt/sources.list.d/detvm-backports.sources
BACKPORTS_SRC=/etc/apt/sources.list.d/detvm-backports-src.sources
VARIANT=${DETVM_QEMU_VARIANT:-}
export DEBIAN_FRONTEND=noninteractive

# --prefix=/usr --disable-relocatable: the binary looks for its firmware
# (pvh.bin for -kernel, ...) in Debian's /usr/share/qemu, as
# `-L /usr/share/qemu` would say, wherever the binary is. (Relocatable, it
# would look in <its dir>/../share/qemu.) It is never installed there: it stays
# in the cache.
CONFIGURE_FLAGS=(
	--prefix=/usr
	--disable-relocatable
	--python=/usr/bin/python3 # not pyenv's python3 first in PATH
	--target-list=x86_64-softmmu
	--without-default-features
	--enable-tcg
	--enable-plugins
	--disable-docs
	--disable-tools
	--disable-install-blobs
	--disable-werror
	# Less to compile, the same guest (docs/benchmarks.md, "Building
	# detvm's QEMU"): only the pc board and detvm's devices (patch 0003),
	# no debug info, no trace events (detvm uses none), no QOM cast checks
	# (they also cost run time: object_dynamic_cast_assert in profiles).
	--without-default-devices
	--with-devices-x86_64=detvm
	--disable-debug-info
	--enable-trace-backends=nop
	--disable-qom-cast-debug
)

start=$(date +%s)

# --- 1. which QEMU: the installed backports package's source version ---------
srcinfo=$(dpkg-query -W -f '${source:Package} ${source:Version}' qemu-system-x86 2>/dev/null) ||
	die "qemu-system-x86 is not installed; run scripts/setup.sh first"
read -r SRCPKG DEBVER <<<"$srcinfo"
[ -n "${DEBVER:-}" ] || die "cannot read qemu-system-x86's source version"
UPVER=${DEBVER#*:}   # drop the epoch:            1:10.0.2+ds-2+deb13u1~bpo12+1
UPVER=${UPVER%-*}    # drop the Debian revision:  10.0.2+ds
ORIG=${SRCPKG}_${UPVER}.orig.tar.xz

# --- 2. the patch set --------------------------------------------------------
FIX_GLOB='0001-icount-*.patch'
stock=0 widen=0 vcpuwarp=0
IFS=, read -r -a mods <<<"$VARIANT"
for m in "${mods[@]}"; do
	case "$m" in
	stock) stock=1 ;;
	race-widened) widen=1 ;;
	vcpu-warp) vcpuwarp=1 ;;
	*) die "unknown DETVM_QEMU_VARIANT modifier '$m' (want: stock, race-widened, vcpu-warp)" ;;
	esac
done
[ "$stock$vcpuwarp" != 11 ] || die "DETVM_QEMU_VARIANT: stock and vcpu-warp exclude each other"
patches=()
for p in "$PATCHDIR"/*.patch; do
	# shellcheck disable=SC2053 # FIX_GLOB is a pattern
	if [[ $(basename "$p") == $FIX_GLOB ]] && [ "$stock$vcpuwarp" != 00 ]; then continue; fi
	patches+=("$p")
done
[ "$vcpuwarp" = 0 ] || patches+=("$PATCHDIR"/experimental/*.patch)
[ "$widen" = 0 ] || patches+=("$PATCHDIR"/test-only/*.patch)
VARIANT_NAME=${VARIANT:-default}
for p in "${patches[@]}"; do [ -f "$p" ] || die "missing patch $p"; done

# --- 3. the orig tarball's SHA-256, from the bookworm-backports Sources index
# sources_index prints the path of the downloaded bookworm-backports Sources
# index (apt may keep it compressed; apt-helper cat-file reads it either way).
sources_index() {
	local f g
	apt-get indextargets --format '$(FILENAME)' 'Created-By: Sources' 'Codename: bookworm-backports' 2>/dev/null |
		while read -r f; do
			for g in "$f" "$f".*; do [ -f "$g" ] && { echo "$g"; return; }; done
		done
}

# lookup_source sets DIR (pool directory), SHA and SIZE of $ORIG from the
# Sources index, adding a deb-src source first if there is none. The result
# is recorded next to the tarball in the cache, so later runs need no apt.
lookup_source() {
	local need_update=0 idx uri
	if [ ! -f "$BACKPORTS_SRC" ]; then
		# Same URI as the binary backports source setup.sh wrote, which it
		# derived from the machine's own apt sources (never a hard-coded mirror).
		[ -f "$BACKPORTS" ] || die "$BACKPORTS missing; run scripts/setup.sh first"
		uri=$(awk '/^URIs:/ { print $2; exit }' "$BACKPORTS")
		[ -n "$uri" ] || die "no URIs: line in $BACKPORTS"
		[ "$(id -u)" = 0 ] || die "must run as root to add $BACKPORTS_SRC"
		log "adding deb-src for bookworm-backports from $uri"
		cat >"$BACKPORTS_SRC" <<SRC
# Added by detvm's scripts/build-qemu.sh: QEMU's source for detvm's own build.
Types: deb-src
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
		need_update=1
	fi
	idx=$(sources_index)
	if [ "$need_update" = 1 ] || [ -z "$idx" ]; then
		[ "$(id -u)" = 0 ] || die "must run as root for apt-get update"
		log "apt-get update (for the bookworm-backports Sources index)"
		apt-get update -qq
		idx=$(sources_index)
	fi
	[ -n "$idx" ] || die "no bookworm-backports Sources index after apt-get update; does the mirror serve deb-src?"

	# The stanza of the installed source version: its pool directory and
	# the orig tarball's SHA-256 and size.
	read -r DIR SHA SIZE < <(/usr/lib/apt/apt-helper cat-file "$idx" | awk -v pkg="$SRCPKG" -v ver="$DEBVER" -v file="$ORIG" '
		BEGIN { RS=""; FS="\n" }
		{
			p=""; v=""; d=""; sha=""; size=""; insha=0
			for (i=1;i<=NF;i++) {
				if ($i ~ /^Package:/)   { p=$i; sub(/^Package:[ \t]*/,"",p) }
				if ($i ~ /^Version:/)   { v=$i; sub(/^Version:[ \t]*/,"",v) }
				if ($i ~ /^Directory:/) { d=$i; sub(/^Directory:[ \t]*/,"",d) }
				if ($i ~ /^[^ \t]/)    { insha = ($i ~ /^Checksums-Sha256:/) }
				else if (insha) { split($i,c,/[ \t]+/); if (c[4]==file) { sha=c[2]; size=c[3] } }
			}
			if (p==pkg && v==ver) { print d, sha, size; found=1; exit }
		}
		END { if (!found) exit 1 }') ||
		die "source $SRCPKG $DEBVER not in $idx (has the mirror moved on? rerun setup to upgrade qemu-system-x86)"
	[ -n "$SHA" ] && [ -n "$DIR" ] || die "the Sources index lists $SRCPKG $DEBVER without $ORIG"
}
SRCDIR=$QCACHE/src
RECORD=$SRCDIR/$ORIG.source # "DIR SHA SIZE" as found in the Sources index
if [ -f "$RECORD" ]; then
	read -r DIR SHA SIZE <"$RECORD"
else
	lookup_source
fi

# --- 4. the cache key ----------------------------------------------------------
keyin="tarball $ORIG $SHA"$'\n'
for p in "${patches[@]}"; do
	keyin+="patch ${p#"$PATCHDIR"/} $(sha256sum <"$p" | cut -d' ' -f1)"$'\n'
done
keyin+="configure ${CONFIGURE_FLAGS[*]}"$'\n'
KEY=$(printf '%s' "$keyin" | sha256sum | cut -c1-16)
OUT=$QCACHE/$KEY
BIN=$OUT/qemu-system-x86_64

# $QCACHE/<variant> -> <key>: the build of the current patches, for detvm to
# find without computing the key (default: $QCACHE/default/qemu-system-x86_64).
link_variant() {
	ln -sfn "$KEY" "$QCACHE/.$VARIANT_NAME.tmp"
	mv -fT "$QCACHE/.$VARIANT_NAME.tmp" "$QCACHE/$VARIANT_NAME"
}

if [ -x "$BIN" ] && [ -f "$OUT/build-info.txt" ]; then
	[ "$(readlink "$QCACHE/$VARIANT_NAME" 2>/dev/null)" = "$KEY" ] || link_variant
	log "ok: cached $VARIANT_NAME QEMU $UPVER: $BIN"
	[ "${DETVM_QEMU_PRINT_PATH:-}" = 1 ] && echo "$BIN"
	exit 0
fi
log "building $VARIANT_NAME QEMU $UPVER (key $KEY); a few minutes"

# --- 5. build dependencies -----------------------------------------------------
# meson: QEMU 10 needs >= 1.5 (bookworm has 1.0); pycotap: bookworm lacks it.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=""
# curl, ca-certificates, patch and python3-venv (configure makes a venv):
# a minimal Debian (debootstrap minbase) lacks them.
for p in ninja-build libglib2.0-dev libpixman-1-dev zlib1g-dev flex bison libfdt-dev gcc make pkg-config xz-utils curl ca-certificates patch python3-venv; do
	installed "$p" || missing="$missing $p"
done
mesonver=$(dpkg-query -W -f='${Version}' meson 2>/dev/null || true)
if [ -z "$mesonver" ] || ! installed meson || dpkg --compare-versions "$mesonver" lt 1.5; then
	missing="$missing meson/bookworm-backports"
fi
installed python3-pycotap || missing="$missing python3-pycotap/bookworm-backports"
if [ -n "$missing" ]; then
	[ "$(id -u)" = 0 ] || die "must run as root to install:$missing"
	log "installing build dependencies:$missing"
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# --- 6. the orig tarball, checked against the Sources index ---------------------
mkdir -p "$SRCDIR"
TARBALL=$SRCDIR/$ORIG
if [ -f "$TARBALL" ] && [ "$(sha256sum <"$TARBALL" | cut -d' ' -f1)" = "$SHA" ]; then
	log "source: $TARBALL (cached, SHA-256 ok)"
else
	[ -f "$BACKPORTS_SRC" ] || lookup_source
	uri=$(awk '/^URIs:/ { print $2; exit }' "$BACKPORTS_SRC")
	url=${uri%/}/$DIR/$ORIG
	log "downloading $url ($((SIZE / 1024 / 1024)) MB)"
	rm -f "$TARBALL.part"
	curl -fsSL --retry 3 --connect-timeout 20 -o "$TARBALL.part" "$url" || die "download of $url failed"
	got=$(sha256sum <"$TARBALL.part" | cut -d' ' -f1)
	if [ "$got" != "$SHA" ]; then
		rm -f "$TARBALL.part" "$RECORD" # the next run reads the index again
		die "SHA-256 mismatch for $ORIG: got $got, the Sources index says $SHA; not building from it"
	fi
	mv "$TARBALL.part" "$TARBALL"
	log "source: SHA-256 $SHA matches the Sources index"
fi
[ -f "$RECORD" ] || printf '%s %s %s\n' "$DIR" "$SHA" "$SIZE" >"$RECORD"

# --- 7. unpack, patch, configure, build ------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/detvm-qemu-build.XXXXXX")
trap 'log "failed; build tree kept in $tmp"' ERR
trap 'rm -rf "$tmp"; exit 130' INT TERM HUP
log "unpacking into $tmp"
tar -xJf "$TARBALL" -C "$tmp"
src=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d | head -n1)
[ -f "$src/configure" ] || die "no configure in the unpacked tarball"
for p in "${patches[@]}"; do
	log "patch ${p#"$PATCHDIR"/}"
	patch -d "$src" -p1 --batch --forward --quiet --no-backup-if-mismatch <"$p" || die "patch ${p#"$PATCHDIR"/} does not apply to $UPVER"
done

log "configure ${CONFIGURE_FLAGS[*]}"
mkdir "$src/build"
(cd "$src/build" && ../configure "${CONFIGURE_FLAGS[@]}" >"$tmp/configure.log" 2>&1) ||
	{ tail -n 30 "$tmp/configure.log" >&2; die "configure failed (log: $tmp/configure.log)"; }

log "ninja qemu-system-x86_64"
ninja -C "$src/build" qemu-system-x86_64 >&2 || die "build failed (tree: $tmp)"

"$src/build/qemu-system-x86_64" --version >/dev/null || die "the built binary does not run"

# Into the cache atomically: a half-written entry is never taken as done.
rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp"
cp "$src/build/qemu-system-x86_64" "$OUT.tmp/"
{
	echo "detvm QEMU build (scripts/build-qemu.sh)"
	echo "variant:   $VARIANT_NAME"
	echo "version:   $("$src/build/qemu-system-x86_64" --version | head -n1)"
	echo "source:    $ORIG from $SRCPKG $DEBVER (sha256 $SHA)"
	echo "key:       $KEY"
	echo "patches:"
	for p in "${patches[@]}"; do echo "  ${p#"$PATCHDIR"/} $(sha256sum <"$p" | cut -d' ' -f1)"; done
	echo "configure: ${CONFIGURE_FLAGS[*]}"
	echo "built:     $(date -u +%Y-%m-%dT%H:%M:%SZ) in $(($(date +%s) - start)) s on $(nproc) cores"
	echo "firmware:  built with --prefix=/usr --disable-relocatable: it finds Debian's"
	echo "           /usr/share/qemu (pvh.bin, ...) by itself; -L /usr/share/qemu says the same."
	echo "run:       $BIN -L /usr/share/qemu ..."
} >"$OUT.tmp/build-info.txt"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
link_variant
trap - ERR INT TERM HUP
rm -rf "$tmp"
log "ok: $VARIANT_NAME QEMU $UPVER built in $(($(date +%s) - start)) s: $BIN"
[ "${DETVM_QEMU_PRINT_PATH:-}" = 1 ] && echo "$BIN"
exit 0
}
