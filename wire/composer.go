package wire

// Test is a test in the layout of Antithesis' Test Composer that the agent
// runs (guest/composer, docs/composer.md). The templates are the
// subdirectories of the directories in composer.Roots.
type Test struct {
	// Template is the template to run; "" draws one per run.
	Template string `json:"template,omitempty"`
	// DurationNS ends the driver phase: drivers and anytime commands
	// start only until this much virtual time after the agent's first
	// barrier (the run's epoch 0, the origin of fault times).
	DurationNS uint64 `json:"duration_ns"`
	// Parallelism is the most parallel drivers running at once.
	Parallelism int `json:"parallelism"`
}
