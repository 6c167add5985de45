package ledger

import (
	"context"
	"database/sql"
	"slices"
	"sort"
	"time"

	"github.com/referd/referd/money"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/rewards"
	"github.com/referd/referd/store"
)

// One payment, several ids. A billing provider's payment may reach referd keyed by
// different objects: a Stripe invoice, the PaymentIntent that paid it and its charge.
// The sale is recorded under one key (the invoice's); the others are its aliases
// (store.InsertPaymentAlias). Every writer of a key's identity takes its
// store.PaymentLock first, so a link, a sale held until its link could arrive and a
// refund keyed by an alias never miss one another.

// LinkPaymentTx records that the sale keys in aliases are other names of target's
// payment and returns the keys of the sales it folded:
//   - refunds recorded against an alias are moved to target, and applied there when
//     target's sale exists (else they wait for it);
//   - a sale already recorded under an alias (a one-off sale whose link came late) is
//     folded into target: fully reversed, rewards and all, with folded_into naming
//     target, and its purchase number given back, so target's sale is the payment's
//     only one.
//
// Linking again changes nothing. It runs in the caller's transaction, as the
// workers record every effect of a billing event with its outcome.
func LinkPaymentTx(ctx context.Context, tx *store.Tx, p store.Program, target string, aliases []string) (folded []string, err error) {
	aliases = slices.DeleteFunc(slices.Clone(aliases), func(a string) bool { return a == "" || a == target })
	slices.Sort(aliases)
	aliases = slices.Compact(aliases)
	if len(aliases) == 0 {
		return nil, nil
	}
	for _, a := range aliases {
		if err := store.LockKey(ctx, tx, p.PK, store.PaymentLock(a)); err != nil {
			return nil, err
		}
	}
	// The sales' locks in key order, as store.FindBuyers takes them.
	keys := append(slices.Clone(aliases), target)
	slices.Sort(keys)
	for _, k := range keys {
		if err := store.LockKey(ctx, tx, p.PK, store.TransactionLock(k)); err != nil {
			return nil, err
		}
	}
	now := store.Now()
	moved := int64(0)
	for _, a := range aliases {
		// Only an alias's own target is folded into: an alias linked to another
		// invoice before keeps it.
		if t, err := store.InsertPaymentAlias(ctx, tx, p.PK, a, target, now); err != nil {
			return nil, err
		} else if t != target {
			continue
		}
		ok, err := foldSale(ctx, tx, p, a, target, now)
		if err != nil {
			return nil, err
		}
		if ok {
			folded = append(folded, a)
		}
		n, err := store.RetargetRefunds(ctx, tx, p.PK, a, target)
		if err != nil {
			return nil, err
		}
		moved += n
	}
	if moved == 0 {
		return folded, nil
	}
	t, err := store.GetTransaction(ctx, tx, p.PK, target, true)
	if store.IsNotFound(err) {
		return folded, nil // the refunds wait for target's sale
	}
	if err != nil {
		return nil, err
	}
	return folded, applyWaitingRefunds(ctx, tx, p, &t)
}

// foldSale folds the sale key, if recorded and not folded yet, into target: see
// LinkPaymentTx. The caller holds both keys' locks.
func foldSale(ctx context.Context, tx *store.Tx, p store.Program, key, target string, now time.Time) (bool, error) {
	t, err := store.GetTransaction(ctx, tx, p.PK, key, true)
	if store.IsNotFound(err) {
		return false, nil
	}
	if err != nil || t.FoldedInto.Valid {
		return false, err
	}
	t.FoldedInto = sql.NullString{String: target, Valid: true}
	if err := store.SetFoldedInto(ctx, tx, t.PK, target); err != nil {
		return false, err
	}
	// applyRefund locks the referrer's counters, then the buyer's, as sales do.
	if err := applyRefund(ctx, tx, p, &t, sql.NullInt64{}, now); err != nil {
		return false, err
	}
	if err := store.ForgetPurchase(ctx, tx, t.CustomerPK, t.PurchaseNumber); err != nil {
		return false, err
	}
	return true, renumber(ctx, tx, p, target, t)
}

// renumber gives target's sale the purchase number of the sale folded into it, when
// target was recorded after it, by the same buyer: the folded sale was no purchase,
// so target is the purchase it was. It earns what the rules grant that purchase and
// it has not earned yet (a first_purchase reward, one within max_purchases): rules
// that a later purchase meets are met by an earlier one too, so nothing is taken.
func renumber(ctx context.Context, tx *store.Tx, p store.Program, target string, folded store.Transaction) error {
	t, err := store.GetTransaction(ctx, tx, p.PK, target, true)
	if store.IsNotFound(err) {
		return nil // it takes the number when it is recorded
	}
	if err != nil || t.CustomerPK != folded.CustomerPK || t.PurchaseNumber <= folded.PurchaseNumber || t.DeletedAt.Valid || !t.ReferrerPK.Valid {
		return err
	}
	if err := store.ForgetPurchase(ctx, tx, t.CustomerPK, t.PurchaseNumber); err != nil {
		return err
	}
	if err := store.SetPurchaseNumber(ctx, tx, t.PK, folded.PurchaseNumber); err != nil {
		return err
	}
	if !t.Rewardable {
		return nil
	}
	rules, err := referral.ProgramRules(p)
	if err != nil {
		return err
	}
	buyer, err := store.GetCustomer(ctx, tx, p.PK, t.BuyerID, false)
	if err != nil {
		return err
	}
	earned, err := rewards.ForPurchase(rules, rewards.Purchase{Amount: t.Amount, Units: t.Units, Number: folded.PurchaseNumber,
		Subscription: isSubscription(t.Action, t.ProductType.String),
		At:           t.CreatedAt, ReferredAt: buyer.CreatedAt})
	if err != nil {
		return err
	}
	earned = slices.DeleteFunc(earned, func(e rewards.Earned) bool {
		return slices.ContainsFunc(t.Rewards, func(r store.Reward) bool { return r.Rule == e.Rule && r.Recipient == e.Recipient })
	})
	now := store.Now()
	rs := newRewards(p, earned, t.ReferrerPK.Int64, t.CustomerPK, sql.NullInt64{}, t.Key, t.CreatedAt, now)
	sort.SliceStable(rs, func(i, j int) bool { return balanceOrder(&rs[i], &rs[j]) })
	for i := range rs {
		r := &rs[i]
		r.TransactionPK = sql.NullInt64{Int64: t.PK, Valid: true}
		if err := store.InsertReward(ctx, tx, r, rewardPayload(*r)); err != nil {
			return err
		}
		if err := writeRewarded(ctx, tx, *r, t.Referrer, t.Buyer); err != nil {
			return err
		}
		// What target has refunded already reverses its share of the new reward too.
		if d := money.Prorate(r.Amount, t.Refunded, t.Amount); r.Proportional && d > 0 {
			if err := store.ReverseReward(ctx, tx, r, d, now, rewardPayload); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolvePayment is the sale key that key's payment is recorded under: the target key
// is an alias of (LinkPaymentTx), else key itself.
func resolvePayment(ctx context.Context, q store.Querier, p store.Program, key string) (string, error) {
	t, err := store.PaymentAliasTarget(ctx, q, p.PK, key)
	if err != nil || t == "" {
		return key, err
	}
	return t, nil
}

// RefundPaymentTx is RefundTransaction, in the caller's transaction, for a refund
// keyed by any of its payment's ids: an alias's refund refunds its target's sale (and
// waits for it). It returns the sale key it refunded.
func RefundPaymentTx(ctx context.Context, tx *store.Tx, p store.Program, r Refund) (key string, err error) {
	if r.Amount < 0 {
		return "", referral.Invalid("amount", "The refund amount must not be negative.")
	}
	if err := store.LockKey(ctx, tx, p.PK, store.PaymentLock(r.TransactionKey)); err != nil {
		return "", err
	}
	if key, err = resolvePayment(ctx, tx, p, r.TransactionKey); err != nil {
		return "", err
	}
	r.TransactionKey = key
	_, _, err = refundTx(ctx, tx, p, r)
	return key, err
}

// RecordHeldSaleTx records, in the caller's transaction, a sale that was held because
// it might be another payment's (providers.Event.Hold): unless a link has made its key
// an alias meanwhile, in which case nothing is recorded and linked is the target key.
func RecordHeldSaleTx(ctx context.Context, tx *store.Tx, p store.Program, s Sale) (t store.Transaction, linked string, err error) {
	if err := store.LockKey(ctx, tx, p.PK, store.PaymentLock(s.Key)); err != nil {
		return t, "", err
	}
	target, err := store.PaymentAliasTarget(ctx, tx, p.PK, s.Key)
	if err != nil || target != "" {
		return t, target, err
	}
	rs, err := RecordSalesTx(ctx, tx, []SaleRequest{{Program: p, Sale: s}})
	if err != nil {
		return t, "", err
	}
	return rs[0].Transaction, "", rs[0].Err
}
