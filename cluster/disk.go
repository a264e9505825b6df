package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/detvm/detvm/images"
	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/wire"
)

// A node's persistent disk (scenario.Disk, DESIGN.md "Disks") is an
// NVDIMM backed by <run>/<node>/disk.img. Every boot starts it from one
// formatted ext4 image, kept in the cache per size; the guest's kernel
// mounts it. After the run the file holds what reached the disk: read it
// with debugfs, or mount it (loop) on the host.

// diskDev is the block device of the one NVDIMM a guest has.
const diskDev = "/dev/pmem0"

// nodeDisk returns the formatted image node n's disk starts from, and the
// zero DiskImage if n has no disk.
func nodeDisk(tools Tools, n *scenario.Node) (images.DiskImage, error) {
	if n.Disk == nil {
		return images.DiskImage{}, nil
	}
	img, err := images.Ext4Image(filepath.Join(tools.CacheDir, "disks"), n.Disk.Size)
	if err != nil {
		return images.DiskImage{}, Infra("node %s: disk: %v", n.Name, err)
	}
	return img, nil
}

// addDisk puts what the guest needs to mount its disk into img and cfg:
// the kernel modules for the NVDIMM and ext4 (loaded after the others)
// and the mount.
func addDisk(img *images.Initramfs, cfg *wire.Config, n *scenario.Node, kern *images.Kernel, disk images.DiskImage) error {
	if n.Disk == nil {
		return nil
	}
	if disk.Digest == "" || disk.Bytes != n.Disk.Size {
		return fmt.Errorf("disk: no formatted image of %d bytes", n.Disk.Size)
	}
	// Last, once everything else is in the image.
	if hidden := img.Under(n.Disk.Mount); len(hidden) > 0 {
		more := ""
		if len(hidden) > 1 {
			more = fmt.Sprintf(" and %d more", len(hidden)-1)
		}
		return fmt.Errorf("disk.mount %s would hide %s%s of the guest's image; mount the disk on a directory of its own, like %s",
			n.Disk.Mount, hidden[0], more, scenario.DefaultDiskMount)
	}
	mods, err := kern.ModulesFor(images.DiskModules...)
	if err != nil {
		return fmt.Errorf("disk: kernel modules: %w", err)
	}
	for _, m := range mods {
		ko, err := kern.ModuleBytes(m)
		if err != nil {
			return fmt.Errorf("disk: kernel module %s: %w", m, err)
		}
		p := "/lib/modules/" + m + ".ko"
		img.AddFile(p, ko, 0o644)
		cfg.Modules = append(cfg.Modules, p)
	}
	cfg.Disk = &wire.Disk{Dev: diskDev, Mount: n.Disk.Mount, Bytes: disk.Bytes, Image: disk.Digest}
	return nil
}

// attachDisk gives node n's machine its disk: the run directory's
// disk.img, which vmm.Start fills from the cached image at each boot. An
// image given as it is (a replay bundle's) must expect the disk this
// machine formats, or the run could not reproduce the one it came from.
func (r *runner) attachDisk(n *node) error {
	disk, err := nodeDisk(r.tools, n.spec)
	if err != nil || disk.Path == "" {
		return err
	}
	if p, ok := r.opt.Images[n.spec.Name]; ok {
		want, err := imageDisk(p)
		if err != nil {
			return Infra("node %s: image %s: %v", n.spec.Name, p, err)
		}
		switch {
		case want == nil:
			return Infra("node %s: image %s has no disk, but the scenario gives the node one", n.spec.Name, p)
		case want.Bytes != disk.Bytes:
			return Infra("node %s: image %s expects a disk of %d bytes, the scenario gives %d", n.spec.Name, p, want.Bytes, disk.Bytes)
		case want.Image != disk.Digest:
			return Infra("node %s: image %s expects a disk formatted as %.12s, but this machine's mke2fs formats %.12s: install the e2fsprogs version of the machine that recorded the run",
				n.spec.Name, p, want.Image, disk.Digest)
		}
	}
	n.cfg.Disk = filepath.Join(n.dir, "disk.img")
	n.cfg.DiskBytes = disk.Bytes
	n.cfg.DiskImage = disk.Path
	return nil
}

// imageDisk reads the disk the agent's configuration in an initramfs
// names; nil if none.
func imageDisk(path string) (*wire.Disk, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rr := cpio.Newc.Reader(f)
	name := strings.TrimPrefix(wire.ConfigPath, "/")
	for {
		rec, err := rr.ReadRecord()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("no %s", wire.ConfigPath)
		}
		if err != nil {
			return nil, err
		}
		if rec.Name != name {
			continue
		}
		b, err := io.ReadAll(io.NewSectionReader(rec.ReaderAt, 0, int64(rec.FileSize)))
		if err != nil {
			return nil, err
		}
		var cfg wire.Config
		if err := json.Unmarshal(b, &cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", wire.ConfigPath, err)
		}
		return cfg.Disk, nil
	}
}
