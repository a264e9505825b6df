// Command detvm is the controller's CLI: it runs scenarios of unmodified
// Linux binaries in deterministic QEMU guests.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/detvm/detvm/cluster"
)

// Exit codes, the same for every command.
const (
	exitOK       = 0
	exitFailed   = 1 // a property failed
	exitUsage    = 2 // bad flags, bad scenario
	exitDiverged = 3 // replay diverged
	exitInfra    = 4 // QEMU missing or crashed, a guest hung
)

// usageError marks errors that are the user's input.
type usageError struct{ error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitError carries an exit code without a message (already printed).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	root := &cobra.Command{
		Use:           "detvm",
		Short:         "Deterministic hypervisor for testing distributed systems",
		Long:          "detvm runs unmodified Linux binaries in QEMU guests whose execution is a function of\nthe scenario and the seed: the same inputs give a bit-identical run.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usagef("%v (see `%s --help`)", err, c.CommandPath())
	})
	root.AddCommand(runCmd(), checkCmd(), replayCmd(), snapshotCmd(), doctorCmd(), imageCmd(), versionCmd(), benchCmd())
	err := root.Execute()
	os.Exit(exitCode(err))
}

func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "detvm: "+err.Error())
	var ue usageError
	var ie *cluster.InfraError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ie):
		return exitInfra
	}
	// Cobra's own argument errors ("accepts 1 arg(s)") are usage errors.
	if isCobraUsage(err) {
		return exitUsage
	}
	return exitInfra
}
