package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/detvm/detvm/snapshot"
)

// snapshotRun makes a run directory whose snapshots/ holds a parent and a
// child snapshot of two small files; the child changes one chunk of
// node-2.mig and adds one to node-1.mig.
func snapshotRun(t *testing.T) (run string, parent, child *snapshot.Manifest) {
	t.Helper()
	run = filepath.Join(t.TempDir(), "run")
	st, err := snapshot.Open(filepath.Join(run, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := func(b byte) []byte { return bytes.Repeat([]byte{b}, snapshot.ChunkSize) }
	files := func(dir string, n1, n2 []byte) []string {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var paths []string
		for name, data := range map[string][]byte{"node-1.mig": n1, "node-2.mig": n2} {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
		if filepath.Base(paths[0]) != "node-1.mig" {
			paths[0], paths[1] = paths[1], paths[0]
		}
		return paths
	}
	join := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	src := t.TempDir()
	parent, err = st.Put(&snapshot.Manifest{Epoch: 100, VirtualNS: 100e6, Segments: []snapshot.Segment{{FromEpoch: 0, Seed: 1}},
		Scenario: "demo", Kernel: "6.1.0-test", QEMU: "10.0.0", Images: map[string]string{"node-1": "aa11"},
		State: json.RawMessage(`{"epoch":100,"switch":{"queued":2}}`)},
		files(filepath.Join(src, "1"), join(chunk(1), chunk(0), chunk(2)), join(chunk(3), []byte("tail"))))
	if err != nil {
		t.Fatal(err)
	}
	child, err = st.Put(&snapshot.Manifest{Parent: parent.ID, Epoch: 500, VirtualNS: 500e6,
		Segments: []snapshot.Segment{{FromEpoch: 0, Seed: 1}, {FromEpoch: 300, Seed: 9}}, Scenario: "demo"},
		files(filepath.Join(src, "2"), join(chunk(1), chunk(0), chunk(2), chunk(4)), join(chunk(5), []byte("tail"))))
	if err != nil {
		t.Fatal(err)
	}
	return run, parent, child
}

func TestSnapshotLs(t *testing.T) {
	run, parent, child := snapshotRun(t)
	for _, dir := range []string{run, filepath.Join(run, "snapshots")} {
		stdout, stderr, code := detvm(t, nil, "snapshot", "ls", "--dir", dir)
		if code != 0 {
			t.Fatalf("ls --dir %s: exit %d\n%s%s", dir, code, stdout, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if len(lines) != 4 {
			t.Fatalf("want header, 2 rows, disk line:\n%s", stdout)
		}
		for i, want := range [][]string{
			{"ID", "PARENT", "EPOCH", "VIRTUAL", "SIZE", "NEW", "SEGMENTS"},
			{parent.ID, "-", "100", "0.100", "256.0 KiB", "192.0 KiB", "0:1"},
			{child.ID, parent.ID, "500", "0.500", "320.0 KiB", "128.0 KiB", "0:1,300:9"},
		} {
			if got := strings.Join(strings.Fields(lines[i]), " "); got != strings.Join(want, " ") {
				t.Errorf("line %d:\n got %s\nwant %s", i, got, strings.Join(want, " "))
			}
		}
		if !strings.HasPrefix(lines[3], "disk: ") || !strings.Contains(lines[3], filepath.Join(run, "snapshots")) {
			t.Errorf("last line should give the store's disk use: %s", lines[3])
		}
	}

	stdout, stderr, code := detvm(t, nil, "snapshot", "ls", "--dir", run, "--json")
	if code != 0 {
		t.Fatalf("ls --json: exit %d\n%s%s", code, stdout, stderr)
	}
	var got []struct {
		ID        string             `json:"id"`
		Parent    string             `json:"parent"`
		Epoch     uint64             `json:"epoch"`
		VirtualNS uint64             `json:"virtual_ns"`
		Bytes     int64              `json:"bytes"`
		NewBytes  int64              `json:"new_bytes"`
		Segments  []snapshot.Segment `json:"segments"`
		Files     []string           `json:"files"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("ls --json is not a JSON array: %v\n%s", err, stdout)
	}
	if len(got) != 2 || got[0].ID != parent.ID || got[1].ID != child.ID || got[1].Parent != parent.ID ||
		got[1].Epoch != 500 || got[1].VirtualNS != 500e6 || got[1].Bytes != child.Bytes || got[1].NewBytes != 2*snapshot.ChunkSize ||
		len(got[1].Segments) != 2 || got[1].Segments[1] != (snapshot.Segment{FromEpoch: 300, Seed: 9}) ||
		strings.Join(got[0].Files, ",") != "node-1.mig,node-2.mig" {
		t.Errorf("ls --json:\n%s", stdout)
	}

	empty := filepath.Join(t.TempDir(), "store")
	if _, err := snapshot.Open(empty); err != nil {
		t.Fatal(err)
	}
	stdout, _, code = detvm(t, nil, "snapshot", "ls", "--dir", empty, "--json")
	if code != 0 || strings.TrimSpace(stdout) != "[]" {
		t.Errorf("ls --json of an empty store: exit %d, %q; want []", code, stdout)
	}
	stdout, _, code = detvm(t, nil, "snapshot", "ls", "--dir", empty)
	if code != 0 || !strings.Contains(stdout, "no snapshots in "+empty) || !strings.Contains(stdout, "disk: 0 B") {
		t.Errorf("ls of an empty store: exit %d\n%s", code, stdout)
	}
}

func TestSnapshotShow(t *testing.T) {
	run, parent, child := snapshotRun(t)
	stdout, stderr, code := detvm(t, nil, "snapshot", "show", child.ID[:6], "--dir", run)
	if code != 0 {
		t.Fatalf("show: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"snapshot  " + child.ID,
		"chain     " + child.ID + " ← " + parent.ID,
		"segments  0:1,300:9",
		"node-1.mig", "sha256:" + child.Files[0].SHA256, "3 of 4 chunks hold data",
		"node-2.mig", "2 of 2 chunks hold data",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, child.Files[0].Chunks[0]) {
		t.Errorf("show prints chunk hashes:\n%s", stdout)
	}

	stdout, _, code = detvm(t, nil, "snapshot", "show", parent.ID, "--dir", run, "--json")
	var got struct {
		ID     string          `json:"id"`
		Chain  []string        `json:"chain"`
		Kernel string          `json:"kernel"`
		State  json.RawMessage `json:"state"`
		Files  []struct {
			Name          string `json:"name"`
			SHA256        string `json:"sha256"`
			NonZeroChunks int    `json:"nonzero_chunks"`
			Chunks        int    `json:"chunks"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil {
		t.Fatalf("show --json: exit %d, %v\n%s", code, err, stdout)
	}
	if got.ID != parent.ID || len(got.Chain) != 1 || got.Kernel != "6.1.0-test" || len(got.Files) != 2 ||
		got.Files[0].NonZeroChunks != 2 || got.Files[0].Chunks != 3 || got.Files[1].SHA256 != parent.Files[1].SHA256 {
		t.Errorf("show --json:\n%s", stdout)
	}
	var state struct {
		Switch struct{ Queued int } `json:"switch"`
	}
	if json.Unmarshal(got.State, &state) != nil || state.Switch.Queued != 2 {
		t.Errorf("show --json lost the controller state: %s", got.State)
	}
	if strings.Contains(stdout, parent.Files[0].Chunks[0]) {
		t.Errorf("show --json prints chunk hashes")
	}
}

// TestSnapshotRmGC: rm refuses a parent, --force removes it, gc frees the
// chunks only it used.
func TestSnapshotRmGC(t *testing.T) {
	run, parent, child := snapshotRun(t)
	stdout, stderr, code := detvm(t, nil, "snapshot", "rm", parent.ID[:8], "--dir", run)
	if code != 2 || !strings.Contains(stderr, child.ID) || !strings.Contains(stderr, "--force") {
		t.Errorf("rm of a parent: exit %d, want 2 naming the child and --force\n%s%s", code, stdout, stderr)
	}
	stdout, stderr, code = detvm(t, nil, "snapshot", "gc", "--dir", run)
	if code != 0 || !strings.Contains(stdout, "freed 0 chunks, 0 B") {
		t.Errorf("gc with nothing to free: exit %d\n%s%s", code, stdout, stderr)
	}
	stdout, stderr, code = detvm(t, nil, "snapshot", "rm", parent.ID[:8], "--dir", run, "--force")
	if code != 0 || !strings.Contains(stdout, "removed "+parent.ID) {
		t.Fatalf("rm --force: exit %d\n%s%s", code, stdout, stderr)
	}
	stdout, _, _ = detvm(t, nil, "snapshot", "show", child.ID, "--dir", run)
	if !strings.Contains(stdout, child.ID+" ← "+parent.ID+" (removed)") {
		t.Errorf("show after the parent's removal:\n%s", stdout)
	}
	// Only the parent had chunk(3), at the start of node-2.mig.
	stdout, stderr, code = detvm(t, nil, "snapshot", "gc", "--dir", run)
	if code != 0 || !strings.Contains(stdout, "freed 1 chunks, 64.0 KiB (65536 bytes)") {
		t.Errorf("gc: exit %d\n%s%s", code, stdout, stderr)
	}
	stdout, _, _ = detvm(t, nil, "snapshot", "ls", "--dir", run)
	if strings.Contains(stdout, "\n"+parent.ID+" ") || !strings.Contains(stdout, "\n"+child.ID+" ") {
		t.Errorf("ls after rm:\n%s", stdout)
	}
}

// TestSnapshotBadInput: every mistake is exit 2 with one line saying what to do.
func TestSnapshotBadInput(t *testing.T) {
	run, parent, _ := snapshotRun(t)
	notStore := t.TempDir()
	file := filepath.Join(notStore, "file")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no store here", []string{"snapshot", "ls"}, "pass --dir"},
		{"missing dir", []string{"snapshot", "ls", "--dir", filepath.Join(notStore, "nope")}, "nope does not exist"},
		{"dir without store", []string{"snapshot", "ls", "--dir", notStore}, "holds no snapshot store"},
		{"dir is a file", []string{"snapshot", "gc", "--dir", file}, "is not a directory"},
		{"unknown id", []string{"snapshot", "show", "ffffffffffffffff", "--dir", run}, parent.ID},
		{"short id", []string{"snapshot", "show", "ab", "--dir", run}, "4 to 16 hex digits"},
		{"rm unknown", []string{"snapshot", "rm", "0000", "--dir", run}, "no such snapshot"},
		{"show without id", []string{"snapshot", "show", "--dir", run}, "accepts 1 arg(s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := detvm(t, nil, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, want 2 with %q\n%s%s", code, tc.want, stdout, stderr)
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("want a one-line error:\n%s", stderr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(notStore, "manifests")); err == nil {
		t.Error("a bad --dir was turned into a store")
	}
}

// TestSnapshotDamaged: a tampered manifest is reported by ls and show with
// its path, and can still be removed.
func TestSnapshotDamaged(t *testing.T) {
	run, parent, child := snapshotRun(t)
	path := filepath.Join(run, "snapshots", "manifests", child.ID+".json")
	b, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(b, []byte(`"epoch": 500`), []byte(`"epoch": 501`), 1), 0o644)
	stdout, stderr, code := detvm(t, nil, "snapshot", "ls", "--dir", run)
	if code != 4 || !strings.Contains(stdout, parent.ID) || !strings.Contains(stderr, path) || !strings.Contains(stderr, "manifest was modified") {
		t.Errorf("ls with a damaged manifest: exit %d\n%s%s", code, stdout, stderr)
	}
	if _, stderr, code := detvm(t, nil, "snapshot", "show", child.ID, "--dir", run); code != 4 || !strings.Contains(stderr, path) {
		t.Errorf("show of a damaged manifest: exit %d\n%s", code, stderr)
	}
	if stdout, stderr, code := detvm(t, nil, "snapshot", "rm", child.ID, "--dir", run); code != 0 {
		t.Errorf("rm of a damaged manifest: exit %d\n%s%s", code, stdout, stderr)
	}
}

func TestHumanBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{256 << 20, "256.0 MiB"}, {3 << 30, "3.0 GiB"}, {5 << 40, "5.0 TiB"},
	} {
		if got := humanBytes(tc.n); got != tc.want {
			t.Errorf("humanBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
