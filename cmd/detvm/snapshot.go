package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/detvm/detvm/snapshot"
)

func snapshotCmd() *cobra.Command {
	var dir string
	snap := &cobra.Command{
		Use:   "snapshot",
		Short: "List, inspect and prune the snapshots of a run",
		Long: "A run with --snapshot-every keeps cluster snapshots in RUNDIR/snapshots, a deduplicating\n" +
			"store of chunks and manifests. --dir takes the run directory or the store itself;\n" +
			"the default is ./snapshots.",
		Example: `  detvm snapshot ls --dir runs/etcd-seed1-20250101-120000.000
  detvm snapshot show 3f2a --dir runs/etcd-seed1-20250101-120000.000`,
	}
	snap.PersistentFlags().StringVar(&dir, "dir", "", "run directory, or snapshot store (default ./snapshots)")

	var lsJSON bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the snapshots in a store, oldest epoch first, and what the store costs on disk",
		Example: `  detvm snapshot ls --dir runs/etcd-seed1-20250101-120000.000
  detvm snapshot ls --dir runs/etcd-seed1-20250101-120000.000/snapshots --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openSnapshotStore(dir)
			if err != nil {
				return err
			}
			return snapshotList(cmd.OutOrStdout(), st, lsJSON)
		},
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, "print a JSON array, one object per snapshot")

	var showJSON bool
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a snapshot's manifest (files, seeds, controller state) and its chain of ancestors",
		Example: `  detvm snapshot show 3f2a --dir runs/etcd-seed1-20250101-120000.000
  detvm snapshot show 3f2a9c0d11223344 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openSnapshotStore(dir)
			if err != nil {
				return err
			}
			return snapshotShow(cmd.OutOrStdout(), st, args[0], showJSON)
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "print one JSON object")

	var force bool
	rm := &cobra.Command{
		Use:   "rm ID",
		Short: "Remove a snapshot's manifest (its chunks go at the next gc)",
		Example: `  detvm snapshot rm 3f2a --dir runs/etcd-seed1-20250101-120000.000
  detvm snapshot rm 3f2a --force   # even though other snapshots name it as parent`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openSnapshotStore(dir)
			if err != nil {
				return err
			}
			m, err := st.Get(args[0])
			var ie *snapshot.IntegrityError
			switch {
			case errors.As(err, &ie):
				// A damaged manifest must stay removable.
				m = &snapshot.Manifest{ID: ie.Snapshot}
			case err != nil:
				return snapshotErr(err)
			}
			if err := st.Remove(m.ID, force); err != nil {
				var ce *snapshot.ChildrenError
				if errors.As(err, &ce) {
					return usagef("snapshot %s is the parent of %s; remove those first, or pass --force (they keep naming it as parent)",
						ce.ID, strings.Join(ce.Children, ", "))
				}
				return snapshotErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s from %s; `detvm snapshot gc` frees its chunks\n", m.ID, st.Dir())
			return nil
		},
	}
	rm.Flags().BoolVar(&force, "force", false, "remove even if other snapshots have it as parent")

	gc := &cobra.Command{
		Use:     "gc",
		Short:   "Delete the chunks no snapshot uses any more",
		Example: "  detvm snapshot gc --dir runs/etcd-seed1-20250101-120000.000",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openSnapshotStore(dir)
			if err != nil {
				return err
			}
			n, freed, err := st.GC()
			if err != nil {
				return err
			}
			disk, err := st.DiskBytes()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "freed %d chunks, %s (%d bytes); the store now uses %s in %s\n",
				n, humanBytes(freed), freed, humanBytes(disk), st.Dir())
			return nil
		},
	}
	snap.AddCommand(ls, show, rm, gc)
	return snap
}

// openSnapshotStore finds the store for --dir: a store directory itself,
// or a run directory whose snapshots/ is one. It never creates a store.
func openSnapshotStore(dir string) (*snapshot.Store, error) {
	isStore := func(d string) bool {
		st, err := os.Stat(filepath.Join(d, "manifests"))
		return err == nil && st.IsDir()
	}
	if dir == "" {
		if isStore("snapshots") {
			return snapshot.Open("snapshots")
		}
		return nil, usagef("no snapshot store here (./snapshots/manifests does not exist); pass --dir RUNDIR, the run directory of a run with --snapshot-every")
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, usagef("--dir %s does not exist; pass a run directory or its snapshots/ directory", dir)
	case err != nil:
		return nil, usagef("--dir %s: %v", dir, err)
	case !st.IsDir():
		return nil, usagef("--dir %s is not a directory; pass a run directory or its snapshots/ directory", dir)
	case isStore(dir):
		return snapshot.Open(dir)
	case isStore(filepath.Join(dir, "snapshots")):
		return snapshot.Open(filepath.Join(dir, "snapshots"))
	}
	return nil, usagef("--dir %s holds no snapshot store (no %s or %s); pass the run directory of a run with --snapshot-every, or its snapshots/ directory",
		dir, filepath.Join(dir, "manifests"), filepath.Join(dir, "snapshots", "manifests"))
}

// snapshotErr makes a named-but-missing or ambiguous snapshot a usage error.
func snapshotErr(err error) error {
	if errors.Is(err, snapshot.ErrNotFound) || errors.Is(err, snapshot.ErrAmbiguous) || errors.Is(err, snapshot.ErrBadID) {
		return usageError{err}
	}
	return err
}

// snapshotEntry is one snapshot in `ls --json`.
type snapshotEntry struct {
	ID        string             `json:"id"`
	Parent    string             `json:"parent"`
	Epoch     uint64             `json:"epoch"`
	VirtualNS uint64             `json:"virtual_ns"`
	Scenario  string             `json:"scenario"`
	Bytes     int64              `json:"bytes"`
	NewBytes  int64              `json:"new_bytes"`
	Segments  []snapshot.Segment `json:"segments"`
	Files     []string           `json:"files"`
	Created   string             `json:"created,omitempty"`
}

func snapshotList(w io.Writer, st *snapshot.Store, asJSON bool) error {
	ms, listErr := st.List()
	if ms == nil && listErr != nil {
		return listErr
	}
	if asJSON {
		out := make([]snapshotEntry, 0, len(ms))
		for _, m := range ms {
			e := snapshotEntry{ID: m.ID, Parent: m.Parent, Epoch: m.Epoch, VirtualNS: m.VirtualNS, Scenario: m.Scenario,
				Bytes: m.Bytes, NewBytes: m.NewBytes, Segments: m.Segments, Files: []string{}, Created: m.Created}
			if e.Segments == nil {
				e.Segments = []snapshot.Segment{}
			}
			for _, f := range m.Files {
				e.Files = append(e.Files, f.Name)
			}
			out = append(out, e)
		}
		if err := writeJSON(w, out); err != nil {
			return err
		}
		return listErr
	}
	var logical int64
	if len(ms) == 0 {
		fmt.Fprintf(w, "no snapshots in %s\n", st.Dir())
	} else {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPARENT\tEPOCH\tVIRTUAL\tSIZE\tNEW\tSEGMENTS")
		for _, m := range ms {
			parent := m.Parent
			if parent == "" {
				parent = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f\t%s\t%s\t%s\n", m.ID, parent, m.Epoch, float64(m.VirtualNS)/1e9,
				humanBytes(m.Bytes), humanBytes(m.NewBytes), formatSegments(m.Segments))
			logical += m.Bytes
		}
		tw.Flush()
	}
	disk, err := st.DiskBytes()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "disk: %s for %d snapshot(s) of %s in %s\n", humanBytes(disk), len(ms), humanBytes(logical), st.Dir())
	return listErr
}

// formatSegments writes segments as from_epoch:seed pairs, "0:1,500:9".
func formatSegments(segs []snapshot.Segment) string {
	if len(segs) == 0 {
		return "-"
	}
	parts := make([]string, len(segs))
	for i, s := range segs {
		parts[i] = fmt.Sprintf("%d:%d", s.FromEpoch, s.Seed)
	}
	return strings.Join(parts, ",")
}

// humanBytes writes n in binary units: "512 B", "1.5 KiB", "256.0 MiB".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for q := n / unit; q >= unit || q <= -unit; q /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// snapshotFile is a File of `show`, without its chunk list.
type snapshotFile struct {
	Name          string `json:"name"`
	Size          int64  `json:"size"`
	SHA256        string `json:"sha256"`
	Chunks        int    `json:"chunks"`
	NonZeroChunks int    `json:"nonzero_chunks"`
}

// snapshotDetail is what `show --json` prints: the manifest without chunk
// lists, and the chain of ancestors from the snapshot itself back.
type snapshotDetail struct {
	ID        string             `json:"id"`
	Parent    string             `json:"parent"`
	Chain     []string           `json:"chain"`
	Epoch     uint64             `json:"epoch"`
	VirtualNS uint64             `json:"virtual_ns"`
	Segments  []snapshot.Segment `json:"segments"`
	Scenario  string             `json:"scenario"`
	Kernel    string             `json:"kernel"`
	Images    map[string]string  `json:"images"`
	QEMU      string             `json:"qemu"`
	Files     []snapshotFile     `json:"files"`
	State     json.RawMessage    `json:"state,omitempty"`
	Bytes     int64              `json:"bytes"`
	NewBytes  int64              `json:"new_bytes"`
	Created   string             `json:"created,omitempty"`
}

func snapshotShow(w io.Writer, st *snapshot.Store, id string, asJSON bool) error {
	m, err := st.Get(id)
	if err != nil {
		return snapshotErr(err)
	}
	d := snapshotDetail{ID: m.ID, Parent: m.Parent, Epoch: m.Epoch, VirtualNS: m.VirtualNS, Segments: m.Segments,
		Scenario: m.Scenario, Kernel: m.Kernel, Images: m.Images, QEMU: m.QEMU, State: m.State,
		Bytes: m.Bytes, NewBytes: m.NewBytes, Created: m.Created, Files: []snapshotFile{}}
	for _, f := range m.Files {
		nz := 0
		for _, c := range f.Chunks {
			if c != "" {
				nz++
			}
		}
		d.Files = append(d.Files, snapshotFile{Name: f.Name, Size: f.Size, SHA256: f.SHA256, Chunks: len(f.Chunks), NonZeroChunks: nz})
	}
	// The chain: each ancestor as far as the store has them. A parent
	// removed with --force ends it, marked.
	var chainText []string
	seen := map[string]bool{}
	for cur := m; ; {
		d.Chain = append(d.Chain, cur.ID)
		chainText = append(chainText, cur.ID)
		seen[cur.ID] = true
		if cur.Parent == "" || seen[cur.Parent] {
			break
		}
		p, err := st.Get(cur.Parent)
		if err != nil {
			note := "damaged"
			if errors.Is(err, snapshot.ErrNotFound) {
				note = "removed"
			}
			d.Chain = append(d.Chain, cur.Parent)
			chainText = append(chainText, cur.Parent+" ("+note+")")
			break
		}
		cur = p
	}
	if asJSON {
		return writeJSON(w, d)
	}

	fmt.Fprintf(w, "snapshot  %s\n", m.ID)
	fmt.Fprintf(w, "chain     %s\n", strings.Join(chainText, " ← "))
	fmt.Fprintf(w, "epoch     %d\n", m.Epoch)
	fmt.Fprintf(w, "virtual   %.3f s\n", float64(m.VirtualNS)/1e9)
	fmt.Fprintf(w, "segments  %s (from_epoch:seed)\n", formatSegments(m.Segments))
	fmt.Fprintf(w, "scenario  %s\n", orDash(m.Scenario))
	fmt.Fprintf(w, "kernel    %s\n", orDash(m.Kernel))
	fmt.Fprintf(w, "qemu      %s\n", orDash(m.QEMU))
	if m.Created != "" {
		fmt.Fprintf(w, "created   %s\n", m.Created)
	}
	fmt.Fprintf(w, "size      %s (%d bytes); %s new when stored\n", humanBytes(m.Bytes), m.Bytes, humanBytes(m.NewBytes))
	names := make([]string, 0, len(m.Images))
	for k := range m.Images {
		names = append(names, k)
	}
	sort.Strings(names)
	if len(names) > 0 {
		fmt.Fprintln(w, "images")
		for _, k := range names {
			fmt.Fprintf(w, "  %s  %s\n", k, m.Images[k])
		}
	}
	fmt.Fprintln(w, "files")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, f := range d.Files {
		fmt.Fprintf(tw, "  %s\t%s\tsha256:%s\t%d of %d chunks hold data\n", f.Name, humanBytes(f.Size), f.SHA256, f.NonZeroChunks, f.Chunks)
	}
	tw.Flush()
	if len(m.State) > 0 {
		fmt.Fprintln(w, "state")
		var b bytes.Buffer
		if err := json.Indent(&b, m.State, "  ", "  "); err != nil {
			return err
		}
		fmt.Fprintf(w, "  %s\n", b.String())
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
