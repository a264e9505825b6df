package loadgen

import (
	"io"

	"github.com/detvm/detvm/workload/sdk"
)

// The SDK is the guest's side of detvm: the run's randomness, the history
// channel and properties. Outside detvm it falls back to the process's own
// randomness and stderr, so a workload runs (and its tests pass) anywhere.

// kernelSource is a rand.Source that reads the kernel's RNG at every draw.
type kernelSource struct{}

func (kernelSource) Uint64() uint64 { return sdk.Random() }

func sdkHistory() io.Writer { return sdk.HistoryWriter() }

// report sends the summary as properties: a load under which nothing
// succeeds, or most things fail, is worth a look even when the history is
// valid (a linearizable history of failures proves little).
func report(st Stats) {
	details := map[string]any{"ok": st.OK, "fail": st.Fail, "info": st.Info, "retries": st.Retries, "ok_ratio": st.OKRatio()}
	sdk.Sometimes(st.OK > 0, "a request succeeds", details)
	sdk.Sometimes(st.OKRatio() > 0.5, "most requests succeed", details)
}
