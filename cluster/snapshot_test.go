package cluster_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/detvm/detvm/cluster"
	"github.com/detvm/detvm/internal/testenv"
	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/snapshot"
)

// TestSnapshotTree: a hello run snapshotted twice leaves a two-level tree;
// continuing from the second snapshot gives the run's trace; a snapshot
// with one damaged byte is refused with an integrity error naming the
// chunk, never restored into a wrong run; a snapshot of other images is
// refused naming what differs.
func TestSnapshotTree(t *testing.T) {
	tools := testenv.Tools(t)
	s, err := scenario.Load(testenv.Example(t, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	a, err := cluster.Run(context.Background(), s, tools, cluster.Options{Seed: 1, RunDir: dir, SnapshotEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Snapshots) != 2 {
		t.Fatalf("snapshots %+v, want 2 (at 100 and 200 ms)", a.Snapshots)
	}
	st, err := snapshot.Open(filepath.Join(dir, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := st.Get(a.Snapshots[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	if second.Parent != a.Snapshots[0].ID {
		t.Errorf("second snapshot's parent %q, want %q", second.Parent, a.Snapshots[0].ID)
	}
	cont, err := cluster.Run(context.Background(), s, tools, cluster.Options{RunDir: filepath.Join(t.TempDir(), "cont"), Store: st.Dir(), From: second.ID})
	if err != nil {
		t.Fatal(err)
	}
	if cont.TraceHash != a.TraceHash {
		t.Errorf("continuation from %s: trace %s, want %s", second.ID, cont.TraceHash, a.TraceHash)
	}

	// One byte of one stored chunk of the first snapshot changes.
	first, err := st.Get(a.Snapshots[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	var chunk string
	for _, c := range first.Files[0].Chunks {
		if c != "" {
			chunk = filepath.Join(st.Dir(), "chunks", c[:2], c)
			break
		}
	}
	b, err := os.ReadFile(chunk)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(chunk, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = cluster.Run(context.Background(), s, tools, cluster.Options{RunDir: filepath.Join(t.TempDir(), "bad"), Store: st.Dir(), From: first.ID})
	var ie *cluster.InfraError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), first.ID) || !strings.Contains(err.Error(), "chunk") {
		t.Fatalf("restore of a damaged snapshot: %v, want an InfraError naming the snapshot and the chunk", err)
	}
	t.Logf("damaged: %v", err)

	// Another scenario (other images) cannot continue this run's snapshot.
	other := *s
	other.Nodes = append([]scenario.Node(nil), s.Nodes...)
	other.Nodes[0].Env = append(append([]scenario.EnvVar(nil), other.Nodes[0].Env...), scenario.EnvVar{Name: "X", Value: "1"})
	_, err = cluster.Run(context.Background(), &other, tools, cluster.Options{RunDir: filepath.Join(t.TempDir(), "other"), Store: st.Dir(), From: second.ID})
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "node-1 image") {
		t.Fatalf("restore into other images: %v, want an InfraError naming node-1's image", err)
	}
}
