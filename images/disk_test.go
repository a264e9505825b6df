package images

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func needMke2fs(t *testing.T) {
	t.Helper()
	if _, err := Mke2fs(); err != nil {
		t.Skipf("%v", err)
	}
}

func fileSHA(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestFormatExt4Deterministic: two formats, in different directories, a
// second apart (mke2fs would write the time), give the same bytes.
func TestFormatExt4Deterministic(t *testing.T) {
	needMke2fs(t)
	const size = 16 << 20
	a := filepath.Join(t.TempDir(), "a.img")
	b := filepath.Join(t.TempDir(), "b.img")
	if err := FormatExt4(a, size); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if err := FormatExt4(b, size); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(a); err != nil || st.Size() != size {
		t.Fatalf("stat %s: %v (size %d, want %d)", a, err, st.Size(), size)
	}
	if fileSHA(t, a) != fileSHA(t, b) {
		t.Fatal("two formats of one size differ")
	}
	img, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	// The ext4 superblock at 1024: magic 0xEF53 at offset 0x38.
	if !bytes.Equal(img[1024+0x38:1024+0x3a], []byte{0x53, 0xef}) {
		t.Fatal("no ext4 superblock")
	}
}

// TestDiskDigest: the digest is of the content, not of the holes.
func TestDiskDigest(t *testing.T) {
	dir := t.TempDir()
	sparse := filepath.Join(dir, "sparse")
	dense := filepath.Join(dir, "dense")
	data := make([]byte, 1<<20)
	copy(data[8192:], "hello")
	copy(data[len(data)-3:], "end")
	if err := os.WriteFile(dense, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(int64(len(data)))
	f.WriteAt([]byte("hello"), 8192)
	f.WriteAt([]byte("end"), int64(len(data)-3))
	f.Close()
	da, err := DiskDigest(dense)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := DiskDigest(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if da != ds {
		t.Fatalf("same content, digests %s and %s", da, ds)
	}
	data[5] = 1
	os.WriteFile(dense, data, 0o644)
	if d, _ := DiskDigest(dense); d == ds {
		t.Fatal("a changed byte left the digest unchanged")
	}
	// Same non-zero blocks, different size.
	os.WriteFile(dense, data[:len(data)/2], 0o644)
	f, _ = os.OpenFile(dense, os.O_RDWR, 0)
	f.Truncate(int64(len(data)))
	f.Close()
	if d, _ := DiskDigest(dense); d == da {
		t.Fatal("different content, same digest")
	}
}

// TestExt4ImageCached: the cached image is formatted once, and a run's
// copy of it has its content and stays sparse.
func TestExt4ImageCached(t *testing.T) {
	needMke2fs(t)
	dir := t.TempDir()
	const size = 32 << 20
	img, err := Ext4Image(dir, size)
	if err != nil {
		t.Fatal(err)
	}
	st1, err := os.Stat(img.Path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Ext4Image(dir, size)
	if err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(again.Path)
	if again != img || !st1.ModTime().Equal(st2.ModTime()) || !os.SameFile(st1, st2) {
		t.Fatalf("second call formatted again: %+v vs %+v", again, img)
	}
	if d, err := DiskDigest(img.Path); err != nil || d != img.Digest {
		t.Fatalf("digest %s (%v), recorded %s", d, err, img.Digest)
	}
	other, err := Ext4Image(t.TempDir(), size)
	if err != nil {
		t.Fatal(err)
	}
	if other.Digest != img.Digest || filepath.Base(other.Path) != filepath.Base(img.Path) {
		t.Fatalf("another cache gave %+v, want the digest and name of %+v", other, img)
	}
	cp := filepath.Join(t.TempDir(), "disk.img")
	if err := CopySparse(cp, img.Path); err != nil {
		t.Fatal(err)
	}
	if fileSHA(t, cp) != fileSHA(t, img.Path) {
		t.Fatal("copy differs from the image")
	}
	if st, err := os.Stat(cp); err != nil || st.Size() != size {
		t.Fatalf("copy: %v, size %d", err, st.Size())
	}
	t.Logf("%s: %s", filepath.Base(img.Path), img.Digest)
}

func TestModulesFor(t *testing.T) {
	k, err := LoadKernel(realKernelCache)
	if err != nil {
		t.Skipf("no real kernel cache (run `make setup`): %v", err)
	}
	mods, err := k.ModulesFor(DiskModules...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel %s: %q", k.Version, mods)
	for _, m := range []string{"libnvdimm", "nfit", "nd_pmem", "jbd2", "ext4"} {
		if !slices.Contains(mods, m) {
			t.Errorf("%s missing from %q", m, mods)
		}
	}
	if slices.Index(mods, "libnvdimm") > slices.Index(mods, "nfit") || slices.Index(mods, "jbd2") > slices.Index(mods, "ext4") {
		t.Errorf("a module before its dependency: %q", mods)
	}
	seen := map[string]bool{}
	for _, m := range mods {
		if seen[m] {
			t.Errorf("%s twice in %q", m, mods)
		}
		seen[m] = true
	}
}

// TestUnder: what a file system mounted on a directory would hide.
func TestUnder(t *testing.T) {
	img := NewInitramfs()
	img.AddFile("/data/x", nil, 0o644)
	img.AddFile("/database", nil, 0o644)
	img.AddDir("/srv", 0o755)
	img.AddSymlink("/opt", "srv")
	img.AddFile("/etc/hosts", nil, 0o644)
	for dir, want := range map[string][]string{
		"/data":  {"/data/x"},
		"/srv":   nil,
		"/opt":   {"/opt"},
		"/var":   nil,
		"/data/": {"/data/x"},
	} {
		if got := img.Under(dir); !slices.Equal(got, want) {
			t.Errorf("Under(%s) = %q, want %q", dir, got, want)
		}
	}
}
