package images

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// Initramfs describes a guest root filesystem, serialized by Bytes as a
// newc cpio archive whose bytes depend only on the entries, not on the
// order they were added in or on the host's clock, owners or inodes.
//
// Entries are keyed by their cleaned guest path: adding a path a second
// time replaces the earlier entry, whatever its kind.
type Initramfs struct {
	entries map[string]entry
}

type entryKind int

const (
	kindFile entryKind = iota
	kindDir
	kindSymlink
	kindCharDev
)

type entry struct {
	kind   entryKind
	perm   uint64 // permission and setuid/setgid/sticky bits, Unix encoding
	data   []byte // file contents
	target string // symlink target
	rmajor uint64
	rminor uint64
}

// NewInitramfs returns an empty Initramfs.
func NewInitramfs() *Initramfs {
	return &Initramfs{entries: map[string]entry{}}
}

// Has reports whether guestPath has an entry of its own (not an implicit
// parent directory).
func (i *Initramfs) Has(guestPath string) bool {
	_, ok := i.entries[cpioName(guestPath)]
	return ok
}

// Under returns, in byte order, the guest paths of the entries below dir,
// and dir itself unless it is a directory: what a file system mounted on
// dir would hide, or what would keep it from being mounted there.
func (i *Initramfs) Under(dir string) []string {
	d := cpioName(dir)
	var out []string
	for name, e := range i.entries {
		if d == "" || strings.HasPrefix(name, d+"/") || name == d && e.kind != kindDir {
			out = append(out, "/"+name)
		}
	}
	slices.Sort(out)
	return out
}

// cpioName turns a guest path into the archive's form: relative to /, clean.
// The root itself maps to "", which callers ignore since the kernel's
// rootfs already exists.
func cpioName(guestPath string) string {
	return strings.TrimPrefix(path.Clean("/"+guestPath), "/")
}

// unixPerm converts mode's permission bits, including setuid, setgid and
// sticky, from Go's encoding to the Unix one cpio uses.
func unixPerm(mode os.FileMode) uint64 {
	p := uint64(mode.Perm())
	if mode&os.ModeSetuid != 0 {
		p |= 0o4000
	}
	if mode&os.ModeSetgid != 0 {
		p |= 0o2000
	}
	if mode&os.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

func (i *Initramfs) put(guestPath string, e entry) {
	if name := cpioName(guestPath); name != "" {
		i.entries[name] = e
	}
}

// AddFile adds a regular file with contents data and the permission bits
// of mode. data is copied, so the caller may reuse it.
func (i *Initramfs) AddFile(guestPath string, data []byte, mode os.FileMode) {
	i.addFile(guestPath, bytes.Clone(data), mode)
}

func (i *Initramfs) addFile(guestPath string, data []byte, mode os.FileMode) {
	i.put(guestPath, entry{kind: kindFile, perm: unixPerm(mode), data: data})
}

// AddHostFile adds a regular file with the contents hostPath has now
// (following symlinks). A zero mode keeps the host file's permission bits.
func (i *Initramfs) AddHostFile(guestPath, hostPath string, mode os.FileMode) error {
	f, err := os.Open(hostPath)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", hostPath)
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return fmt.Errorf("reading %s: %w", hostPath, err)
	}
	if mode == 0 {
		mode = st.Mode()
	}
	i.addFile(guestPath, data, mode)
	return nil
}

// AddBinary adds the host executable hostPath at guestPath with mode 0755,
// together with its interpreter and shared libraries (see Closure) at the
// paths the guest's loader will look for them.
func (i *Initramfs) AddBinary(guestPath, hostPath string) error {
	deps, err := Closure(hostPath)
	if err != nil {
		return err
	}
	if err := i.AddHostFile(guestPath, hostPath, 0o755); err != nil {
		return err
	}
	for _, d := range deps {
		if err := i.AddHostFile(d.Path, d.Host, 0); err != nil {
			return err
		}
	}
	return nil
}

// AddDir adds a directory with the permission bits of mode. Parents of
// other entries need not be added: Bytes creates them with mode 0755.
func (i *Initramfs) AddDir(guestPath string, mode os.FileMode) {
	i.put(guestPath, entry{kind: kindDir, perm: unixPerm(mode)})
}

// AddSymlink adds a symbolic link at guestPath pointing to target, which is
// stored verbatim.
func (i *Initramfs) AddSymlink(guestPath, target string) {
	i.put(guestPath, entry{kind: kindSymlink, perm: 0o777, target: target})
}

// AddCharDev adds a character device node, such as /dev/console (5, 1),
// which must exist before init runs for the kernel to give it a console.
func (i *Initramfs) AddCharDev(guestPath string, mode os.FileMode, major, minor uint32) {
	i.put(guestPath, entry{kind: kindCharDev, perm: unixPerm(mode), rmajor: uint64(major), rminor: uint64(minor)})
}

// Bytes returns the archive: an uncompressed newc cpio with a trailer,
// entries sorted by path, implicit parent directories (0755) added, and
// mtime, uid and gid 0. Inode numbers follow the sorted order, so they are
// deterministic too. It is uncompressed because the kernel accepts that
// and a TCG guest decompresses slowly.
//
// It fails if an entry's parent is a file, device or symlink: the kernel's
// unpacker does not follow a symlink to a directory it has not created yet
// and would silently drop the entry.
func (i *Initramfs) Bytes() ([]byte, error) {
	all := make(map[string]entry, len(i.entries))
	for name, e := range i.entries {
		all[name] = e
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if _, ok := i.entries[d]; ok {
				continue
			}
			all[d] = entry{kind: kindDir, perm: 0o755}
		}
	}
	names := make([]string, 0, len(all))
	for name := range all {
		if d := path.Dir(name); d != "." && all[d].kind != kindDir {
			return nil, fmt.Errorf("initramfs: /%s needs /%s to be a directory, but it is a %s", name, d, all[d].kind)
		}
		names = append(names, name)
	}
	// Byte order puts every directory before its contents, since a
	// parent's name is a prefix of its children's.
	slices.Sort(names)

	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	for n, name := range names {
		e := all[name]
		var r cpio.Record
		switch e.kind {
		case kindFile:
			r = cpio.StaticRecord(e.data, cpio.Info{Name: name, Mode: cpio.S_IFREG | e.perm})
			r.NLink = 1
		case kindDir:
			r = cpio.Directory(name, e.perm)
			r.NLink = 2
		case kindSymlink:
			r = cpio.Symlink(name, e.target)
			r.NLink = 1
		case kindCharDev:
			r = cpio.CharDev(name, e.perm, e.rmajor, e.rminor)
			r.NLink = 1
		}
		// Zero is avoided: some cpio readers take ino 0 as "no inode".
		r.Ino = uint64(n + 1)
		if err := w.WriteRecord(cpio.MakeReproducible(r)); err != nil {
			return nil, fmt.Errorf("initramfs: %w", err)
		}
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	return buf.Bytes(), nil
}

func (k entryKind) String() string {
	switch k {
	case kindFile:
		return "file"
	case kindDir:
		return "directory"
	case kindSymlink:
		return "symlink"
	case kindCharDev:
		return "device"
	}
	return "unknown"
}

// guestKeepDirs are the host trees that exist with the same layout in the
// guest, so binaries from them keep their paths (and any $ORIGIN-relative
// library paths keep working).
var guestKeepDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib64", "/opt"}

// GuestPath maps a host binary path to where it lives in the guest: paths
// under /usr, /bin, /sbin, /lib, /lib64 and /opt are kept; anything else,
// such as a binary built in the user's project directory, goes to
// /opt/detvm/bin/<basename>.
func GuestPath(hostPath string) string {
	p := filepath.ToSlash(filepath.Clean(hostPath))
	for _, d := range guestKeepDirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return p
		}
	}
	return "/opt/detvm/bin/" + path.Base(p)
}
