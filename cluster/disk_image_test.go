package cluster

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/detvm/detvm/images"
	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/wire"
)

// TestNodeImageDisk: a node with a disk gets the NVDIMM and ext4 modules
// after tun, and a config that names the device, the mount point and the
// formatted image; a mount point that would hide image files is refused.
func TestNodeImageDisk(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("/bin/busybox not on this host")
	}
	kern := testKernel(t)
	s := &scenario.Scenario{Name: "x", Duration: 1e9, Epoch: 1e6, Subnet: netip.MustParsePrefix("10.89.0.0/24")}
	n := &scenario.Node{Name: "node-1", Binary: "/bin/busybox", Addr: netip.MustParseAddr("10.89.0.2"),
		Disk: &scenario.Disk{Size: 64 << 20, Mount: "/data"}}
	disk := images.DiskImage{Path: "/cache/disks/x.img", Bytes: 64 << 20, Digest: strings.Repeat("ab", 32)}
	img, err := nodeImage(s, n, kern, "/bin/busybox", "/bin/busybox", disk)
	if err != nil {
		t.Fatal(err)
	}
	b, err := img.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := findFile(t, b, wire.ConfigPath)
	if !ok {
		t.Fatalf("%s not in image", wire.ConfigPath)
	}
	var cfg wire.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	want := wire.Disk{Dev: "/dev/pmem0", Mount: "/data", Bytes: 64 << 20, Image: disk.Digest}
	if cfg.Disk == nil || *cfg.Disk != want {
		t.Fatalf("config disk %+v, want %+v", cfg.Disk, want)
	}
	if cfg.Modules[0] != "/lib/modules/tun.ko" {
		t.Errorf("tun is no longer the first module: %q", cfg.Modules)
	}
	for _, m := range []string{"nfit", "nd_pmem", "ext4"} {
		p := "/lib/modules/" + m + ".ko"
		if !slices.Contains(cfg.Modules, p) || !img.Has(p) {
			t.Errorf("%s missing from the modules %q or the image", p, cfg.Modules)
		}
	}

	// The same node without a disk: no disk modules, no disk.
	n.Disk = nil
	img, err = nodeImage(s, n, kern, "/bin/busybox", "/bin/busybox", images.DiskImage{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Has("/lib/modules/ext4.ko") {
		t.Error("ext4.ko in the image of a node without a disk")
	}

	n.Disk = &scenario.Disk{Size: 64 << 20, Mount: "/etc"}
	if _, err := nodeImage(s, n, kern, "/bin/busybox", "/bin/busybox", disk); err == nil ||
		!strings.Contains(err.Error(), "disk.mount /etc would hide /etc/group and") {
		t.Errorf("mount on /etc: err %v, want it refused", err)
	}
}

// TestImageDisk reads the disk back from a built image, as a replay of a
// bundle does.
func TestImageDisk(t *testing.T) {
	img := images.NewInitramfs()
	want := &wire.Disk{Dev: "/dev/pmem0", Mount: "/data", Bytes: 16 << 20, Image: "cd"}
	b, _ := json.Marshal(wire.Config{Node: "n", Disk: want})
	img.AddFile(wire.ConfigPath, b, 0o644)
	img.AddFile("/zz", []byte("after"), 0o644)
	data, err := img.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "img.cpio")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := imageDisk(p)
	if err != nil || got == nil || *got != *want {
		t.Fatalf("imageDisk = %+v, %v; want %+v", got, err, want)
	}
}
