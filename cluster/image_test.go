package cluster

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/detvm/detvm/images"
	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/wire"
)

// TestNodeImageCommands: an absolute run[0] is a guest path. The guest's
// own /bin/sh (busybox) is never replaced by the host's, and a host program
// the guest lacks is copied in with its libraries.
func TestNodeImageCommands(t *testing.T) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/od"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s not on this host", p)
		}
	}
	kern := testKernel(t)
	s := &scenario.Scenario{Name: "x", Duration: 1e9, Epoch: 1e6, Subnet: netip.MustParsePrefix("10.89.0.0/24")}
	n := &scenario.Node{Name: "node-1", Binary: "/bin/busybox", Addr: netip.MustParseAddr("10.89.0.2"), Args: []string{"true"}, Commands: []scenario.Command{
		{Name: "sh", Run: []string{"/bin/sh", "-c", "true"}},
		{Name: "od", Run: []string{"/usr/bin/od", "-x"}},
		{Name: "guest-only", Run: []string{"/no/such/host/program"}},
	}}
	img, err := nodeImage(s, n, kern, "/bin/busybox", "/bin/busybox", images.DiskImage{})
	if err != nil {
		t.Fatal(err)
	}
	if !img.Has("/usr/bin/od") || !img.Has("/lib64/ld-linux-x86-64.so.2") {
		t.Errorf("od or its interpreter not copied in")
	}
	b, err := img.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if img.Has("/no/such/host/program") {
		t.Errorf("a guest-only path was invented")
	}
	var cfg wire.Config
	img2, _ := nodeImage(s, n, kern, "/bin/busybox", "/bin/busybox", images.DiskImage{})
	b2, _ := img2.Bytes()
	if string(b) != string(b2) {
		t.Fatal("same node, different image bytes")
	}
	// The config is in the archive; decode it back from a fresh build.
	raw, ok := findFile(t, b, wire.ConfigPath)
	if !ok {
		t.Fatalf("%s not in image", wire.ConfigPath)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	got := []string{cfg.Commands[0].Argv[0], cfg.Commands[1].Argv[0], cfg.Commands[2].Argv[0]}
	want := []string{"/bin/sh", "/usr/bin/od", "/no/such/host/program"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("command %d argv[0] = %q, want %q", i, got[i], want[i])
		}
	}
	if cfg.Main == nil || cfg.Main.Daemon || cfg.Main.Argv[1] != "true" || cfg.EpochNS != 1e6 {
		t.Errorf("main proc config wrong: %+v", cfg)
	}
	if cfg.Net == nil || cfg.Net.Addr != "10.89.0.2/24" || cfg.Net.Dev != "eth0" {
		t.Errorf("net config wrong: %+v", cfg.Net)
	}
}

// testKernel is the cached guest kernel, or a skip: images need its tun.ko.
func testKernel(t *testing.T) *images.Kernel {
	k, err := images.LoadKernel(filepath.Join(DefaultCacheDir(), "kernel"))
	if err != nil {
		t.Skipf("no guest kernel (run `make setup`): %v", err)
	}
	return k
}

// findFile returns the contents of a regular file in a newc archive, and
// also checks that /bin/sh is still the busybox symlink.
func findFile(t *testing.T, archive []byte, path string) ([]byte, bool) {
	t.Helper()
	recs, err := cpio.ReadAllRecords(cpio.EOFReader{RecordReader: cpio.Newc.Reader(bytes.NewReader(archive))})
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	found := false
	for _, r := range recs {
		switch r.Name {
		case "bin/sh":
			if r.Mode&cpio.S_IFMT != cpio.S_IFLNK {
				t.Errorf("/bin/sh is no longer the busybox symlink (mode %o)", r.Mode)
			}
		case path[1:]:
			out, err = io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
			if err != nil {
				t.Fatal(err)
			}
			found = true
		}
	}
	return out, found
}
