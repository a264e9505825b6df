package cluster

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/detvm/detvm/auditor/properties"
	"github.com/detvm/detvm/wire"
	"github.com/detvm/detvm/workload/sdk"
)

// The controller's side of the SDK (docs/sdk.md). Every KindSDK event is
// recorded like any other event, and also:
//
//   - a history op is appended to the run's history.jsonl, one line per
//     op, in collection order (epoch, then node order, then order in the
//     page), so the file is a function of the run;
//   - an assertion is fed to the properties Aggregator, whose verdicts
//     follow the exit verdicts in Result.Verdicts;
//   - the first setup_complete sets Result.SetupCompleteEpoch.
//
// The same order decides every "first": which failure is a property's
// first, which setup_complete counts.

// The run's history is HistoryFile (check.go) in the run directory.

// maxPropWarnings bounds the bad-message warnings kept in a Result.
const maxPropWarnings = 20

// FirstFailure is where a verdict's property first failed: the barrier at
// which the controller saw it, and the controller's virtual time then.
type FirstFailure struct {
	Epoch     uint64 `json:"epoch"`
	VirtualNS uint64 `json:"virtual_ns"`
	Node      string `json:"node"`
	Proc      string `json:"proc,omitempty"`
	Message   string `json:"message"`
}

// propsSink takes a run's SDK messages and process exits. All methods
// accept a nil receiver and then do nothing.
type propsSink struct {
	epochNS uint64
	agg     properties.Aggregator
	histF   *os.File
	hist    *bufio.Writer

	setupEpoch uint64
	setupSeen  bool
	exitAt     map[string]uint64 // "node/proc" → epoch its latest exit was seen
	warnings   []string          // bad messages, at most maxPropWarnings
	bad        int               // bad messages in all
}

func newPropsSink(runDir string, epochNS uint64) (*propsSink, error) {
	f, err := os.Create(filepath.Join(runDir, HistoryFile))
	if err != nil {
		return nil, err
	}
	return &propsSink{epochNS: epochNS, histF: f, hist: bufio.NewWriter(f), exitAt: map[string]uint64{}}, nil
}

// observe takes one KindSDK event of node, collected at epoch, and returns
// the text output.log shows for it.
func (p *propsSink) observe(node string, epoch uint64, e wire.Event) string {
	m, err := sdk.Parse(e.Data)
	if p == nil {
		return sdkText(m, err, e.Data)
	}
	if err != nil {
		p.bad++
		if len(p.warnings) < maxPropWarnings {
			who := node
			if e.Proc != "" {
				who += "/" + e.Proc
			}
			p.warnings = append(p.warnings, fmt.Sprintf("epoch %d, %s: bad SDK message: %v: %.200q", epoch, who, err, e.Data))
		}
		return sdkText(m, err, e.Data)
	}
	switch m.Type {
	case sdk.TypeHistory:
		var b bytes.Buffer
		if json.Compact(&b, m.Op) == nil { // Parse checked it
			b.WriteByte('\n')
			p.hist.Write(b.Bytes())
		}
	case sdk.TypeSetupComplete:
		if !p.setupSeen {
			p.setupSeen, p.setupEpoch = true, epoch
		}
	case sdk.TypeAssert:
		// Parsed above, so Observe cannot fail.
		_ = p.agg.Observe(properties.Obs{Epoch: epoch, VirtualNS: epoch * p.epochNS, Node: node, Proc: e.Proc, Msg: e.Data})
	}
	return sdkText(m, nil, e.Data)
}

// sdkText is an SDK message as output.log shows it, e.g.
// `always "x ok" true {"n":1}`.
func sdkText(m *sdk.Message, err error, raw []byte) string {
	if err != nil {
		return fmt.Sprintf("bad message (%v): %s", err, bytes.TrimSpace(raw))
	}
	details := ""
	if len(m.Details) > 0 {
		var b bytes.Buffer
		if json.Compact(&b, m.Details) == nil {
			details = " " + b.String()
		}
	}
	switch m.Type {
	case sdk.TypeAssert:
		if !m.Evaluated() {
			return fmt.Sprintf("%s %s declared", m.Assert, strconv.Quote(m.Message))
		}
		return fmt.Sprintf("%s %s %v%s", m.Assert, strconv.Quote(m.Message), *m.Condition, details)
	case sdk.TypeSetupComplete:
		return "setup_complete" + details
	case sdk.TypeHistory:
		var b bytes.Buffer
		_ = json.Compact(&b, m.Op)
		return "history " + b.String()
	case sdk.TypeGuidance:
		return fmt.Sprintf("guidance %s %s", strconv.Quote(m.Name), strconv.FormatFloat(*m.Value, 'g', -1, 64))
	}
	return string(bytes.TrimSpace(raw))
}

// exited records that node's process proc's exit was seen at epoch;
// started forgets it (the process runs again).
func (p *propsSink) exited(node, proc string, epoch uint64) {
	if p != nil {
		p.exitAt[node+"/"+proc] = epoch
	}
}

func (p *propsSink) started(node, proc string) {
	if p != nil {
		delete(p.exitAt, node+"/"+proc)
	}
}

// exitFailure is the FirstFailure of a failed exit verdict: where the exit
// was seen. nil if it was not seen.
func (p *propsSink) exitFailure(node, proc, message string) *FirstFailure {
	if p == nil {
		return nil
	}
	at, ok := p.exitAt[node+"/"+proc]
	if !ok {
		return nil
	}
	return &FirstFailure{Epoch: at, VirtualNS: at * p.epochNS, Node: node, Proc: proc, Message: message}
}

// verdicts appends the SDK properties' verdicts, sorted by property, to
// res, and what res should say besides.
func (p *propsSink) verdicts(res *Result) {
	if p == nil {
		return
	}
	for _, v := range p.agg.Verdicts() {
		cv := Verdict{Property: v.Property, Kind: v.Kind, Status: string(v.Status), Message: v.Message}
		if f := v.FirstFailure; f != nil {
			cv.FirstFailure = &FirstFailure{Epoch: f.Epoch, VirtualNS: f.VirtualNS, Node: f.Node, Proc: f.Proc, Message: f.Message}
		}
		res.Verdicts = append(res.Verdicts, cv)
	}
	res.SetupCompleteEpoch = p.setupEpoch
	res.PropertyWarnings = append(p.agg.Warnings(), p.warnings...)
	if p.bad > len(p.warnings) {
		res.PropertyWarnings = append(res.PropertyWarnings, fmt.Sprintf("%d more bad SDK messages (see the nodes' output.log)", p.bad-len(p.warnings)))
	}
}

// flush writes the history out.
func (p *propsSink) flush() error {
	if p == nil {
		return nil
	}
	return p.hist.Flush()
}

func (p *propsSink) close() {
	if p != nil && p.histF != nil {
		p.hist.Flush()
		p.histF.Close()
		p.histF = nil
	}
}

// propsState is the sink's part of a snapshot: a run continued from it
// has the verdicts, first failures and history of the whole run.
type propsState struct {
	Agg        json.RawMessage   `json:"aggregator"`
	SetupEpoch uint64            `json:"setup_complete_epoch,omitempty"`
	SetupSeen  bool              `json:"setup_complete_seen,omitempty"`
	ExitAt     map[string]uint64 `json:"exit_at,omitempty"`
	Warnings   []string          `json:"warnings,omitempty"`
	Bad        int               `json:"bad,omitempty"`
	// History is history.jsonl so far. It grows with the run; a snapshot
	// stores it whole (fine for thousands of ops, not for millions).
	History string `json:"history,omitempty"`
}

func (p *propsSink) state() (*propsState, error) {
	if p == nil {
		return nil, nil
	}
	if err := p.flush(); err != nil {
		return nil, err
	}
	hist, err := os.ReadFile(p.histF.Name())
	if err != nil {
		return nil, err
	}
	agg, err := json.Marshal(&p.agg)
	if err != nil {
		return nil, err
	}
	exitAt := make(map[string]uint64, len(p.exitAt))
	for k, v := range p.exitAt {
		exitAt[k] = v
	}
	return &propsState{Agg: agg, SetupEpoch: p.setupEpoch, SetupSeen: p.setupSeen, ExitAt: exitAt,
		Warnings: append([]string(nil), p.warnings...), Bad: p.bad, History: string(hist)}, nil
}

// restore makes the sink continue from st (nil: from nothing).
func (p *propsSink) restore(st *propsState) error {
	if p == nil {
		return nil
	}
	p.agg = properties.Aggregator{}
	p.setupEpoch, p.setupSeen, p.warnings, p.bad = 0, false, nil, 0
	p.exitAt = map[string]uint64{}
	if err := p.histF.Truncate(0); err != nil {
		return err
	}
	if _, err := p.histF.Seek(0, 0); err != nil {
		return err
	}
	p.hist.Reset(p.histF)
	if st == nil {
		return nil
	}
	if len(st.Agg) > 0 {
		if err := json.Unmarshal(st.Agg, &p.agg); err != nil {
			return fmt.Errorf("properties: %w", err)
		}
	}
	p.setupEpoch, p.setupSeen, p.warnings, p.bad = st.SetupEpoch, st.SetupSeen, st.Warnings, st.Bad
	for k, v := range st.ExitAt {
		p.exitAt[k] = v
	}
	_, err := p.hist.WriteString(st.History)
	return err
}
