package referral

import (
	"context"
	"errors"
	"time"

	"github.com/referd/referd/rewards"
	"github.com/referd/referd/store"
)

// SignupRewards stores the rewards that a referred customer's sign-up earned (earned,
// by the program's rules), with their events, in tx, the transaction that stores the
// customer: CreateCustomer commits both or neither. Rewards are written by package
// ledger, which imports this package and so cannot be imported by it; ledger sets
// SignupRewards when it is loaded. Every binary that creates customers loads it
// (through api, or jobs).
var SignupRewards func(ctx context.Context, tx *store.Tx, p store.Program, earned []rewards.Earned, referrer, referred store.CustomerRef, now time.Time) error

// grantSignup is SignupRewards. Without package ledger it fails, rather than store a
// referred customer without the rewards the program's rules promise.
func grantSignup(ctx context.Context, tx *store.Tx, p store.Program, earned []rewards.Earned, referrer, referred store.CustomerRef, now time.Time) error {
	if SignupRewards == nil {
		return errors.New("referral: sign-up rewards are written by package ledger, which this binary does not import")
	}
	return SignupRewards(ctx, tx, p, earned, referrer, referred, now)
}
