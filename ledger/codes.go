package ledger

import (
	"context"
	"encoding/json"

	"github.com/referd/referd/referral"
	"github.com/referd/referd/rewards"
	"github.com/referd/referd/store"
)

// Promotion codes (DESIGN §8). A sale paid with a code (Sale.DiscountCode, from the
// API's discount_code or a provider's discount that named a known code) makes its
// buyer the referral of the code's owner when nobody referred the buyer yet, before
// the sale is recorded, so the sale earns the owner's rewards as any referred sale
// does. A buyer who has a referrer keeps it, and an owner who pays with their own
// code earns nothing. Becoming a referral this way is a sign-up with a referrer: the
// program's signup rewards are granted, once, since only a customer without a
// referrer can get one.

// referByCodes refers the buyers of the sales paid with a code, in tx, with their
// signup rewards and customer.updated events.
func referByCodes(ctx context.Context, tx *store.Tx, sales []*batchedSale) error {
	var bs []store.CodeBuyer
	programs := map[int64]*batchedSale{}
	for _, s := range sales {
		if s.s.DiscountCode == "" {
			continue
		}
		bs = append(bs, store.CodeBuyer{ProgramPK: s.p.PK, ID: s.s.CustomerID, Key: s.s.CustomerKey, Email: s.s.CustomerEmail, Code: s.s.DiscountCode})
		programs[s.p.PK] = s
	}
	refs, err := store.ReferByCodes(ctx, tx, bs)
	if err != nil {
		return err
	}
	now := store.Now()
	for _, r := range refs {
		s := programs[r.ProgramPK]
		earned, err := rewards.ForSignup(s.rules)
		if err != nil {
			return err
		}
		if len(earned) > 0 {
			if err := grantSignup(ctx, tx, s.p, earned, r.Owner, r.Customer, now); err != nil {
				return err
			}
		}
		c, err := store.GetCustomer(ctx, tx, r.ProgramPK, r.Customer.ID, false)
		if err != nil {
			return err
		}
		payload, err := json.Marshal(referral.CustomerJSON(s.p, c))
		if err != nil {
			return err
		}
		if err := store.InsertOutbox(ctx, tx, r.ProgramPK, "customer.updated", string(payload), now); err != nil {
			return err
		}
	}
	return nil
}

// recordCodeUses counts the sales of results paid with a code whose referrer is the
// code's owner as the code's uses; a sale counts once however often it is recorded.
func recordCodeUses(ctx context.Context, tx *store.Tx, sales []*batchedSale, results []batchResult) error {
	var us []store.CodeUse
	for i, s := range sales {
		if s.s.DiscountCode != "" && results[i].err == nil && results[i].t.ReferrerPK.Valid {
			us = append(us, store.CodeUse{ProgramPK: s.p.PK, SaleKey: s.s.Key, Code: s.s.DiscountCode})
		}
	}
	return store.RecordCodeUses(ctx, tx, us)
}
