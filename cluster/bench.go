package cluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/snapshot"
	"github.com/detvm/detvm/vmm"
)

// SnapshotBench is what `detvm bench snapshot` measures, all in one run of
// the benchmark so that ratios compare like with like on a noisy machine.
type SnapshotBench struct {
	Scenario  string         `json:"scenario"`
	Guests    int            `json:"guests"`
	MemoryMiB int            `json:"memory_mib"`
	ColdBoot  int64          `json:"cold_boot_wall_ms"`
	WarmStart int64          `json:"warm_start_wall_ms"`
	Snapshots []SnapshotInfo `json:"snapshots"`
	Restores  []int64        `json:"restore_wall_ms"`
	// StoreBytes is the store's size on disk after all the snapshots;
	// FirstBytes what the first snapshot alone added.
	StoreBytes int64 `json:"store_disk_bytes"`
	FirstBytes int64 `json:"first_snapshot_bytes"`
	// One guest saved with a plain QMP migrate to a file (stream format),
	// with QEMU's default bandwidth cap and with it lifted; and loaded.
	PlainSaveMS     int64 `json:"plain_migrate_one_vm_ms"`
	PlainSaveFastMS int64 `json:"plain_migrate_one_vm_uncapped_ms"`
	PlainFileBytes  int64 `json:"plain_migrate_file_bytes"`
	OneLoadMS       int64 `json:"load_one_vm_ms"`
}

// BenchSnapshots runs s with a snapshot every `every` of virtual time and
// measures saves, the store, restores, warm start against cold boot, and
// a plain migrate of one of its guests, under dir.
func BenchSnapshots(ctx context.Context, s *scenario.Scenario, tools Tools, dir string, every time.Duration, restores int, log io.Writer) (*SnapshotBench, error) {
	logf := func(format string, args ...any) {
		if log != nil {
			fmt.Fprintf(log, "bench: "+format+"\n", args...)
		}
	}
	if err := s.Complete(); err != nil {
		return nil, err
	}
	b := &SnapshotBench{Scenario: s.Name, Guests: len(s.Guests()), MemoryMiB: s.Guests()[0].Memory}
	// Boot alone: the same cluster for 20 ms of virtual time.
	short := *s
	short.Duration = 20 * time.Millisecond
	cold, err := Run(ctx, &short, tools, Options{Seed: 1, RunDir: filepath.Join(dir, "cold"), Cold: true})
	if err != nil {
		return nil, err
	}
	b.ColdBoot = cold.BootWallMS
	logf("cold boot %d ms", b.ColdBoot)
	for i := 0; i < 2; i++ { // the first may have to save the warm start
		warm, err := Run(ctx, &short, tools, Options{Seed: 1, RunDir: filepath.Join(dir, fmt.Sprintf("warm%d", i))})
		if err != nil {
			return nil, err
		}
		if warm.WarmStart {
			b.WarmStart = warm.BootWallMS
		}
	}
	logf("warm start %d ms", b.WarmStart)
	runDir := filepath.Join(dir, "snap")
	res, err := Run(ctx, s, tools, Options{Seed: 1, RunDir: runDir, SnapshotEvery: every, Log: log})
	if err != nil {
		return nil, err
	}
	b.Snapshots = res.Snapshots
	if len(b.Snapshots) == 0 {
		return nil, fmt.Errorf("bench: the run ended before its first snapshot; use a smaller interval")
	}
	b.FirstBytes = b.Snapshots[0].NewBytes
	storeDir := filepath.Join(runDir, "snapshots")
	st, err := snapshot.Open(storeDir)
	if err != nil {
		return nil, err
	}
	if b.StoreBytes, err = st.DiskBytes(); err != nil {
		return nil, err
	}
	mid := b.Snapshots[len(b.Snapshots)/2]
	for i := 0; i < restores; i++ {
		cont := *s
		cont.Duration = time.Duration(mid.VirtualNS) + 5*s.Epoch
		r, err := Run(ctx, &cont, tools, Options{RunDir: filepath.Join(dir, fmt.Sprintf("restore%d", i)), Store: storeDir, From: mid.ID})
		if err != nil {
			return nil, err
		}
		b.Restores = append(b.Restores, r.RestoreMS)
	}
	logf("restores %v ms", b.Restores)
	if err := b.plain(ctx, s, tools, st, mid.ID, filepath.Join(dir, "plain")); err != nil {
		return nil, err
	}
	return b, nil
}

// plain loads the first guest of a snapshot alone and saves it with a
// plain migrate, twice (capped, uncapped).
func (b *SnapshotBench) plain(ctx context.Context, s *scenario.Scenario, tools Tools, st *snapshot.Store, id, dir string) error {
	r := &runner{s: s, tools: tools, opt: Options{RunDir: dir}, logf: func(string, ...any) {}}
	defer r.close()
	if err := r.prepare(); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(scratch(dir, r.guestBytes()), "detvm-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	paths, err := st.Materialize(id, tmp)
	if err != nil {
		return err
	}
	n := r.nodes[0]
	var file string
	for _, p := range paths {
		if filepath.Base(p) == n.spec.Name+".mig" {
			file = p
		}
	}
	for i, bw := range []int64{0, int64(100) << 30} {
		cfg := n.cfg
		cfg.Incoming = true
		m, err := vmm.Start(ctx, cfg)
		if err != nil {
			return err
		}
		t0 := time.Now()
		err = m.Load(ctx, file)
		if i == 0 {
			b.OneLoadMS = time.Since(t0).Milliseconds()
		}
		if err == nil {
			out := filepath.Join(tmp, fmt.Sprintf("plain%d", i))
			t1 := time.Now()
			err = m.SavePlain(ctx, out, bw)
			ms := time.Since(t1).Milliseconds()
			if i == 0 {
				b.PlainSaveMS = ms
				if st, serr := os.Stat(out); serr == nil {
					b.PlainFileBytes = st.Size()
				}
			} else {
				b.PlainSaveFastMS = ms
			}
		}
		m.Kill()
		if err != nil {
			return fmt.Errorf("bench: plain migrate: %w", err)
		}
	}
	return nil
}

// Median of xs (0 for none).
func Median(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
