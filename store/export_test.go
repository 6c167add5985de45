package store

// Statements whose plans the tests check.
const (
	UnattributedForQuery = unattributedForQuery
	InsertSalesQuery     = insertSalesQuery
)
