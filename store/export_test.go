package store

import (
	"context"
	"time"
)

// Statements whose plans the tests check.
const (
	UnattributedForQuery = unattributedForQuery
	InsertSalesQuery     = insertSalesQuery
)

// Stmt is db.stmt, for the tests of statement renewal.
func (db *DB) Stmt(ctx context.Context, query string) error {
	_, err := db.stmt(ctx, query)
	return err
}

// ExpireStmt makes query's prepared statement due for renewal now.
func (db *DB) ExpireStmt(query string) {
	if v, ok := db.stmts.Load(query); ok {
		v.(*preparedStmt).renewAt = time.Time{}
	}
}

// ForgetStmts empties the statement map, as Close does, leaving the pool open.
func (db *DB) ForgetStmts() {
	db.stmts.Range(func(k, _ any) bool { db.stmts.Delete(k); return true })
}
