package auditor

// Status is a checker's verdict on a history.
type Status string

const (
	// Passed means the checker proved the history valid under its model.
	Passed Status = "passed"
	// Failed means the checker found at least one concrete anomaly; the
	// result carries the evidence.
	Failed Status = "failed"
	// Unknown means the checker could not decide, most often because its
	// time budget ran out. It is not a soft pass: the run is unchecked.
	Unknown Status = "unknown"
)
