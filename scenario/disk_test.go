package scenario

import (
	"testing"
)

func TestDisk(t *testing.T) {
	const head = "duration: 2s\nnodes:\n  - name: db\n    count: 2\n    binary: b\n"
	for _, c := range []struct {
		name, disk string
		want       Disk
	}{
		{"defaults", "    disk: {}\n", Disk{Size: 64 << 20, Mount: "/data"}},
		{"MiB", "    disk: {size: 128MiB, mount: /var/lib/db}\n", Disk{Size: 128 << 20, Mount: "/var/lib/db"}},
		{"GiB", "    disk:\n      size: 4GiB\n", Disk{Size: 4 << 30, Mount: "/data"}},
		{"short units", "    disk: {size: 1G}\n", Disk{Size: 1 << 30, Mount: "/data"}},
		{"M with space", "    disk: {size: 16 M}\n", Disk{Size: 16 << 20, Mount: "/data"}},
		{"bare MiB", "    disk: {size: 32}\n", Disk{Size: 32 << 20, Mount: "/data"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse([]byte(head+c.disk), "x.yaml")
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range s.Nodes {
				if n.Disk == nil || *n.Disk != c.want {
					t.Fatalf("%s: disk %+v, want %+v", n.Name, n.Disk, c.want)
				}
			}
			if s.Nodes[0].Disk == s.Nodes[1].Disk {
				t.Error("copies of a node share one Disk")
			}
		})
	}
	s, err := Parse([]byte(head+"    disk:\n"), "x.yaml")
	if err != nil || s.Nodes[0].Disk != nil {
		t.Fatalf("disk with no value: %v, %+v; want no disk", err, s.Nodes[0].Disk)
	}
	s, err = Parse([]byte("duration: 2s\nnodes: [{name: a, binary: b}]\nsidecar:\n  commands: [{run: [x]}]\n  disk: {mount: /srv}\n"), "x.yaml")
	if err != nil || s.Sidecar.Disk == nil || s.Sidecar.Disk.Mount != "/srv" {
		t.Fatalf("sidecar disk: %v, %+v", err, s.Sidecar)
	}
}

func TestDiskErrors(t *testing.T) {
	const head = "duration: 2s\nnodes:\n  - name: a\n    binary: b\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"scalar", head + "    disk: 64MiB\n",
			`x.yaml:5: nodes[0].disk: is a single value, not a mapping; write its size and mount point, like disk: {size: 64MiB, mount: /data}`},
		{"unknown field", head + "    disk: {sise: 64MiB}\n",
			`x.yaml:5: nodes[0].disk.sise: unknown field; did you mean "size"? (allowed: size, mount)`},
		{"field at wrong level", head + "    size: 64MiB\n",
			`x.yaml:5: nodes[0].size: unknown field; size is a field of a disk (disk:), not of a node (an item of nodes); move it there (allowed here: name, count, binary, args, env, daemon, memory, disk, files, include, commands)`},
		{"not a size", head + "    disk: {size: lots}\n",
			`x.yaml:5: nodes[0].disk.size: "lots" is not a size; use a size in MiB or GiB between 16MiB and 4GiB, like 64MiB`},
		{"kB", head + "    disk: {size: 65536KiB}\n",
			`x.yaml:5: nodes[0].disk.size: "65536KiB" is not a size; use a size in MiB or GiB between 16MiB and 4GiB, like 64MiB`},
		{"too small", head + "    disk: {size: 8MiB}\n",
			`x.yaml:5: nodes[0].disk.size: 8MiB is out of range; use a size between 16MiB and 4GiB`},
		{"too large", head + "    disk: {size: 8G}\n",
			`x.yaml:5: nodes[0].disk.size: 8G is out of range; use a size between 16MiB and 4GiB`},
		{"huge", head + "    disk: {size: 99999999999999999999G}\n",
			`x.yaml:5: nodes[0].disk.size: 99999999999999999999G is out of range; use a size between 16MiB and 4GiB`},
		{"negative", head + "    disk: {size: -64}\n",
			`x.yaml:5: nodes[0].disk.size: -64 is out of range; use a size between 16MiB and 4GiB`},
		{"unaligned", head + "    disk: {size: 65MiB}\n",
			`x.yaml:5: nodes[0].disk.size: 65MiB is not a multiple of 2MiB, the NVDIMM's alignment; use 64MiB or 66MiB`},
		{"relative mount", head + "    disk: {mount: data}\n",
			`x.yaml:5: nodes[0].disk.mount: data is not an absolute guest path; start it with /, like /data`},
		{"root", head + "    disk: {mount: /}\n",
			`x.yaml:5: nodes[0].disk.mount: / is the guest's root directory, which holds its programs; use a directory like /data`},
		{"unclean", head + "    disk: {mount: /data/}\n",
			`x.yaml:5: nodes[0].disk.mount: /data/ is not a clean path; write it as /data`},
		{"proc", head + "    disk: {mount: /proc/x}\n",
			`x.yaml:5: nodes[0].disk.mount: /proc/x is under /proc, where the guest's kernel shows its own files; use a directory like /data`},
		{"dev", head + "    disk: {mount: /dev}\n",
			`x.yaml:5: nodes[0].disk.mount: /dev is under /dev, where the guest's kernel shows its own files; use a directory like /data`},
		{"empty mount", head + "    disk: {mount: \"\"}\n",
			`x.yaml:5: nodes[0].disk.mount: is empty; give the guest directory to mount the disk on, like /data`},
		{"sidecar", "duration: 2s\nnodes: [{name: a, binary: b}]\nsidecar:\n  commands: [{run: [x]}]\n  disk:\n    size: 3\n",
			`x.yaml:6: sidecar.disk.size: 3 is out of range; use a size between 16MiB and 4GiB`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), "x.yaml")
			if err == nil || err.Error() != c.want {
				t.Fatalf("error\n got %v\nwant %s", err, c.want)
			}
		})
	}
}

func TestCompleteDisk(t *testing.T) {
	s := &Scenario{Name: "x", Duration: 1e9, Nodes: []Node{{Name: "a", Binary: "b", Disk: &Disk{}}}}
	if err := s.Complete(); err != nil {
		t.Fatal(err)
	}
	if d := *s.Nodes[0].Disk; d != (Disk{Size: DefaultDiskSize, Mount: DefaultDiskMount}) {
		t.Fatalf("disk %+v, want the defaults", d)
	}
}
