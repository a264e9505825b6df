package images

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func depPaths(deps []Dep) []string {
	var p []string
	for _, d := range deps {
		p = append(p, d.Path)
	}
	return p
}

func TestClosureDynamic(t *testing.T) {
	for _, bin := range []string{"/bin/ls", "/usr/bin/etcd"} {
		t.Run(bin, func(t *testing.T) {
			if _, err := os.Stat(bin); err != nil {
				t.Skipf("%s not installed", bin)
			}
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			dynamic := f.SectionByType(elf.SHT_DYNAMIC) != nil
			f.Close()
			if !dynamic {
				t.Skipf("%s is statically linked here", bin)
			}
			deps, err := Closure(bin)
			if err != nil {
				t.Fatal(err)
			}
			paths := depPaths(deps)
			if !slices.IsSorted(paths) || len(slices.Compact(slices.Clone(paths))) != len(paths) {
				t.Fatalf("paths not sorted and unique: %q", paths)
			}
			if !slices.Contains(paths, "/lib64/ld-linux-x86-64.so.2") {
				t.Errorf("no interpreter in %q", paths)
			}
			if !slices.Contains(paths, "/lib/x86_64-linux-gnu/libc.so.6") {
				t.Errorf("no libc in %q", paths)
			}
			// libc needs ld-linux-x86-64.so.2 too, but the loader
			// satisfies that with the interpreter.
			if slices.Contains(paths, "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2") {
				t.Errorf("interpreter listed twice: %q", paths)
			}
			for _, d := range deps {
				st, err := os.Lstat(d.Host)
				if err != nil || !st.Mode().IsRegular() {
					t.Errorf("Host %s of %s is not a regular file", d.Host, d.Path)
				}
			}
			t.Logf("%s: %q", bin, paths)
		})
	}
}

func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH to build a static test binary")
	}
	return p
}

func TestClosureStatic(t *testing.T) {
	bins := map[string]string{}
	if f, err := elf.Open("/bin/busybox"); err == nil {
		if f.SectionByType(elf.SHT_DYNAMIC) == nil {
			bins["busybox"] = "/bin/busybox"
		}
		f.Close()
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "static")
	cmd := exec.Command(goTool(t), "build", "-o", exe, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bins["go"] = exe
	for name, bin := range bins {
		t.Run(name, func(t *testing.T) {
			deps, err := Closure(bin)
			if err != nil {
				t.Fatal(err)
			}
			if len(deps) != 0 {
				t.Fatalf("Closure(%s) = %v, want nothing", bin, deps)
			}
		})
	}
}

// TestClosureRunpath builds a program that finds its own library through
// $ORIGIN, and checks what happens when that library is missing.
func TestClosureRunpath(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed; it is needed to build a binary with a DT_RUNPATH")
	}
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(args ...string) {
		if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %q: %v\n%s", args, err, out)
		}
	}
	for _, d := range []string{"bin", "lib"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	lib := filepath.Join(dir, "lib", "libdetvmtest.so.1")
	run("-shared", "-fPIC", "-Wl,-soname,libdetvmtest.so.1", "-o", lib, write("lib.c", "int detvm_test(void) { return 0; }\n"))
	if err := os.Symlink("libdetvmtest.so.1", filepath.Join(dir, "lib", "libdetvmtest.so")); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "bin", "prog")
	run("-o", exe, write("main.c", "int detvm_test(void);\nint main(void) { return detvm_test(); }\n"),
		"-L"+filepath.Join(dir, "lib"), "-ldetvmtest", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib")
	if out, err := exec.Command(exe).CombinedOutput(); err != nil {
		t.Fatalf("test program does not run: %v\n%s", err, out)
	}

	deps, err := Closure(exe)
	if err != nil {
		t.Fatal(err)
	}
	// $ORIGIN is the executable's directory with symlinks resolved.
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	realLib := filepath.Join(realDir, "lib", "libdetvmtest.so.1")
	if want := (Dep{Path: realLib, Host: realLib}); !slices.Contains(deps, want) {
		t.Fatalf("Closure = %v, want it to include %v", deps, want)
	}
	if !slices.Contains(depPaths(deps), "/lib/x86_64-linux-gnu/libc.so.6") {
		t.Fatalf("Closure = %v, want libc from the default dirs", deps)
	}

	if err := os.Remove(lib); err != nil {
		t.Fatal(err)
	}
	_, err = Closure(exe)
	if err == nil || !strings.Contains(err.Error(), exe) || !strings.Contains(err.Error(), "libdetvmtest.so.1") {
		t.Fatalf("err = %v, want one naming %s and libdetvmtest.so.1", err, exe)
	}
}

func TestClosureNotELF(t *testing.T) {
	p := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Closure(p); err == nil {
		t.Fatal("Closure of a shell script succeeded")
	}
}
