// Package replay writes and replays bug bundles: a run's inputs (scenario,
// seed segments, the snapshot it continued from) with the hashes of
// everything that shapes its execution and its recorded trace, so that the
// run can be re-executed and checked epoch by epoch, here or elsewhere.
//
// A bundle is a tar file (replay.detvm in the run directory):
//
//	bundle.json            what this package's Bundle says
//	scenario.yaml          the scenario file as it was run
//	faults.yaml            the --faults file, if the run was given one
//	trace.log              the run's per-epoch hashes
//	events/NODE.jsonl      each guest's events, to name the first differing one
//	kernel/vmlinux         (portable only) the guest kernel
//	images/NODE.cpio       (portable only) each node's initramfs
package replay

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/detvm/detvm/cluster"
	"github.com/detvm/detvm/snapshot"
	"github.com/detvm/detvm/vmm"
)

// Format names the bundle layout; a reader refuses any other.
const Format = "detvm-replay-1"

// FileName is the bundle's name in a run directory.
const FileName = "replay.detvm"

// Bundle is bundle.json.
type Bundle struct {
	Format    string             `json:"format"`
	Scenario  ScenarioRef        `json:"scenario"`
	Segments  []snapshot.Segment `json:"segments"`
	From      *SnapshotRef       `json:"from_snapshot,omitempty"`
	TraceHash string             `json:"trace_hash"`
	Epochs    uint64             `json:"epochs"`
	Ended     string             `json:"ended"`
	Failed    bool               `json:"failed"`
	Verdicts  []cluster.Verdict  `json:"verdicts"`
	Portable  bool               `json:"portable"`
	Env       Env                `json:"env"`
	// Faults is the --faults the run was given (the scenario's own
	// faults: section travels in scenario.yaml).
	Faults *FaultsRef `json:"faults,omitempty"`
}

// FaultsRef is a fault spec given on the command line: a built-in's name,
// or a file, whose contents the bundle carries as faults.yaml whether or
// not it is portable (it is small, and the original may change).
type FaultsRef struct {
	Builtin string `json:"builtin,omitempty"`
	SHA256  string `json:"sha256,omitempty"` // of faults.yaml
}

// ScenarioRef is the scenario a run used.
type ScenarioRef struct {
	Name   string `json:"name"`
	Path   string `json:"path"` // where it was; a non-portable replay reads it there
	SHA256 string `json:"sha256"`
}

// SnapshotRef is the snapshot a run continued from and its ancestors.
type SnapshotRef struct {
	ID       string   `json:"id"`
	Store    string   `json:"store"`
	Epoch    uint64   `json:"epoch"`
	Ancestry []string `json:"ancestry"` // parent, grandparent, ...
	Branch   *uint64  `json:"branch_seed,omitempty"`
}

// Env is everything outside the scenario and seeds that shapes execution.
// A replay whose environment differs is refused before it starts.
type Env struct {
	QEMUVersion string              `json:"qemu_version"`
	QEMUSHA256  string              `json:"qemu_sha256"`
	Kernel      string              `json:"kernel_sha256"`
	Images      map[string]string   `json:"images"`
	Agent       string              `json:"agent_sha256"`
	Plugin      string              `json:"plugin_source_sha256"`
	Idle        string              `json:"idle"`
	Argv        map[string][]string `json:"qemu_argv"` // per node, paths replaced by $QEMU, $KERNEL, $IMAGE, $PLUGIN, $RUN
}

// Write puts a bundle for the finished run res (of scenario file
// scenarioPath, run with opt) into res.RunDir/replay.detvm. Portable
// bundles carry the kernel and the node images too.
func Write(res *cluster.Result, scenarioPath string, opt cluster.Options, tools cluster.Tools, portable bool) (string, error) {
	b := &Bundle{Format: Format, Segments: res.Segments, TraceHash: res.TraceHash, Epochs: res.Epochs,
		Ended: res.Ended, Failed: res.Failed(), Verdicts: res.Verdicts, Portable: portable}
	yaml, err := os.ReadFile(scenarioPath)
	if err != nil {
		return "", fmt.Errorf("replay bundle: %w", err)
	}
	abs, _ := filepath.Abs(scenarioPath)
	b.Scenario = ScenarioRef{Name: res.Scenario, Path: abs, SHA256: sha(yaml)}
	if b.Env, err = environment(res, tools); err != nil {
		return "", err
	}
	if res.FromSnapshot != "" {
		ref := &SnapshotRef{ID: res.FromSnapshot, Epoch: res.FromEpoch}
		ref.Store, _ = filepath.Abs(opt.Store)
		if opt.Branch {
			seed := opt.BranchSeed
			ref.Branch = &seed
		}
		st, err := snapshot.Open(opt.Store)
		if err != nil {
			return "", err
		}
		for id := res.FromSnapshot; id != ""; {
			m, err := st.Get(id)
			if err != nil {
				return "", fmt.Errorf("replay bundle: ancestry: %w", err)
			}
			if id != res.FromSnapshot {
				ref.Ancestry = append(ref.Ancestry, m.ID)
			}
			id = m.Parent
		}
		b.From = ref
	}
	files := []member{{"scenario.yaml", yaml, ""}, {"trace.log", nil, filepath.Join(res.RunDir, "trace.log")}}
	if opt.Faults != nil {
		name, data := opt.Faults.Source()
		b.Faults = &FaultsRef{Builtin: name}
		if data != nil {
			b.Faults.SHA256 = sha(data)
			files = append(files, member{"faults.yaml", data, ""})
		}
	}
	for _, n := range sortedKeys(res.Images) {
		files = append(files, member{"events/" + n + ".jsonl", nil, filepath.Join(res.RunDir, n, "events.jsonl")})
	}
	if portable {
		nodes := sortedKeys(res.Images)
		files = append(files, member{"kernel/vmlinux", nil, flagValue(res.RunDir, nodes[0], "-kernel")})
		for _, n := range nodes {
			files = append(files, member{"images/" + n + ".cpio", nil, flagValue(res.RunDir, n, "-initrd")})
		}
	}
	js, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return "", err
	}
	out := filepath.Join(res.RunDir, FileName)
	if err := writeTar(out, append([]member{{"bundle.json", append(js, '\n'), ""}}, files...)); err != nil {
		return "", fmt.Errorf("replay bundle %s: %w", out, err)
	}
	return out, nil
}

// environment describes the machine res ran on.
func environment(res *cluster.Result, tools cluster.Tools) (Env, error) {
	e := Env{Kernel: res.Kernel, Images: res.Images, Plugin: vmm.PluginSourceHash(), Idle: res.Idle, Argv: map[string][]string{}}
	var err error
	if e.QEMUVersion, err = cluster.QEMUVersion(res.QEMU); err != nil {
		return e, err
	}
	if e.QEMUSHA256, err = cluster.FileSHA256(res.QEMU); err != nil {
		return e, fmt.Errorf("replay bundle: QEMU: %w", err)
	}
	if e.Agent, err = cluster.FileSHA256(tools.Agent); err != nil {
		return e, fmt.Errorf("replay bundle: agent: %w", err)
	}
	for n := range res.Images {
		argv, err := readArgv(res.RunDir, n)
		if err != nil {
			return e, err
		}
		e.Argv[n] = normalize(argv, res.RunDir)
	}
	return e, nil
}

func readArgv(runDir, node string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(runDir, node, "qemu.argv"))
	if err != nil {
		return nil, fmt.Errorf("replay bundle: %w", err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n"), nil
}

// normalize replaces the paths that legitimately differ between runs and
// machines with names, keeping every flag that shapes execution.
func normalize(argv []string, runDir string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		switch {
		case i == 0:
			a = "$QEMU"
		case i > 0 && argv[i-1] == "-kernel":
			a = "$KERNEL"
		case i > 0 && argv[i-1] == "-initrd":
			a = "$IMAGE"
		case i > 0 && argv[i-1] == "-plugin":
			if _, rest, ok := strings.Cut(a, ","); ok {
				a = "$PLUGIN," + rest
			}
		}
		out[i] = strings.ReplaceAll(a, runDir, "$RUN")
	}
	return out
}

// flagValue is the argument after flag on node's recorded QEMU command line.
func flagValue(runDir, node, flag string) string {
	argv, err := readArgv(runDir, node)
	if err != nil {
		return ""
	}
	for i := 1; i < len(argv); i++ {
		if argv[i-1] == flag {
			return argv[i]
		}
	}
	return ""
}

type member struct {
	name string
	data []byte // or
	path string
}

func writeTar(out string, files []member) error {
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	for _, m := range files {
		data := m.data
		if data == nil {
			if data, err = os.ReadFile(m.path); err != nil {
				f.Close()
				return err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(data)), Format: tar.FormatPAX}); err != nil {
			f.Close()
			return err
		}
		if _, err := tw.Write(data); err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// Peek reads only a bundle's bundle.json (its first member).
func Peek(path string) (*Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	h, err := tr.Next()
	if err != nil || h.Name != "bundle.json" {
		return nil, fmt.Errorf("%s: not a replay bundle (a run's replay.detvm starts with bundle.json)", path)
	}
	var b Bundle
	if err := json.NewDecoder(tr).Decode(&b); err != nil {
		return nil, fmt.Errorf("%s: bundle.json: %w", path, err)
	}
	if b.Format != Format {
		return nil, fmt.Errorf("%s: format %q, this detvm reads %q", path, b.Format, Format)
	}
	return &b, nil
}

// Open reads a bundle and extracts its files into dir.
func Open(path, dir string) (*Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var b *Bundle
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: not a replay bundle: %w", path, err)
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || strings.HasPrefix(name, "..") {
			return nil, fmt.Errorf("%s: member %q escapes the bundle", path, h.Name)
		}
		if name == "bundle.json" {
			b = &Bundle{}
			if err := json.NewDecoder(tr).Decode(b); err != nil {
				return nil, fmt.Errorf("%s: bundle.json: %w", path, err)
			}
			if b.Format != Format {
				return nil, fmt.Errorf("%s: format %q, this detvm reads %q", path, b.Format, Format)
			}
			continue
		}
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		out, err := os.Create(dst)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, h.Name, err)
		}
	}
	if b == nil {
		return nil, fmt.Errorf("%s: not a replay bundle (no bundle.json)", path)
	}
	return b, nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
