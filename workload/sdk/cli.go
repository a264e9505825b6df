package sdk

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// CLIUsage is the detvm-sdk helper's help text.
const CLIUsage = `usage: detvm-sdk COMMAND ARGS...

Send a message to detvm (docs/sdk.md). Exits 0 whatever happens to the
message, 2 on a usage error, so that a script cannot be broken by the SDK.

  detvm-sdk always COND MESSAGE [DETAILS]                 COND: true, false, 1 or 0
  detvm-sdk always-or-unreachable COND MESSAGE [DETAILS]
  detvm-sdk sometimes COND MESSAGE [DETAILS]
  detvm-sdk reachable MESSAGE [DETAILS]
  detvm-sdk unreachable MESSAGE [DETAILS]
  detvm-sdk setup-complete [DETAILS]
  detvm-sdk guidance NAME NUMBER
  detvm-sdk send JSON                                     one raw message, a JSON object
  detvm-sdk history < FILE                                one history op (JSON object) per line
  detvm-sdk random                                        print a random uint64 (deterministic in detvm)

DETAILS is JSON (anything else is sent as a JSON string).

examples:
  detvm-sdk always "$([ "$n" -ge 0 ] && echo true || echo false)" "counter never negative" "{\"n\":$n}"
  detvm-sdk sometimes "$ok" "a leader was elected"
  detvm-sdk reachable "recovery path taken"
`

// cliCmd is a parsed detvm-sdk command line.
type cliCmd struct {
	msg     []byte // the message to send, if one
	history bool   // read ops from stdin
	random  bool
	help    bool
}

type usageErr struct{ error }

func usagef(format string, args ...any) error { return usageErr{fmt.Errorf(format, args...)} }

// parseCLI turns detvm-sdk's arguments into what to do.
func parseCLI(args []string) (cliCmd, error) {
	if len(args) == 0 {
		return cliCmd{}, usagef("no command")
	}
	cmd, rest := args[0], args[1:]
	want := func(min, max int, form string) error {
		if len(rest) < min || len(rest) > max {
			return usagef("%s: usage: detvm-sdk %s %s", cmd, cmd, form)
		}
		return nil
	}
	switch cmd {
	case "help", "-h", "--help":
		return cliCmd{help: true}, nil
	case "always", "always-or-unreachable", "always_or_unreachable", "sometimes":
		if err := want(2, 3, "COND MESSAGE [DETAILS]"); err != nil {
			return cliCmd{}, err
		}
		cond, err := parseCond(rest[0])
		if err != nil {
			return cliCmd{}, usagef("%s: %v", cmd, err)
		}
		b, err := AssertMessage(strings.ReplaceAll(cmd, "-", "_"), cond, rest[1], cliDetails(rest[2:]))
		return cliCmd{msg: b}, err
	case "reachable", "unreachable":
		if err := want(1, 2, "MESSAGE [DETAILS]"); err != nil {
			return cliCmd{}, err
		}
		b, err := AssertMessage(cmd, true, rest[0], cliDetails(rest[1:]))
		return cliCmd{msg: b}, err
	case "setup-complete", "setup_complete":
		if err := want(0, 1, "[DETAILS]"); err != nil {
			return cliCmd{}, err
		}
		b, err := SetupCompleteMessage(cliDetails(rest))
		return cliCmd{msg: b}, err
	case "guidance":
		if err := want(2, 2, "NAME NUMBER"); err != nil {
			return cliCmd{}, err
		}
		v, err := strconv.ParseFloat(rest[1], 64)
		if err != nil {
			return cliCmd{}, usagef("guidance: %q is not a number", rest[1])
		}
		b, err := GuidanceMessage(rest[0], v)
		if err != nil {
			return cliCmd{}, usageErr{err}
		}
		return cliCmd{msg: b}, nil
	case "send":
		if err := want(1, 1, "JSON"); err != nil {
			return cliCmd{}, err
		}
		if !IsObject([]byte(rest[0])) {
			return cliCmd{}, usagef("send: the message must be one JSON object")
		}
		if len(rest[0]) > MaxMessage {
			return cliCmd{}, usagef("send: the message has %d bytes, more than %d", len(rest[0]), MaxMessage)
		}
		return cliCmd{msg: []byte(rest[0])}, nil
	case "history":
		if err := want(0, 0, "< FILE"); err != nil {
			return cliCmd{}, err
		}
		return cliCmd{history: true}, nil
	case "random":
		if err := want(0, 0, ""); err != nil {
			return cliCmd{}, err
		}
		return cliCmd{random: true}, nil
	}
	return cliCmd{}, usagef("unknown command %q", cmd)
}

func parseCond(s string) (bool, error) {
	switch s {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("condition %q: want true, false, 1 or 0", s)
}

// cliDetails is the optional DETAILS argument: JSON, or else a string.
func cliDetails(rest []string) any {
	if len(rest) == 0 {
		return nil
	}
	if json.Valid([]byte(rest[0])) {
		return json.RawMessage(rest[0])
	}
	return rest[0]
}

// CLI runs the detvm-sdk helper with args (without the program name) and
// returns its exit status: 0, or 2 for a usage error. The agent binary
// runs it when called as detvm-sdk.
func CLI(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli(args, stdin, stdout, stderr, std)
}

func cli(args []string, stdin io.Reader, stdout, stderr io.Writer, s func() *sender) int {
	c, err := parseCLI(args)
	var ue usageErr
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "detvm-sdk: %v\n\n%s", ue.error, CLIUsage)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "detvm-sdk: %v\n", err)
		return 0
	case c.help:
		fmt.Fprint(stdout, CLIUsage)
		return 0
	case c.random:
		fmt.Fprintln(stdout, Random())
		return 0
	case c.history:
		sendHistory(stdin, stderr, s())
		return 0
	}
	if reply := s().send(c.msg, nil); reply != "" && reply != "ok" {
		fmt.Fprintf(stderr, "detvm-sdk: agent: %s\n", reply)
	}
	return 0
}

// sendHistory sends each non-blank line of r as one history op. A bad line
// is reported and skipped; the rest still go.
func sendHistory(r io.Reader, stderr io.Writer, s *sender) {
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(strings.TrimSpace(string(line))) > 0 {
			b, herr := HistoryMessage(line)
			if herr != nil {
				fmt.Fprintf(stderr, "detvm-sdk: history line %d: %v\n", n, herr)
			} else if reply := s.send(b, nil); reply != "" && reply != "ok" {
				fmt.Fprintf(stderr, "detvm-sdk: history line %d: agent: %s\n", n, reply)
			}
		}
		if err != nil {
			if err != io.EOF {
				fmt.Fprintf(stderr, "detvm-sdk: history: %v\n", err)
			}
			return
		}
	}
}
