package store

// UnattributedForQuery is exported to the tests, which check its plan.
const UnattributedForQuery = unattributedForQuery
