package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/detvm/detvm/workload/history"
)

func TestAssertMessage(t *testing.T) {
	for _, tc := range []struct {
		kind    string
		cond    bool
		message string
		details any
		want    string
	}{
		{KindAlways, true, "x ok", nil, `{"type":"assert","assert":"always","message":"x ok","condition":true}`},
		{KindSometimes, false, "never true", map[string]int{"n": 3}, `{"type":"assert","assert":"sometimes","message":"never true","condition":false,"details":{"n":3}}`},
		{KindAlwaysOrUnreachable, true, "m", json.RawMessage(" { \"a\" : [1, 2] } "), `{"type":"assert","assert":"always_or_unreachable","message":"m","condition":true,"details":{"a":[1,2]}}`},
		{KindReachable, true, "here", "a string", `{"type":"assert","assert":"reachable","message":"here","condition":true,"details":"a string"}`},
		{KindUnreachable, true, `q"<`, nil, `{"type":"assert","assert":"unreachable","message":"q\"\u003c","condition":true}`},
		{KindAlways, true, "bad details", func() {}, `{"type":"assert","assert":"always","message":"bad details","condition":true,"details":{"detvm_sdk_error":"details: json: unsupported type: func()"}}`},
	} {
		got, err := AssertMessage(tc.kind, tc.cond, tc.message, tc.details)
		if err != nil || string(got) != tc.want {
			t.Errorf("AssertMessage(%s, %v, %q, %v) = %s, %v\nwant %s", tc.kind, tc.cond, tc.message, tc.details, got, err, tc.want)
		}
		if _, err := Parse(got); err != nil {
			t.Errorf("Parse(%s): %v", got, err)
		}
	}
	if _, err := AssertMessage("never", true, "m", nil); err == nil {
		t.Error("unknown kind accepted")
	}
}

func TestAssertMessageTooLong(t *testing.T) {
	big := strings.Repeat("x", MaxMessage)
	b, err := AssertMessage(KindAlways, false, "m", map[string]string{"big": big})
	if err != nil || len(b) > MaxMessage {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
	m, err := Parse(b)
	if err != nil || *m.Condition || m.Message != "m" || !strings.Contains(string(m.Details), "details dropped") {
		t.Fatalf("%s: %v", b, err)
	}
	b, err = AssertMessage(KindAlways, true, big, nil)
	if err != nil || len(b) > MaxMessage {
		t.Fatalf("long message: %d bytes, %v", len(b), err)
	}
}

func TestOtherMessages(t *testing.T) {
	b, _ := SetupCompleteMessage(map[string]int{"members": 3})
	if want := `{"type":"setup_complete","details":{"members":3}}`; string(b) != want {
		t.Errorf("setup: %s", b)
	}
	b, _ = SetupCompleteMessage(nil)
	if want := `{"type":"setup_complete"}`; string(b) != want {
		t.Errorf("setup: %s", b)
	}
	b, _ = GuidanceMessage("depth", 0)
	if want := `{"type":"guidance","name":"depth","value":0}`; string(b) != want {
		t.Errorf("guidance: %s", b)
	}
	if _, err := GuidanceMessage("depth", math.NaN()); err == nil {
		t.Error("NaN accepted")
	}
	b, err := HistoryMessage([]byte(" {\"index\": 0,\"type\":\"invoke\"}\n"))
	if want := `{"type":"history","op":{"index":0,"type":"invoke"}}`; string(b) != want || err != nil {
		t.Errorf("history: %s %v", b, err)
	}
	for _, bad := range []string{"[1]", "{", "", `{"value":"` + strings.Repeat("x", MaxMessage) + `"}`} {
		if _, err := HistoryMessage([]byte(bad)); err == nil {
			t.Errorf("history op %.20q accepted", bad)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{`{"type":"assert","assert":"always","message":"m","condition":false}`, ""},
		{`{"type":"assert","assert":"reachable","message":"m"}`, ""},
		{`{"type":"assert","assert":"always","message":"m","hit":false}`, ""},
		{`{"type":"assert","assert":"always","message":"m","future":1,"condition":true}`, ""},
		{`{"type":"setup_complete"}`, ""},
		{`{"type":"history","op":{"index":1}}`, ""},
		{`{"type":"guidance","name":"g","value":-1.5}`, ""},
		{`{"type":"assert","assert":"always","message":"m"}`, "no condition"},
		{`{"type":"assert","assert":"never","message":"m","condition":true}`, `assert "never"`},
		{`{"type":"assert","assert":"always","condition":"yes"}`, "cannot unmarshal"},
		{`{"type":"history","op":[1]}`, "op is not a JSON object"},
		{`{"type":"guidance","name":"g"}`, "needs a name"},
		{`{"type":"what"}`, `unknown type "what"`},
		{`{}`, `no "type"`},
		{`[]`, "not a JSON object"},
		{`{"type":"assert"`, "not a JSON object"},
	} {
		m, err := Parse([]byte(tc.in))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("Parse(%s): %v", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Parse(%s) = %v, want error with %q", tc.in, err, tc.err)
		case err == nil && m.Type == TypeAssert && m.Evaluated() && m.Condition == nil:
			t.Errorf("Parse(%s): evaluated assertion without a condition", tc.in)
		}
	}
}

func TestParseCLI(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // the message, "history", "random", "help", or "usage: ..." for a usage error
	}{
		{[]string{"always", "true", "x ok"}, `{"type":"assert","assert":"always","message":"x ok","condition":true}`},
		{[]string{"always", "1", "x ok", `{"n":1}`}, `{"type":"assert","assert":"always","message":"x ok","condition":true,"details":{"n":1}}`},
		{[]string{"sometimes", "false", "never true"}, `{"type":"assert","assert":"sometimes","message":"never true","condition":false}`},
		{[]string{"sometimes", "0", "never true", "not json"}, `{"type":"assert","assert":"sometimes","message":"never true","condition":false,"details":"not json"}`},
		{[]string{"always-or-unreachable", "false", "m"}, `{"type":"assert","assert":"always_or_unreachable","message":"m","condition":false}`},
		{[]string{"always_or_unreachable", "true", "m"}, `{"type":"assert","assert":"always_or_unreachable","message":"m","condition":true}`},
		{[]string{"reachable", "here"}, `{"type":"assert","assert":"reachable","message":"here","condition":true}`},
		{[]string{"unreachable", "there", "[1,2]"}, `{"type":"assert","assert":"unreachable","message":"there","condition":true,"details":[1,2]}`},
		{[]string{"setup-complete"}, `{"type":"setup_complete"}`},
		{[]string{"setup-complete", `{"members":3}`}, `{"type":"setup_complete","details":{"members":3}}`},
		{[]string{"guidance", "depth", "2.5"}, `{"type":"guidance","name":"depth","value":2.5}`},
		{[]string{"send", `{"type":"x"}`}, `{"type":"x"}`},
		{[]string{"history"}, "history"},
		{[]string{"random"}, "random"},
		{[]string{"--help"}, "help"},
		{nil, "usage: no command"},
		{[]string{"always", "yes", "m"}, `usage: always: condition "yes"`},
		{[]string{"always", "true"}, "usage: always: usage: detvm-sdk always COND MESSAGE [DETAILS]"},
		{[]string{"always", "true", "m", "{}", "extra"}, "usage: always: usage"},
		{[]string{"reachable"}, "usage: reachable: usage: detvm-sdk reachable MESSAGE [DETAILS]"},
		{[]string{"setup-complete", "a", "b"}, "usage: setup-complete: usage"},
		{[]string{"guidance", "depth", "lots"}, `usage: guidance: "lots" is not a number`},
		{[]string{"guidance", "depth", "NaN"}, `usage: sdk: guidance "depth"`},
		{[]string{"send", "[]"}, "usage: send: the message must be one JSON object"},
		{[]string{"history", "file"}, "usage: history: usage"},
		{[]string{"never"}, `usage: unknown command "never"`},
	} {
		c, err := parseCLI(tc.args)
		var got string
		var ue usageErr
		switch {
		case errors.As(err, &ue):
			got = "usage: " + ue.Error()
		case err != nil:
			got = "error: " + err.Error()
		case c.history:
			got = "history"
		case c.random:
			got = "random"
		case c.help:
			got = "help"
		default:
			got = string(c.msg)
		}
		if !strings.HasPrefix(got, tc.want) || (!strings.HasPrefix(tc.want, "usage") && got != tc.want) {
			t.Errorf("detvm-sdk %q:\n got %s\nwant %s", tc.args, got, tc.want)
		}
	}
}

// fakeTransport records what is sent and replies as the agent would.
type fakeTransport struct {
	sent  []string
	reply string
	err   error
}

func (f *fakeTransport) send(b []byte) (string, error) {
	f.sent = append(f.sent, string(b))
	return f.reply, f.err
}

func TestCLIExitCodes(t *testing.T) {
	ft := &fakeTransport{reply: "bad message: no"}
	var out, errOut bytes.Buffer
	s := &sender{t: ft, out: &errOut}
	get := func() *sender { return s }
	if code := cli([]string{"always", "false", "m"}, nil, &out, &errOut, get); code != 0 {
		t.Errorf("exit %d", code)
	}
	if len(ft.sent) != 1 || !strings.Contains(errOut.String(), "detvm-sdk: agent: bad message: no") {
		t.Errorf("sent %q, stderr %q", ft.sent, errOut.String())
	}
	errOut.Reset()
	if code := cli([]string{"always", "maybe", "m"}, nil, &out, &errOut, get); code != 2 || !strings.Contains(errOut.String(), "usage: detvm-sdk COMMAND") {
		t.Errorf("usage error: exit %d, stderr %q", code, errOut.String())
	}
	// The transport failing is not the script's problem.
	ft.err = errors.New("connection refused")
	errOut.Reset()
	if code := cli([]string{"reachable", "here"}, nil, &out, &errOut, get); code != 0 {
		t.Errorf("exit %d", code)
	}
	if want := `detvm-sdk: {"type":"assert","assert":"reachable","message":"here","condition":true}`; !strings.Contains(errOut.String(), want) {
		t.Errorf("fallback stderr %q lacks %s", errOut.String(), want)
	}
	// history: one message per op line; a bad line is reported and skipped.
	ft.err, ft.reply, ft.sent = nil, "ok", nil
	errOut.Reset()
	in := strings.NewReader("{\"index\":0,\"type\":\"invoke\"}\n\nnot json\n{\"index\":1,\"type\":\"ok\"}")
	if code := cli([]string{"history"}, in, &out, &errOut, get); code != 0 {
		t.Errorf("history exit %d", code)
	}
	want := []string{`{"type":"history","op":{"index":0,"type":"invoke"}}`, `{"type":"history","op":{"index":1,"type":"ok"}}`}
	if strings.Join(ft.sent, "\n") != strings.Join(want, "\n") || !strings.Contains(errOut.String(), "history line 3") {
		t.Errorf("history sent %q, stderr %q", ft.sent, errOut.String())
	}
}

func TestHistoryWriterWithRecorder(t *testing.T) {
	ft := &fakeTransport{reply: "ok"}
	s := &sender{t: ft, out: &bytes.Buffer{}}
	w := &historyWriter{s: s}
	now := int64(0)
	rec := history.NewRecorder(w, func() int64 { now += 100; return now })
	op, err := rec.Invoke(0, history.FWrite, "x", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Ok(op, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"type":"history","op":{"index":0,"type":"invoke","process":0,"f":"write","key":"x","value":1,"time":100}}`,
		`{"type":"history","op":{"index":1,"type":"ok","process":0,"f":"write","key":"x","value":1,"time":200}}`,
	}
	if strings.Join(ft.sent, "\n") != strings.Join(want, "\n") {
		t.Errorf("sent:\n%s\nwant:\n%s", strings.Join(ft.sent, "\n"), strings.Join(want, "\n"))
	}
	// Lines split across writes, several lines in one write.
	ft.sent = nil
	for _, p := range []string{`{"a":`, "1}\n{\"b\":2}\n{\"c\"", ":3}\n"} {
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if len(ft.sent) != 3 || ft.sent[2] != `{"type":"history","op":{"c":3}}` {
		t.Errorf("sent %q", ft.sent)
	}
	if _, err := w.Write([]byte("oops\n")); err == nil {
		t.Error("a line that is not JSON was accepted")
	}
}

func TestStderrWithoutDetvm(t *testing.T) {
	var errOut bytes.Buffer
	s := &sender{out: &errOut}
	s.send(mustAssert(t, KindSometimes, false, "m"), nil)
	s.send(nil, errors.New("sdk: nope"))
	want := "detvm-sdk: {\"type\":\"assert\",\"assert\":\"sometimes\",\"message\":\"m\",\"condition\":false}\ndetvm-sdk: error: sdk: nope\n"
	if errOut.String() != want {
		t.Errorf("stderr %q, want %q", errOut.String(), want)
	}
}

func mustAssert(t *testing.T, kind string, cond bool, msg string) []byte {
	t.Helper()
	b, err := AssertMessage(kind, cond, msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
