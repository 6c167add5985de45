// Package ledger records what referd's programs owe their customers and why: sales
// (transactions) and the rewards the program's rules grant for them, refunds and the
// rewards they reverse, payments known by several ids (aliases, and sales folded
// into the one they turned out to be), manual credits and debits, balances, the
// approval of held rewards, and the JSON views and outbox events of all of these.
// Single sales arrive together through a Batcher (group commit); the workers record
// a batch of billing events' sales in their own transaction (RecordSalesTx).
//
// It builds on package referral's programs, customers and errors. The rewards of a
// referred customer's sign-up are written here too, for referral.CreateCustomer
// (referral.SignupRewards).
package ledger

import "github.com/referd/referd/referral"

func init() { referral.SignupRewards = grantSignup }
