package vmm

import (
	"fmt"
	"os"

	"github.com/detvm/detvm/images"
)

// DiskAlign is the granularity of a disk's size: the guest maps an
// NVDIMM's pages in 2 MiB sections.
const DiskAlign = 2 << 20

func (c *Config) validateDisk() error {
	if c.Disk == "" {
		if c.DiskBytes != 0 || c.DiskImage != "" {
			return fmt.Errorf("vmm: %s: config: DiskBytes or DiskImage without a Disk file", c.Name)
		}
		return nil
	}
	if c.DiskBytes <= 0 || c.DiskBytes%DiskAlign != 0 {
		return fmt.Errorf("vmm: %s: config: DiskBytes %d is not a positive multiple of 2 MiB", c.Name, c.DiskBytes)
	}
	var field, path string
	switch {
	case c.Incoming:
		return nil // Start creates it
	case c.DiskImage != "":
		field, path = "DiskImage", c.DiskImage
	default:
		field, path = "Disk", c.Disk
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("vmm: %s: config: %s: %w", c.Name, field, err)
	}
	if !st.Mode().IsRegular() || st.Size() != c.DiskBytes {
		// QEMU would refuse a backing file of another size, with a
		// message that does not say which node.
		return fmt.Errorf("vmm: %s: config: %s %s is %d bytes, not DiskBytes (%d)", c.Name, field, path, st.Size(), c.DiskBytes)
	}
	return nil
}

// prepareDisk gives the disk file the content the guest must find: zeros
// for a machine about to load a snapshot, DiskImage for one that boots.
func (m *Machine) prepareDisk() error {
	c := m.cfg
	switch {
	case c.Disk == "":
		return nil
	case c.Incoming:
		f, err := os.OpenFile(c.Disk, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		err = f.Truncate(c.DiskBytes)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	case c.DiskImage != "":
		return images.CopySparse(c.Disk, c.DiskImage)
	}
	return nil
}
