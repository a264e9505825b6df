// Command sdkdemo is the Go side of examples/sdk: a program that uses
// workload/sdk the way a workload would. `make build` builds it static
// (CGO_ENABLED=0) into examples/sdk/sdkdemo/sdkdemo. Outside detvm it runs
// too, and writes its messages to stderr.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/detvm/detvm/workload/history"
	"github.com/detvm/detvm/workload/sdk"
)

func main() {
	start := time.Now()
	// Virtual time in a guest: the same run records the same history.
	now := func() int64 { return int64(time.Since(start)) }

	host, _ := os.Hostname()
	sdk.SetupComplete(map[string]string{"node": host})

	// A register kept in memory, recorded as a Jepsen history: one write,
	// one read. In a real workload the register is the system under test.
	rec := history.NewRecorder(sdk.HistoryWriter(), now)
	var register int64
	w, err := rec.Invoke(0, history.FWrite, "x", 7)
	if err != nil {
		fail(err)
	}
	register = 7
	if _, err := rec.Ok(w, nil); err != nil {
		fail(err)
	}
	r, err := rec.Invoke(0, history.FRead, "x", nil)
	if err != nil {
		fail(err)
	}
	read := register
	if _, err := rec.Ok(r, read); err != nil {
		fail(err)
	}

	sdk.Always(read == 7, "go: a read sees the last write", map[string]int64{"read": read})
	sdk.Sometimes(true, "go: the workload ran", nil)
	sdk.Reachable("go: reached the end", nil)
	sdk.Guidance("go: ops", 2)
	// Deterministic in detvm: a function of the run seed.
	fmt.Printf("random %d\n", sdk.Random())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sdkdemo:", err)
	os.Exit(1)
}
