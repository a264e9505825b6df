package images

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

// op adds one thing to an Initramfs; tests apply the same ops in
// different orders.
type op func(*Initramfs)

func sampleOps() []op {
	return []op{
		func(i *Initramfs) { i.AddFile("/init", []byte("#!/bin/sh\nexec /bin/sh\n"), 0o755) },
		func(i *Initramfs) { i.AddFile("/etc/hosts", []byte("127.0.0.1 localhost\n"), 0o644) },
		func(i *Initramfs) { i.AddFile("etc/detvm/seed", []byte("42"), 0o600) },
		func(i *Initramfs) { i.AddFile("/usr/bin/passwd", []byte("x"), 0o755|os.ModeSetuid) },
		func(i *Initramfs) { i.AddDir("/tmp", 0o777|os.ModeSticky) },
		func(i *Initramfs) { i.AddDir("/proc", 0o555) },
		func(i *Initramfs) { i.AddSymlink("/bin/sh", "busybox") },
		func(i *Initramfs) { i.AddFile("/bin/busybox", bytes.Repeat([]byte{1, 2, 3}, 1001), 0o755) },
		func(i *Initramfs) { i.AddCharDev("/dev/console", 0o600, 5, 1) },
		func(i *Initramfs) { i.AddFile("/empty", nil, 0o644) },
	}
}

func build(t *testing.T, ops []op) []byte {
	t.Helper()
	i := NewInitramfs()
	for _, o := range ops {
		o(i)
	}
	b, err := i.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInitramfsReproducible(t *testing.T) {
	ops := sampleOps()
	want := build(t, ops)
	wantSum := sha256.Sum256(want)

	reversed := slices.Clone(ops)
	slices.Reverse(reversed)
	shuffled := []op{ops[3], ops[7], ops[0], ops[9], ops[5], ops[1], ops[8], ops[2], ops[6], ops[4]}
	for name, o := range map[string][]op{"same": ops, "reversed": reversed, "shuffled": shuffled} {
		t.Run(name, func(t *testing.T) {
			got := build(t, o)
			if !bytes.Equal(got, want) || sha256.Sum256(got) != wantSum {
				t.Fatal("insertion order changed the archive")
			}
		})
	}

	changed := append(slices.Clone(ops), func(i *Initramfs) { i.AddFile("/etc/detvm/seed", []byte("43"), 0o600) })
	if sha256.Sum256(build(t, changed)) == wantSum {
		t.Fatal("changing one byte of a file left the hash unchanged")
	}
	chmod := append(slices.Clone(ops), func(i *Initramfs) { i.AddFile("/etc/detvm/seed", []byte("42"), 0o644) })
	if sha256.Sum256(build(t, chmod)) == wantSum {
		t.Fatal("changing a mode left the hash unchanged")
	}
}

func TestInitramfsContents(t *testing.T) {
	ops := append(sampleOps(),
		// Last one wins, even across kinds.
		func(i *Initramfs) { i.AddFile("/etc/hosts", []byte("replaced\n"), 0o640) },
		func(i *Initramfs) { i.AddDir("/empty", 0o700) },
		// The root is the kernel's; it is not an entry.
		func(i *Initramfs) { i.AddDir("/", 0o700) },
	)
	archive := build(t, ops)

	recs, err := cpio.ReadAllRecords(cpio.EOFReader{RecordReader: cpio.Newc.Reader(bytes.NewReader(archive))})
	if err != nil {
		t.Fatal(err)
	}
	type rec struct {
		mode uint64
		data string
	}
	got := map[string]rec{}
	var names []string
	inos := map[uint64]bool{}
	for _, r := range recs {
		names = append(names, r.Name)
		var data []byte
		if r.ReaderAt != nil {
			data, err = io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
			if err != nil {
				t.Fatal(err)
			}
		}
		got[r.Name] = rec{r.Mode, string(data)}
		if r.MTime != 0 || r.UID != 0 || r.GID != 0 {
			t.Errorf("%s: mtime %d uid %d gid %d, want all 0", r.Name, r.MTime, r.UID, r.GID)
		}
		if r.Ino == 0 || inos[r.Ino] {
			t.Errorf("%s: inode %d is zero or reused", r.Name, r.Ino)
		}
		inos[r.Ino] = true
		if r.Name == "dev/console" && (r.Rmajor != 5 || r.Rminor != 1) {
			t.Errorf("dev/console is %d:%d, want 5:1", r.Rmajor, r.Rminor)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries not sorted: %q", names)
	}
	want := map[string]rec{
		"bin":            {cpio.S_IFDIR | 0o755, ""},
		"bin/busybox":    {cpio.S_IFREG | 0o755, string(bytes.Repeat([]byte{1, 2, 3}, 1001))},
		"bin/sh":         {cpio.S_IFLNK | 0o777, "busybox"},
		"dev":            {cpio.S_IFDIR | 0o755, ""},
		"dev/console":    {cpio.S_IFCHR | 0o600, ""},
		"empty":          {cpio.S_IFDIR | 0o700, ""},
		"etc":            {cpio.S_IFDIR | 0o755, ""},
		"etc/detvm":      {cpio.S_IFDIR | 0o755, ""},
		"etc/detvm/seed": {cpio.S_IFREG | 0o600, "42"},
		"etc/hosts":      {cpio.S_IFREG | 0o640, "replaced\n"},
		"init":           {cpio.S_IFREG | 0o755, "#!/bin/sh\nexec /bin/sh\n"},
		"proc":           {cpio.S_IFDIR | 0o555, ""},
		"tmp":            {cpio.S_IFDIR | 0o1777, ""},
		"usr":            {cpio.S_IFDIR | 0o755, ""},
		"usr/bin":        {cpio.S_IFDIR | 0o755, ""},
		"usr/bin/passwd": {cpio.S_IFREG | 0o4755, "x"},
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if g != w {
			t.Errorf("%s: mode %#o data %q, want mode %#o data %q", name, g.mode, g.data, w.mode, w.data)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected entry %q", name)
		}
	}
	if !bytes.Contains(archive, []byte(cpio.Trailer)) {
		t.Error("no trailer")
	}
	if len(archive)%4 != 0 {
		t.Errorf("archive length %d is not 4-aligned", len(archive))
	}
}

func TestInitramfsBadParent(t *testing.T) {
	tests := []struct {
		name string
		ops  []op
	}{
		{"file parent", []op{
			func(i *Initramfs) { i.AddFile("/a", nil, 0o644) },
			func(i *Initramfs) { i.AddFile("/a/b", nil, 0o644) },
		}},
		{"symlink parent", []op{
			func(i *Initramfs) { i.AddSymlink("/lib", "usr/lib") },
			func(i *Initramfs) { i.AddFile("/lib/x86_64-linux-gnu/libc.so.6", nil, 0o644) },
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := NewInitramfs()
			for _, o := range tt.ops {
				o(i)
			}
			if _, err := i.Bytes(); err == nil || !strings.Contains(err.Error(), "directory") {
				t.Fatalf("err = %v, want one about a non-directory parent", err)
			}
		})
	}
}

func TestInitramfsAddFileCopies(t *testing.T) {
	data := []byte("before")
	i := NewInitramfs()
	i.AddFile("/f", data, 0o644)
	a, err := i.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	copy(data, "after!")
	b, err := i.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("changing the caller's slice changed the archive")
	}
}

func TestInitramfsHostFiles(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "tool")
	if err := os.WriteFile(host, []byte("data"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(host, 0o640); err != nil {
		t.Fatal(err)
	}
	i := NewInitramfs()
	if err := i.AddHostFile("/keep", host, 0); err != nil {
		t.Fatal(err)
	}
	if err := i.AddHostFile("/set", host, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := i.AddHostFile("/x", filepath.Join(dir, "absent"), 0); err == nil {
		t.Fatal("AddHostFile of a missing file succeeded")
	}
	if err := i.AddHostFile("/x", dir, 0); err == nil {
		t.Fatal("AddHostFile of a directory succeeded")
	}
	bin := "/bin/ls"
	if _, err := os.Stat(bin); err == nil {
		if err := i.AddBinary(GuestPath(bin), bin); err != nil {
			t.Fatal(err)
		}
	}
	archive, err := i.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.EOFReader{RecordReader: cpio.Newc.Reader(bytes.NewReader(archive))})
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]uint64{}
	for _, r := range recs {
		modes[r.Name] = r.Mode
	}
	if modes["keep"] != cpio.S_IFREG|0o640 || modes["set"] != cpio.S_IFREG|0o444 {
		t.Fatalf("modes keep %#o set %#o, want 0100640 and 0100444", modes["keep"], modes["set"])
	}
	if _, err := os.Stat(bin); err == nil {
		deps, err := Closure(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range append(depPaths(deps), bin) {
			if _, ok := modes[p[1:]]; !ok {
				t.Errorf("AddBinary(%s) did not add %s", bin, p)
			}
		}
		if modes["bin/ls"] != cpio.S_IFREG|0o755 {
			t.Errorf("bin/ls mode %#o, want 0100755", modes["bin/ls"])
		}
	}
}

func TestGuestPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/usr/bin/etcd", "/usr/bin/etcd"},
		{"/bin/busybox", "/bin/busybox"},
		{"/sbin/ip", "/sbin/ip"},
		{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"},
		{"/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2"},
		{"/opt/app/bin/server", "/opt/app/bin/server"},
		{"/home/me/project/server", "/opt/detvm/bin/server"},
		{"/usr/../home/me/server", "/opt/detvm/bin/server"},
		{"/usrlocal/x", "/opt/detvm/bin/x"},
		{"./build/server", "/opt/detvm/bin/server"},
		{"server", "/opt/detvm/bin/server"},
	}
	for _, tt := range tests {
		if got := GuestPath(tt.in); got != tt.want {
			t.Errorf("GuestPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	tests := []struct {
		ext      string
		data     []byte
		wantName string
	}{
		{"cpio", []byte("hello detvm\n"), "16426f8474f9a2b480b30775d1d6da8aa5fc7f17f92f60d3cfba25d55ddecfd2.cpio"},
		{".img", []byte("x"), "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881.img"},
		{"", nil, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	}
	for _, tt := range tests {
		t.Run(tt.wantName, func(t *testing.T) {
			p, sum, err := Store(dir, tt.ext, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(dir, tt.wantName); p != want {
				t.Fatalf("path = %s, want %s", p, want)
			}
			if !strings.HasPrefix(tt.wantName, sum) || len(sum) != 64 {
				t.Fatalf("sum = %s, want the name's hash", sum)
			}
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Fatalf("stored %q, %v; want %q", got, err, tt.data)
			}
			st1, _ := os.Stat(p)
			if _, _, err := Store(dir, tt.ext, tt.data); err != nil {
				t.Fatal(err)
			}
			st2, _ := os.Stat(p)
			if !os.SameFile(st1, st2) {
				t.Fatal("second Store rewrote the file")
			}
		})
	}

	// A file cut short (say by a crash) under the right name is replaced.
	data := []byte("complete contents")
	p, _, err := Store(dir, "bin", data)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data[:3], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Store(dir, "bin", data); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Fatalf("truncated file not repaired: %q", got)
	}

	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}
