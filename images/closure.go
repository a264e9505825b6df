package images

import (
	"debug/elf"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Dep is one file a dynamically linked binary needs at run time.
type Dep struct {
	// Path is where the guest's loader will look for the file: the
	// interpreter exactly as PT_INTERP names it, a library as
	// <first default dir holding it>/<DT_NEEDED name>, or, for a library
	// only found through DT_RUNPATH/DT_RPATH, the path it was found at.
	Path string
	// Host is the host file with every symlink resolved.
	Host string
}

// defaultLibDirs is the search order used after DT_RUNPATH/DT_RPATH. The
// guest has no ld.so.cache, so its loader falls back to its built-in
// directories, of which Debian's glibc puts the multiarch ones first; that
// is why a library found there gets that directory as its guest Path.
var defaultLibDirs = []string{
	"/lib/x86_64-linux-gnu",
	"/usr/lib/x86_64-linux-gnu",
	"/lib64",
	"/usr/lib64",
	"/lib",
	"/usr/lib",
}

// elfInfo is what Closure needs from one ELF file.
type elfInfo struct {
	class   elf.Class
	machine elf.Machine
	interp  string
	soname  string
	needed  []string
	runpath []string
	rpath   []string
}

func readELFInfo(file string) (*elfInfo, error) {
	f, err := elf.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info := &elfInfo{class: f.Class, machine: f.Machine}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return nil, fmt.Errorf("reading PT_INTERP: %w", err)
		}
		info.interp = strings.TrimRight(string(b), "\x00")
	}
	if f.SectionByType(elf.SHT_DYNAMIC) == nil {
		if dynProg(f) != nil {
			// debug/elf reads DT_* entries through the section
			// table only; guessing "static" here would silently
			// drop libraries.
			return nil, errors.New("dynamically linked but has no section headers")
		}
		return info, nil
	}
	for _, t := range []struct {
		tag elf.DynTag
		dst *[]string
	}{
		{elf.DT_NEEDED, &info.needed},
		{elf.DT_RUNPATH, &info.runpath},
		{elf.DT_RPATH, &info.rpath},
	} {
		vals, err := f.DynString(t.tag)
		if err != nil {
			return nil, fmt.Errorf("reading %v: %w", t.tag, err)
		}
		for _, v := range vals {
			if t.tag == elf.DT_NEEDED {
				*t.dst = append(*t.dst, v)
			} else {
				*t.dst = append(*t.dst, strings.Split(v, ":")...)
			}
		}
	}
	soname, err := f.DynString(elf.DT_SONAME)
	if err != nil {
		return nil, fmt.Errorf("reading DT_SONAME: %w", err)
	}
	if len(soname) > 0 {
		info.soname = soname[0]
	}
	return info, nil
}

func dynProg(f *elf.File) *elf.Prog {
	for _, p := range f.Progs {
		if p.Type == elf.PT_DYNAMIC {
			return p
		}
	}
	return nil
}

// Closure returns the ELF interpreter and the whole shared-library closure
// of binary, sorted by Path and de-duplicated, for copying into a guest.
// A static binary yields an empty list.
//
// It follows the glibc loader: DT_NEEDED recursively, looked up in the
// needing object's DT_RUNPATH, or if it has none its DT_RPATH and the
// executable's, with $ORIGIN expanded, then in defaultLibDirs. Candidates
// of another ELF class or machine are skipped, as the loader skips them.
// A name the interpreter already provides (ld-linux-x86-64.so.2, needed by
// libc) is not listed again, because the loader matches it by soname.
func Closure(binary string) ([]Dep, error) {
	fail := func(err error) ([]Dep, error) {
		return nil, fmt.Errorf("library closure of %s: %w", binary, err)
	}
	exe, err := readELFInfo(binary)
	if err != nil {
		return fail(err)
	}
	real, err := filepath.EvalSymlinks(binary)
	if err != nil {
		return fail(err)
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return fail(err)
	}

	deps := map[string]Dep{}
	// provided holds names the loader will consider already loaded.
	provided := map[string]bool{}
	if exe.interp != "" {
		host, err := filepath.EvalSymlinks(exe.interp)
		if err != nil {
			return fail(fmt.Errorf("interpreter %s: %w", exe.interp, err))
		}
		deps[exe.interp] = Dep{Path: exe.interp, Host: host}
		provided[path.Base(exe.interp)] = true
		if in, err := readELFInfo(host); err == nil && in.soname != "" {
			provided[in.soname] = true
		}
	}

	// The executable's DT_RPATH applies to every lookup, unless the
	// executable uses DT_RUNPATH, which applies to its own needs only.
	var inherited []string
	if exe.runpath == nil {
		inherited = exe.rpath
	}

	type item struct {
		name   string // for error messages
		info   *elfInfo
		origin string
	}
	queue := []item{{binary, exe, filepath.Dir(real)}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		var search []string
		if it.info.runpath != nil {
			search = expandOrigin(it.info.runpath, it.origin)
		} else {
			search = expandOrigin(it.info.rpath, it.origin)
			if it.info != exe {
				search = append(search, expandOrigin(inherited, filepath.Dir(real))...)
			}
		}
		for _, lib := range it.info.needed {
			if provided[lib] {
				continue
			}
			guest, found, info, err := findLib(lib, search, exe)
			if err != nil {
				return fail(fmt.Errorf("library %s (needed by %s): %w", lib, it.name, err))
			}
			host, err := filepath.EvalSymlinks(found)
			if err != nil {
				return fail(fmt.Errorf("library %s: %w", lib, err))
			}
			provided[lib] = true
			if info.soname != "" {
				provided[info.soname] = true
			}
			if _, dup := deps[guest]; dup {
				continue
			}
			deps[guest] = Dep{Path: guest, Host: host}
			queue = append(queue, item{found, info, filepath.Dir(found)})
		}
	}

	out := make([]Dep, 0, len(deps))
	for _, d := range deps {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Dep) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// findLib looks lib up in search, then in defaultLibDirs, and returns the
// path the guest should have it at, the host path it was found at, and its
// ELF info.
func findLib(lib string, search []string, want *elfInfo) (guest, found string, info *elfInfo, err error) {
	if strings.Contains(lib, "/") {
		// The loader opens such names as given, without searching.
		info, err := readELFInfo(lib)
		if err != nil {
			return "", "", nil, err
		}
		return path.Clean(lib), lib, info, nil
	}
	try := func(dir string) *elfInfo {
		if dir == "" {
			return nil
		}
		in, err := readELFInfo(filepath.Join(dir, lib))
		if err != nil || in.class != want.class || in.machine != want.machine {
			return nil
		}
		return in
	}
	for _, dir := range search {
		if in := try(dir); in != nil {
			p := filepath.Join(dir, lib)
			if abs, err := filepath.Abs(p); err == nil {
				p = abs
			}
			if slices.Contains(defaultLibDirs, filepath.Dir(p)) {
				// A search path naming a default dir changes
				// nothing in the guest; let defaultLibDirs order
				// pick the name so one file is not listed twice.
				break
			}
			return p, p, in, nil
		}
	}
	for _, dir := range defaultLibDirs {
		if in := try(dir); in != nil {
			p := path.Join(dir, lib)
			return p, p, in, nil
		}
	}
	return "", "", nil, errors.New("not found in DT_RUNPATH/DT_RPATH or " + strings.Join(defaultLibDirs, ", "))
}

// expandOrigin substitutes $ORIGIN and ${ORIGIN}, the only dynamic string
// token with a fixed meaning on x86-64 Debian worth supporting here.
func expandOrigin(dirs []string, origin string) []string {
	out := make([]string, 0, len(dirs))
	for _, d := range dirs {
		d = strings.ReplaceAll(d, "${ORIGIN}", origin)
		d = strings.ReplaceAll(d, "$ORIGIN", origin)
		out = append(out, d)
	}
	return out
}
