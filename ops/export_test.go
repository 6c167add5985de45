package ops

// Internals the tests of package ops_test drive directly.
var (
	// ProgressBarAt is ProgressBar with a clock of the test's.
	ProgressBarAt = progressBar
	// PruneArchived deletes archived tasks older than a cutoff of the test's.
	PruneArchived = pruneArchived
)
