package images

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeKernelTree lays out dir/<ver>/root the way the setup script does.
func fakeKernelTree(t *testing.T, dir, ver string, payload []byte, modules map[string][]byte) {
	t.Helper()
	root := filepath.Join(dir, ver, "root")
	files := map[string][]byte{
		"boot/vmlinuz-" + ver:                     fakeBzImage(t, payload),
		"lib/modules/" + ver + "/modules.builtin": []byte("kernel/drivers/char/mem_builtin.ko\nkernel/fs/ext-four.ko\n"),
	}
	for rel, data := range modules {
		files["lib/modules/"+ver+"/kernel/"+rel] = data
	}
	for rel, data := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadKernel(t *testing.T) {
	dir := t.TempDir()
	payload := fakeELF(7)
	tunKo := []byte("\x7fELF tun module")
	pmemKo := []byte("\x7fELF nd_pmem module")
	fakeKernelTree(t, dir, "6.1.0-9-amd64", fakeELF(8), nil)
	fakeKernelTree(t, dir, "6.1.0-10-amd64", payload, map[string][]byte{
		"drivers/net/tun.ko":           tunKo,
		"drivers/nvdimm/nd_pmem.ko.xz": xzCompress(t, pmemKo),
		"drivers/block/null-blk.ko":    []byte("\x7fELF null_blk"),
	})
	// A version directory without a tree is not a kernel.
	if err := os.MkdirAll(filepath.Join(dir, "6.99.0-1-amd64"), 0o755); err != nil {
		t.Fatal(err)
	}

	k, err := LoadKernel(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != "6.1.0-10-amd64" {
		t.Fatalf("Version = %q, want the highest, 6.1.0-10-amd64", k.Version)
	}
	if want := filepath.Join(dir, "6.1.0-10-amd64", "vmlinux-6.1.0-10-amd64"); k.Vmlinux != want {
		t.Fatalf("Vmlinux = %q, want %q", k.Vmlinux, want)
	}
	got, err := os.ReadFile(k.Vmlinux)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("vmlinux does not hold the payload")
	}
	_, sum, err := Store(t.TempDir(), "", payload)
	if err != nil {
		t.Fatal(err)
	}
	if k.SHA256 != sum {
		t.Fatalf("SHA256 = %s, want %s", k.SHA256, sum)
	}

	st1, err := os.Stat(k.Vmlinux)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadKernel(dir)
	if err != nil {
		t.Fatal(err)
	}
	st2, err := os.Stat(k2.Vmlinux)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(st1, st2) || !st1.ModTime().Equal(st2.ModTime()) {
		t.Fatal("second LoadKernel rewrote vmlinux")
	}
	if k2.SHA256 != k.SHA256 {
		t.Fatal("SHA256 changed between calls")
	}

	modTests := []struct {
		name     string
		wantFile string
		want     []byte
		wantErr  error
	}{
		{"tun", "tun.ko", tunKo, nil},
		{"nd_pmem", "nd_pmem.ko.xz", pmemKo, nil},
		{"nd-pmem", "nd_pmem.ko.xz", pmemKo, nil},
		{"null_blk", "null-blk.ko", []byte("\x7fELF null_blk"), nil},
		{"mem_builtin", "", nil, ErrBuiltin},
		{"ext_four", "", nil, ErrBuiltin},
		{"nonesuch", "", nil, nil},
	}
	for _, tt := range modTests {
		t.Run("module "+tt.name, func(t *testing.T) {
			p, err := k.Module(tt.name)
			if tt.wantFile == "" {
				if err == nil {
					t.Fatalf("Module(%q) = %q, want an error", tt.name, p)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if tt.wantErr == nil && errors.Is(err, ErrBuiltin) {
					t.Fatalf("err = %v, should not be ErrBuiltin", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(p) != tt.wantFile {
				t.Fatalf("Module(%q) = %q, want a %s", tt.name, p, tt.wantFile)
			}
			data, err := k.ModuleBytes(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, tt.want) {
				t.Fatalf("ModuleBytes(%q) = %q, want %q", tt.name, data, tt.want)
			}
		})
	}
}

func TestLoadKernelMissing(t *testing.T) {
	empty := t.TempDir()
	for _, dir := range []string{filepath.Join(empty, "absent"), empty} {
		_, err := LoadKernel(dir)
		if err == nil || !strings.Contains(err.Error(), "make setup") {
			t.Errorf("LoadKernel(%s) err = %v, want one telling to run `make setup`", dir, err)
		}
	}
}

func TestLoadKernelBadImage(t *testing.T) {
	dir := t.TempDir()
	fakeKernelTree(t, dir, "6.1.0-1-amd64", []byte("not an elf"), nil)
	_, err := LoadKernel(dir)
	if err == nil || !strings.Contains(err.Error(), "make setup") {
		t.Fatalf("err = %v, want one telling to run `make setup`", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "6.1.0-1-amd64", "vmlinux-6.1.0-1-amd64")); err == nil {
		t.Fatal("a vmlinux was written for a bad image")
	}
}

func TestCompareVersions(t *testing.T) {
	in := []string{"6.12.0-1-amd64", "6.1.0-10-amd64", "6.1.0-9-amd64", "6.1.0-9-cloud-amd64", "6.1.0-09-amd64", "5.10.0-30-amd64", "6.1"}
	want := []string{"5.10.0-30-amd64", "6.1", "6.1.0-09-amd64", "6.1.0-9-amd64", "6.1.0-9-cloud-amd64", "6.1.0-10-amd64", "6.12.0-1-amd64"}
	for range 5 {
		got := slices.Clone(in)
		slices.Reverse(in)
		slices.SortFunc(got, compareVersions)
		if !slices.Equal(got, want) {
			t.Fatalf("sorted = %q, want %q", got, want)
		}
	}
}

// TestModuleDeps builds fake modules whose .modinfo names dependencies,
// since an extracted package has no modules.dep.
func TestModuleDeps(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed; it is needed to build ELF objects with a .modinfo section")
	}
	src := t.TempDir()
	files := map[string][]byte{}
	for rel, deps := range map[string]string{
		"drivers/nvdimm/nd_pmem.ko":   "nd_btt,libnvdimm,mem_builtin",
		"drivers/nvdimm/nd_btt.ko":    "libnvdimm",
		"drivers/nvdimm/libnvdimm.ko": "",
		"drivers/net/loop_a.ko":       "loop_b",
		"drivers/net/loop_b.ko":       "loop_a",
	} {
		files[rel] = fakeModule(t, gcc, src, deps)
	}

	dir := t.TempDir()
	fakeKernelTree(t, dir, "6.1.0-1-amd64", fakeELF(3), files)
	k, err := LoadKernel(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.ModuleDeps("nd_pmem")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"libnvdimm", "nd_btt", "nd_pmem"}; !slices.Equal(got, want) {
		t.Fatalf("ModuleDeps = %q, want %q", got, want)
	}
	if _, err := k.ModuleDeps("loop_a"); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("err = %v, want a cycle error", err)
	}
}

// fakeModule compiles an object file whose .modinfo lists deps, which is
// all of a module that ModuleDeps reads.
func fakeModule(t *testing.T, gcc, dir, deps string) []byte {
	t.Helper()
	c := filepath.Join(dir, "m.c")
	code := `const char modinfo[] __attribute__((section(".modinfo"))) = "license=GPL\0depends=` + deps + `\0vermagic=x";` + "\n"
	if err := os.WriteFile(c, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	o := filepath.Join(dir, "m.o")
	if out, err := exec.Command(gcc, "-c", "-o", o, c).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	data, err := os.ReadFile(o)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// realKernelCache is where `make setup` extracts Debian's kernel package;
// DETVM_TEST_KERNEL_CACHE points the test at another extracted cache.
const realKernelCache = "/root/.cache/detvm/kernel"

func TestRealKernel(t *testing.T) {
	dir := realKernelCache
	if d := os.Getenv("DETVM_TEST_KERNEL_CACHE"); d != "" {
		dir = d
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("no real kernel cache at %s (run `make setup` to create it): %v", dir, err)
	}
	k, err := LoadKernel(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(k.Vmlinux)
	if err != nil {
		t.Fatalf("vmlinux is not a readable ELF file: %v", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		t.Fatalf("vmlinux is %v %v, want an x86-64 executable", f.Machine, f.Type)
	}
	p, err := k.Module("tun")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel %s: vmlinux sha256 %s, tun at %s", k.Version, k.SHA256, p)
	ko, err := k.ModuleBytes("tun")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(ko, elfMagic) {
		t.Fatal("ModuleBytes(tun) is not ELF")
	}
	deps, err := k.ModuleDeps("nd_pmem")
	if err != nil {
		t.Fatal(err)
	}
	if len(deps) == 0 || deps[len(deps)-1] != "nd_pmem" {
		t.Fatalf("ModuleDeps(nd_pmem) = %q, want a list ending in nd_pmem", deps)
	}
	t.Logf("nd_pmem load order: %q", deps)
}
