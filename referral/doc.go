// Package referral is the domain of referd's refer-a-friend programs: programs and
// their settings (reward rules among them), API keys, customers (referrers and
// referred friends) and their referral links, and billing-provider integrations and
// the events they sent. Its functions take a context and plain values, enforce the
// rules, and return typed errors (ValidationError, NotFoundError,
// *store.ConflictError); HTTP is chosen elsewhere.
//
// It also holds what the other domain packages (ledger, dispatch) share: those
// errors, the request field types (Text, Number) and the JSON view helpers (Time,
// NullTime, NullString, Mask, CustomerJSON, RefJSON). What customers earn is package
// ledger's, including the rewards of a referred sign-up, which CreateCustomer writes
// through SignupRewards.
package referral
