package replay_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/detvm/detvm/cluster"
	"github.com/detvm/detvm/internal/testenv"
	"github.com/detvm/detvm/replay"
	"github.com/detvm/detvm/scenario"
)

// TestReplay: a portable bundle of a hello run replays to MATCH from a copy
// in another directory; the same bundle with another seed diverges and
// names the epoch and guest; one with another recorded QEMU binary is
// refused before anything runs, naming what differs.
func TestReplay(t *testing.T) {
	tools := testenv.Tools(t)
	path := testenv.Example(t, "hello")
	s, err := scenario.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	opt := cluster.Options{Seed: 1, RunDir: filepath.Join(t.TempDir(), "run")}
	res, err := cluster.Run(context.Background(), s, tools, opt)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := replay.Write(res, path, opt, tools, true)
	if err != nil {
		t.Fatal(err)
	}
	// Elsewhere: only the bundle, copied.
	copyPath := filepath.Join(t.TempDir(), "bug.detvm")
	b, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := replay.Replay(context.Background(), copyPath, tools, replay.Options{RunDir: filepath.Join(t.TempDir(), "replay")})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Match || o.TraceHash != res.TraceHash {
		t.Fatalf("replay of a portable copy: %+v, want MATCH with %s", o, res.TraceHash)
	}

	t.Run("other-seed-diverges", func(t *testing.T) {
		p := rewrite(t, copyPath, func(b *replay.Bundle) { b.Segments[0].Seed = 2 })
		o, err := replay.Replay(context.Background(), p, tools, replay.Options{RunDir: filepath.Join(t.TempDir(), "replay")})
		if err != nil {
			t.Fatal(err)
		}
		if o.Match || o.Guest != "node-1" {
			t.Fatalf("replay with seed 2: %+v, want a divergence in node-1", o)
		}
		t.Logf("diverged at epoch %d: %s; %s", o.Epoch, o.What, o.Event)
	})
	t.Run("other-environment-refused", func(t *testing.T) {
		p := rewrite(t, copyPath, func(b *replay.Bundle) {
			b.Env.QEMUSHA256 = strings.Repeat("0", 64)
			b.Env.Plugin = strings.Repeat("1", 64)
		})
		_, err := replay.Replay(context.Background(), p, tools, replay.Options{RunDir: filepath.Join(t.TempDir(), "replay")})
		var ie *cluster.InfraError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), "QEMU binary") || !strings.Contains(err.Error(), "barrier plugin") {
			t.Fatalf("replay with another QEMU: %v, want an InfraError naming the QEMU binary and the plugin", err)
		}
	})
}

// rewrite copies a bundle with bundle.json changed by f.
func rewrite(t *testing.T, path string, f func(*replay.Bundle)) string {
	t.Helper()
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "bundle.json" {
			var b replay.Bundle
			if err := json.Unmarshal(data, &b); err != nil {
				t.Fatal(err)
			}
			f(&b)
			data, _ = json.Marshal(&b)
		}
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	out := filepath.Join(t.TempDir(), "changed.detvm")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}
