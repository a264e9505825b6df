package images

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/detvm/detvm/internal/atomicfile"

	"github.com/ulikunitz/xz"
)

// ErrBuiltin is matched (with errors.Is) by the error Module returns for a
// module that is compiled into the kernel: there is nothing to load, and
// callers that insmod a list of modules can skip it.
var ErrBuiltin = errors.New("module is built into the kernel")

// Kernel is a Debian linux-image package extracted in the cache.
type Kernel struct {
	Version string // e.g. "6.1.0-56-amd64"
	Root    string // the dpkg-deb -x tree (contains boot/ and lib/modules/<Version>/)
	Vmlinux string // path of the uncompressed ELF kernel, <Root>/../vmlinux-<Version>
	SHA256  string // hex sha256 of the Vmlinux file

	modOnce sync.Once
	mods    map[string]string // normalized module name -> host path
	modErr  error
}

const setupHint = "run `make setup`"

// LoadKernel finds the kernel that the setup script extracted into dir, laid
// out as dir/<Version>/root/{boot/vmlinuz-<Version>,lib/modules/<Version>/}.
// If several versions are present the highest (by version sort) wins, so
// the choice does not depend on directory order.
//
// The ELF vmlinux is derived from vmlinuz on first use and kept next to the
// tree; later calls only hash it. An existing vmlinux is trusted as long as
// it is an ELF file, so re-extracting a different package under the same
// version must remove dir/<Version> first.
func LoadKernel(dir string) (*Kernel, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no kernel cache at %s: %s", dir, setupHint)
		}
		return nil, fmt.Errorf("reading kernel cache: %w (%s)", err, setupHint)
	}
	var versions []string
	for _, e := range ents {
		v := e.Name()
		if !e.IsDir() || strings.HasPrefix(v, ".") {
			continue
		}
		root := filepath.Join(dir, v, "root")
		if isFile(filepath.Join(root, "boot", "vmlinuz-"+v)) && isDir(filepath.Join(root, "lib", "modules", v)) {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		return nil, fmt.Errorf("no extracted kernel (<version>/root/boot/vmlinuz-<version> and <version>/root/lib/modules/<version>/) in %s: %s", dir, setupHint)
	}
	slices.SortFunc(versions, compareVersions)
	v := versions[len(versions)-1]

	k := &Kernel{
		Version: v,
		Root:    filepath.Join(dir, v, "root"),
		Vmlinux: filepath.Join(dir, v, "vmlinux-"+v),
	}
	sum, err := hashELF(k.Vmlinux)
	if err != nil {
		vmlinuz := filepath.Join(k.Root, "boot", "vmlinuz-"+v)
		bz, err := os.ReadFile(vmlinuz)
		if err != nil {
			return nil, fmt.Errorf("reading kernel: %w (%s)", err, setupHint)
		}
		elfData, err := ExtractVmlinux(bz)
		if err != nil {
			return nil, fmt.Errorf("%s: %w (the cached package looks damaged: remove %s and %s)", vmlinuz, err, filepath.Join(dir, v), setupHint)
		}
		if err := atomicfile.Write(k.Vmlinux, elfData, 0o644); err != nil {
			return nil, fmt.Errorf("writing vmlinux: %w", err)
		}
		h := sha256.Sum256(elfData)
		sum = hex.EncodeToString(h[:])
	}
	k.SHA256 = sum
	return k, nil
}

// hashELF returns the sha256 of path if it is an ELF file, and an error if
// it is missing or is something else (e.g. left truncated by a crash on a
// filesystem that does not order rename after data).
func hashELF(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	br := bufio.NewReaderSize(f, 1<<20)
	head, err := br.Peek(len(elfMagic))
	if err != nil || !bytes.Equal(head, elfMagic) {
		return "", fmt.Errorf("%s is not an ELF file", path)
	}
	if _, err := io.Copy(h, br); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// modulesDir is where the package keeps this kernel's modules.
func (k *Kernel) modulesDir() string {
	return filepath.Join(k.Root, "lib", "modules", k.Version)
}

// normModName folds '-' to '_', as the kernel does when matching module
// names, so "nd-pmem" and "nd_pmem" find the same file.
func normModName(name string) string {
	return strings.ReplaceAll(name, "-", "_")
}

// modName returns the module name for a module file name, and false if the
// file is not a module.
func modName(file string) (string, bool) {
	for _, ext := range []string{".ko", ".ko.xz"} {
		if base, ok := strings.CutSuffix(file, ext); ok {
			return normModName(base), true
		}
	}
	return "", false
}

// index walks the module tree once per Kernel; a Debian kernel ships about
// four thousand modules and callers look up several.
func (k *Kernel) index() (map[string]string, error) {
	k.modOnce.Do(func() {
		mods := map[string]string{}
		top := filepath.Join(k.modulesDir(), "kernel")
		// WalkDir visits in lexical order, so should two files ever
		// claim one name, the choice is still stable.
		k.modErr = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			if n, ok := modName(d.Name()); ok {
				if _, dup := mods[n]; !dup {
					mods[n] = p
				}
			}
			return nil
		})
		if k.modErr != nil {
			k.modErr = fmt.Errorf("indexing kernel modules: %w (%s)", k.modErr, setupHint)
		}
		k.mods = mods
	})
	return k.mods, k.modErr
}

// Module returns the host path of the kernel module called name (e.g. "tun",
// "nd_pmem"), which is either a .ko or a .ko.xz file: Debian 12's 6.1 kernels
// ship the former, 6.12 the latter. For a module built into the kernel the
// error matches ErrBuiltin.
func (k *Kernel) Module(name string) (string, error) {
	mods, err := k.index()
	if err != nil {
		return "", err
	}
	if p, ok := mods[normModName(name)]; ok {
		return p, nil
	}
	if k.builtin(name) {
		return "", fmt.Errorf("kernel %s: module %q: %w", k.Version, name, ErrBuiltin)
	}
	return "", fmt.Errorf("kernel %s: no module %q under %s", k.Version, name, filepath.Join(k.modulesDir(), "kernel"))
}

// builtin reports whether modules.builtin lists name.
func (k *Kernel) builtin(name string) bool {
	data, err := os.ReadFile(filepath.Join(k.modulesDir(), "modules.builtin"))
	if err != nil {
		return false
	}
	want := normModName(name)
	for line := range strings.Lines(string(data)) {
		if n, ok := modName(filepath.Base(strings.TrimSpace(line))); ok && n == want {
			return true
		}
	}
	return false
}

// ModuleBytes returns the contents of the module called name, decompressed
// if it ships as .ko.xz: the guest gets a plain .ko and needs no xz support
// in insmod or the kernel.
func (k *Kernel) ModuleBytes(name string) ([]byte, error) {
	p, err := k.Module(name)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(p, ".xz") {
		return data, nil
	}
	r, err := xz.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return out, nil
}

// ModuleDeps returns the modules that must be loaded for name to load, in
// load order, ending with name itself; built-in modules are left out.
//
// The dependencies come from each module's .modinfo "depends=" entry
// because a dpkg-deb -x tree has no modules.dep: depmod only runs in the
// package's postinst.
func (k *Kernel) ModuleDeps(name string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 = visiting, 2 = done
	var visit func(n string, chain []string) error
	visit = func(n string, chain []string) error {
		n = normModName(n)
		switch state[n] {
		case 1:
			return fmt.Errorf("kernel %s: module dependency cycle: %s", k.Version, strings.Join(append(chain, n), " -> "))
		case 2:
			return nil
		}
		state[n] = 1
		data, err := k.ModuleBytes(n)
		if errors.Is(err, ErrBuiltin) {
			state[n] = 2
			return nil
		}
		if err != nil {
			return err
		}
		deps, err := modinfoDepends(data)
		if err != nil {
			return fmt.Errorf("kernel %s: module %q: %w", k.Version, n, err)
		}
		chain = append(slices.Clip(chain), n)
		for _, d := range deps {
			if err := visit(d, chain); err != nil {
				return err
			}
		}
		state[n] = 2
		order = append(order, n)
		return nil
	}
	if err := visit(name, nil); err != nil {
		return nil, err
	}
	return order, nil
}

// modinfoDepends returns the "depends=" list from a module's .modinfo
// section, which is a sequence of NUL-terminated key=value strings.
func modinfoDepends(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, err
	}
	s := f.Section(".modinfo")
	if s == nil {
		return nil, errors.New("no .modinfo section")
	}
	info, err := s.Data()
	if err != nil {
		return nil, err
	}
	for kv := range bytes.SplitSeq(info, []byte{0}) {
		v, ok := bytes.CutPrefix(kv, []byte("depends="))
		if !ok {
			continue
		}
		var deps []string
		for d := range strings.SplitSeq(string(v), ",") {
			if d != "" {
				deps = append(deps, d)
			}
		}
		return deps, nil
	}
	return nil, nil
}

// compareVersions orders version strings like `sort -V`: digit runs compare
// as numbers, other runs as bytes, and a plain comparison breaks ties so
// the order is total.
func compareVersions(a, b string) int {
	x, y := a, b
	for x != "" && y != "" {
		xd, yd := isDigit(x[0]), isDigit(y[0])
		if xd != yd {
			if xd {
				return -1
			}
			return 1
		}
		xs, xr := splitRun(x, xd)
		ys, yr := splitRun(y, yd)
		var c int
		if xd {
			xs = strings.TrimLeft(xs, "0")
			ys = strings.TrimLeft(ys, "0")
			c = cmp.Compare(len(xs), len(ys))
			if c == 0 {
				c = strings.Compare(xs, ys)
			}
		} else {
			c = strings.Compare(xs, ys)
		}
		if c != 0 {
			return c
		}
		x, y = xr, yr
	}
	if c := cmp.Compare(len(x), len(y)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// splitRun splits s after its leading run of digits (digit) or non-digits.
func splitRun(s string, digit bool) (string, string) {
	i := 0
	for i < len(s) && isDigit(s[i]) == digit {
		i++
	}
	return s[:i], s[i:]
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
