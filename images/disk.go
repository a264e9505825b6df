package images

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/detvm/detvm/internal/atomicfile"
)

// A node's persistent disk is an NVDIMM backed by a file (DESIGN.md,
// "Disks"). It is formatted ext4 on the host, so that the guest spends no
// virtual time on mkfs, and formatted deterministically: every field
// mke2fs would take from the clock, /dev/urandom, the caller's uid or the
// host's /etc/mke2fs.conf is fixed below, so one e2fsprogs version gives
// the same bytes on every machine and in every run.

// Ext4 formatting constants. Changing any of them changes every disk
// image, and so every trace hash of a scenario with a disk.
const (
	// diskUUID and diskHashSeed are fixed where mke2fs would draw random
	// ones. Every node's disk has the same UUID; each is in a VM of its own.
	diskUUID     = "64657476-6d2d-6469-736b-000000000001"
	diskHashSeed = "64657476-6d2d-6469-736b-000000000002"
	// diskTime is the timestamp mke2fs writes (E2FSPROGS_FAKE_TIME):
	// vmm.DefaultRTCBase, the guest's wall clock at power-on.
	diskTime = 1767225600 // 2026-01-01T00:00:00Z
	// mke2fsProfile replaces the host's /etc/mke2fs.conf, whose defaults
	// differ between distributions and versions. The usage type "detvm"
	// stops mke2fs from picking "small" or "floppy" by size.
	mke2fsProfile = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
	reserved_ratio = 0

[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
	detvm = {
		inode_ratio = 16384
	}
`
)

// mke2fsArgs are mke2fs's flags before the image path: no lazy
// initialisation (the guest kernel would otherwise zero inode tables and
// the journal in a background thread), no discard, root owned by root
// whoever formats.
var mke2fsArgs = []string{
	"-F", "-q", "-t", "ext4", "-T", "detvm", "-b", "4096", "-I", "256", "-i", "16384", "-m", "0",
	"-U", diskUUID,
	"-E", "hash_seed=" + diskHashSeed + ",lazy_itable_init=0,lazy_journal_init=0,nodiscard,root_owner=0:0",
}

// Mke2fs finds mke2fs (e2fsprogs). It lives in /usr/sbin, which a
// non-root user's PATH often lacks.
func Mke2fs() (string, error) {
	if p, err := exec.LookPath("mke2fs"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mke2fs", "/sbin/mke2fs"} {
		if isFile(p) {
			return p, nil
		}
	}
	return "", errors.New("mke2fs not found (package e2fsprogs): run `make setup`")
}

// FormatExt4 creates path as a sparse file of size bytes holding an empty
// ext4 file system, the same bytes for the same size and e2fsprogs
// version.
func FormatExt4(path string, size int64) error {
	mkfs, err := Mke2fs()
	if err != nil {
		return err
	}
	return formatExt4(mkfs, path, size)
}

func formatExt4(mkfs, path string, size int64) error {
	if size <= 0 || size%4096 != 0 {
		return fmt.Errorf("format %s: size %d is not a positive multiple of 4096", path, size)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	conf, err := os.CreateTemp(filepath.Dir(path), ".mke2fs.conf*")
	if err != nil {
		return err
	}
	defer os.Remove(conf.Name())
	_, err = conf.WriteString(mke2fsProfile)
	if cerr := conf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	cmd := exec.Command(mkfs, append(append([]string(nil), mke2fsArgs...), path)...)
	// Nothing from the caller's environment: mke2fs reads MKE2FS_* and
	// E2FSPROGS_* variables that would change the result.
	cmd.Env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"LC_ALL=C",
		"MKE2FS_CONFIG=" + conf.Name(),
		"E2FSPROGS_FAKE_TIME=" + strconv.Itoa(diskTime),
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", mkfs, path, err, bytes.TrimSpace(out))
	}
	return nil
}

// mke2fsVersion is what `mke2fs -V` says: part of the cache key, since
// another version may lay the file system out differently.
func mke2fsVersion(mkfs string) (string, error) {
	out, err := exec.Command(mkfs, "-V").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s -V: %w: %s", mkfs, err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// DiskImage is a formatted, never written disk image in the cache. Runs
// copy it (CopySparse) and never change it.
type DiskImage struct {
	Path  string
	Bytes int64
	// Digest is DiskDigest of the file: what the disk holds at power-on.
	Digest string
}

// Ext4Image returns the empty ext4 image of size bytes kept in dir,
// formatting it on first use. It is keyed by size, mke2fs's version and
// the formatting constants, and is written through a rename, so a
// concurrent or crashed run never leaves a half-formatted image behind.
func Ext4Image(dir string, size int64) (DiskImage, error) {
	mkfs, err := Mke2fs()
	if err != nil {
		return DiskImage{}, err
	}
	ver, err := mke2fsVersion(mkfs)
	if err != nil {
		return DiskImage{}, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "detvm-ext4-v1\n%d\n%s\n%s\n%s\n%d\n", size, ver, strings.Join(mke2fsArgs, " "), mke2fsProfile, diskTime)
	key := hex.EncodeToString(h.Sum(nil))[:16]
	img := DiskImage{Path: filepath.Join(dir, fmt.Sprintf("ext4-%dM-%s.img", size>>20, key)), Bytes: size}
	sumPath := img.Path + ".sha256"
	if st, err := os.Stat(img.Path); err == nil && st.Size() == size {
		if b, err := os.ReadFile(sumPath); err == nil && len(bytes.TrimSpace(b)) == 64 {
			img.Digest = string(bytes.TrimSpace(b))
			return img, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return DiskImage{}, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(img.Path)+".tmp*")
	if err != nil {
		return DiskImage{}, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := formatExt4(mkfs, tmp.Name(), size); err != nil {
		return DiskImage{}, err
	}
	if img.Digest, err = DiskDigest(tmp.Name()); err != nil {
		return DiskImage{}, err
	}
	if err := syncFile(tmp.Name()); err != nil {
		return DiskImage{}, err
	}
	// The digest first: an image is only trusted with its digest beside
	// it, and a digest without its image is rewritten next time.
	if err := atomicfile.Write(sumPath, []byte(img.Digest+"\n"), 0o644); err != nil {
		return DiskImage{}, err
	}
	if err := os.Rename(tmp.Name(), img.Path); err != nil {
		return DiskImage{}, err
	}
	return img, atomicfile.SyncDir(dir)
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// digestBlock is the unit DiskDigest hashes.
const digestBlock = 4096

// DiskDigest is the hex SHA-256 of a disk image's content, computed from
// its size and its non-zero 4 KiB blocks with their indices: two files
// with the same content have the same digest however their holes lie, and
// reading it costs only the data written, not the disk's size.
func DiskDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	size := st.Size()
	h := sha256.New()
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(size))
	h.Write([]byte("detvm-disk-v1\x00"))
	h.Write(hdr[:])
	block := make([]byte, digestBlock)
	next := int64(0) // first block not hashed yet
	err = dataExtents(f, size, func(start, end int64) error {
		for b := max(start/digestBlock, next); b*digestBlock < end; b++ {
			n, err := f.ReadAt(block, b*digestBlock)
			if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
				return err
			}
			clear(block[n:])
			next = b + 1
			if isZero(block) {
				continue
			}
			binary.LittleEndian.PutUint64(hdr[:], uint64(b))
			h.Write(hdr[:])
			h.Write(block)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("digest of %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CopySparse makes dst a copy of src that shares src's blocks where the
// file system can (a reflink) and otherwise holds only src's non-zero
// blocks, with holes for the rest: a run's copy of a 4 GiB empty disk
// costs the few MB mke2fs wrote.
func CopySparse(dst, src string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			err = fmt.Errorf("copy %s to %s: %w", src, dst, err)
		}
	}()
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		return nil
	}
	if err := out.Truncate(st.Size()); err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	return dataExtents(in, st.Size(), func(start, end int64) error {
		for off := start; off < end; {
			chunk := buf[:min(int64(len(buf)), end-off)]
			n, err := in.ReadAt(chunk, off)
			if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
				return err
			}
			chunk = chunk[:n]
			// Zero blocks stay holes.
			for len(chunk) > 0 {
				k := min(len(chunk), digestBlock)
				if !isZero(chunk[:k]) {
					if _, err := out.WriteAt(chunk[:k], off); err != nil {
						return err
					}
				}
				chunk, off = chunk[k:], off+int64(k)
			}
		}
		return nil
	})
}

// dataExtents calls fn for each range of f that may hold data, in order,
// using SEEK_DATA/SEEK_HOLE; where the file system lacks them, the whole
// file is one range.
func dataExtents(f *os.File, size int64, fn func(start, end int64) error) error {
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // only a hole from off to the end
		}
		if err != nil {
			if off == 0 && errors.Is(err, unix.EINVAL) {
				return fn(0, size)
			}
			return err
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		end = min(end, size)
		if err := fn(start, end); err != nil {
			return err
		}
		off = end
	}
	return nil
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// DiskModules are the modules a guest loads, in order, to mount an ext4
// disk on an ACPI NVDIMM: nfit finds the NVDIMM in the ACPI tables,
// nd_pmem makes /dev/pmem0 of its namespace, ext4 mounts it.
// crc32c_generic comes first as the ext4 and jbd2 checksums need a crc32c
// driver, which the kernel would otherwise ask modprobe for (a soft
// dependency, not in "depends=").
var DiskModules = []string{"crc32c_generic", "nfit", "nd_pmem", "ext4"}

// ModulesFor returns the modules to load for roots, each root after its
// dependencies and every module once, built-in ones left out.
func (k *Kernel) ModulesFor(roots ...string) ([]string, error) {
	var order []string
	seen := map[string]bool{}
	for _, r := range roots {
		deps, err := k.ModuleDeps(r)
		if err != nil {
			return nil, err
		}
		for _, d := range deps {
			if !seen[d] {
				seen[d] = true
				order = append(order, d)
			}
		}
	}
	return order, nil
}
