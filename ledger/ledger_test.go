package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/referd/referd/ledger"
	"github.com/referd/referd/money"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/rewards"
	"github.com/referd/referd/store"
	"github.com/referd/referd/store/storetest"
)

// The model the randomized test keeps beside the database.
type mReward struct {
	customer  int64
	units     string
	amount    int64
	reversed  int64
	prop      bool
	pending   bool
	inBalance bool
}

type mTx struct {
	amount, refunded int64
	rewards          []*mReward
}

type ledgerModel struct {
	txs     map[string]*mTx
	refunds map[string]bool
	avail   map[string]int64 // customer|units
	pend    map[string]int64
}

func bkey(c int64, units string) string { return fmt.Sprintf("%d|%s", c, units) }

func (m *ledgerModel) refund(key, refundKey string, amount int64) {
	t := m.txs[key]
	if t == nil || m.refunds[refundKey] {
		return
	}
	m.refunds[refundKey] = true
	delta := t.amount - t.refunded
	if amount > 0 && amount < delta {
		delta = amount
	}
	if delta <= 0 {
		return
	}
	t.refunded += delta
	for _, r := range t.rewards {
		target := int64(0)
		switch {
		case t.refunded == t.amount:
			target = r.amount
		case r.prop:
			target = money.Prorate(r.amount, t.refunded, t.amount)
		}
		if d := target - r.reversed; d > 0 {
			r.reversed += d
			if r.inBalance {
				if r.pending {
					m.pend[bkey(r.customer, r.units)] -= d
				} else {
					m.avail[bkey(r.customer, r.units)] -= d
				}
			}
		}
	}
}

// Thousands of sales (of referred customers and of customers nobody referred),
// partial and full refunds (some repeated), credits and debits in random order: every
// balance equals the model's, the ledger's sums, and the counters agree with the rows.
func TestLedgerRandomized(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	p, _, err := referral.CreateProgram(ctx, db, "Random", "https://random.test")
	if err != nil {
		t.Fatal(err)
	}
	rulesJSON := `[
		{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "percent"},
		{"recipient": "referrer", "trigger": "first_purchase", "type": "cash", "amount": 2, "amount_type": "fixed"},
		{"recipient": "referred", "trigger": "purchase", "type": "credit", "amount": 5.5, "amount_type": "percent", "hold_days": 3, "max_purchases": 3},
		{"recipient": "referred", "trigger": "first_purchase", "type": "discount", "amount": 15, "amount_type": "percent"}]`
	var patch referral.ProgramPatch
	json.Unmarshal([]byte(`{"rewards": `+rulesJSON+`}`), &patch)
	if p, err = referral.UpdateProgram(ctx, db, p.PK, patch); err != nil {
		t.Fatal(err)
	}
	var rules []rewards.Rule
	dec := json.NewDecoder(strings.NewReader(p.Rewards))
	dec.UseNumber()
	dec.Decode(&rules)

	rng := rand.New(rand.NewSource(1))
	type person struct {
		pk       int64
		key      string
		referrer int64
	}
	var referrers, friends []person
	for i := 0; i < 4; i++ {
		c, err := referral.CreateCustomer(ctx, db, p, referral.CustomerInput{Key: text(fmt.Sprintf("r%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		referrers = append(referrers, person{pk: c.PK, key: c.Key})
	}
	for i := 0; i < 16; i++ {
		r := referrers[i%len(referrers)]
		c, err := referral.CreateCustomer(ctx, db, p, referral.CustomerInput{Key: text(fmt.Sprintf("f%d", i)),
			ReferringCustomer: &referral.CustomerRefInput{Key: text(r.key)}})
		if err != nil {
			t.Fatal(err)
		}
		friends = append(friends, person{pk: c.PK, key: c.Key, referrer: r.pk})
	}
	// Friends of friends: a batch of sales may then hold a buyer who also refers
	// another buyer in it.
	for i := 0; i < 4; i++ {
		r := friends[i]
		c, err := referral.CreateCustomer(ctx, db, p, referral.CustomerInput{Key: text(fmt.Sprintf("g%d", i)),
			ReferringCustomer: &referral.CustomerRefInput{Key: text(r.key)}})
		if err != nil {
			t.Fatal(err)
		}
		friends = append(friends, person{pk: c.PK, key: c.Key, referrer: r.pk})
	}
	// Customers nobody referred buy too (seed 001 reports every purchase), and so do
	// the referrers: their sales earn nothing and count for no referrer.
	var loners []person
	for i := 0; i < 3; i++ {
		c, err := referral.CreateCustomer(ctx, db, p, referral.CustomerInput{Key: text(fmt.Sprintf("u%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		loners = append(loners, person{pk: c.PK, key: c.Key})
	}
	everyone := append(append(append([]person{}, referrers...), friends...), loners...)
	buyerPool := append(append([]person{}, friends...), friends...) // referred buyers twice as often
	buyerPool = append(append(buyerPool, referrers...), loners...)

	m := &ledgerModel{txs: map[string]*mTx{}, refunds: map[string]bool{}, avail: map[string]int64{}, pend: map[string]int64{}}
	purchases := map[int64]int{}
	recorded := map[string]ledger.Sale{} // each sale as it was sent
	var keys []string
	var refundKeys []string
	currencies := []string{"usd", "usd", "usd", "eur", "jpy"}
	const ops = 2500
	for op := 0; op < ops; op++ {
		switch n := rng.Intn(100); {
		case n < 45 || len(keys) == 0: // a sale, or several recorded together
			var sales []ledger.Sale
			var buyers []person
			for j := range 1 + rng.Intn(2)*rng.Intn(7) {
				f := buyerPool[rng.Intn(len(buyerPool))]
				if j > 0 && rng.Intn(4) == 0 {
					f = buyers[rng.Intn(j)] // a buyer twice in one batch
				}
				units := currencies[rng.Intn(len(currencies))]
				sale := ledger.Sale{CustomerKey: f.key, Key: fmt.Sprintf("t%05d-%d", op, j), Amount: int64(rng.Intn(50000) + 1), Units: units}
				if rng.Intn(5) == 0 {
					// An import dated days ago: a hold that has passed is approved at once.
					sale.CreatedAt = time.Now().AddDate(0, 0, -rng.Intn(8)).Add(-time.Hour)
				}
				sale.NotRewardable = rng.Intn(10) == 0
				sales = append(sales, sale)
				buyers = append(buyers, f)
			}
			unique := len(sales)
			if len(sales) > 1 && rng.Intn(3) == 0 {
				sales = append(sales, sales[rng.Intn(len(sales))]) // a key twice: recorded once
				buyers = append(buyers, buyers[0])
			}
			var txs []store.Transaction
			if len(sales) == 1 {
				tx, created, err := ledger.RecordTransaction(ctx, db, p, sales[0])
				if err != nil || !created {
					t.Fatalf("sale %s: %v %v", sales[0].Key, created, err)
				}
				txs = append(txs, tx)
			} else {
				var created int
				txs, created, err = ledger.RecordTransactions(ctx, db, p, sales)
				if err != nil || created != unique || len(txs) != len(sales) {
					t.Fatalf("op %d: %d sales: %d created, %d answered (%v); want %d created", op, len(sales), created, len(txs), err, unique)
				}
			}
			for j, sale := range sales[:unique] {
				f, tx := buyers[j], txs[j]
				if tx.Key != sale.Key || tx.Amount != sale.Amount || tx.Buyer.Key != f.key {
					t.Fatalf("op %d: answered %s by %s for %d; want %s by %s for %d", op, tx.Key, tx.Buyer.Key, tx.Amount, sale.Key, f.key, sale.Amount)
				}
				purchases[f.pk]++
				if tx.PurchaseNumber != purchases[f.pk] {
					t.Fatalf("op %d: sale %s is purchase %d of %s, model %d", op, sale.Key, tx.PurchaseNumber, f.key, purchases[f.pk])
				}
				if (f.referrer == 0) != (tx.Referrer == nil) {
					t.Fatalf("op %d: sale %s of %s has referrer %v, model %d", op, sale.Key, f.key, tx.Referrer, f.referrer)
				}
				var earned []rewards.Earned
				if f.referrer != 0 && !sale.NotRewardable {
					earned, _ = rewards.ForPurchase(rules, rewards.Purchase{Amount: sale.Amount, Units: sale.Units, Number: purchases[f.pk], At: tx.CreatedAt, ReferredAt: tx.CreatedAt})
				}
				mt := &mTx{amount: sale.Amount}
				for _, e := range earned {
					r := &mReward{customer: f.referrer, units: e.Units, amount: e.Amount, prop: e.Proportional,
						pending:   e.HoldDays > 0 && tx.CreatedAt.AddDate(0, 0, e.HoldDays).After(time.Now()),
						inBalance: e.Type != "discount"}
					if e.Recipient == "referred" {
						r.customer = f.pk
					}
					if r.inBalance {
						if r.pending {
							m.pend[bkey(r.customer, r.units)] += r.amount
						} else {
							m.avail[bkey(r.customer, r.units)] += r.amount
						}
					}
					mt.rewards = append(mt.rewards, r)
				}
				if len(tx.Rewards) != len(earned) {
					t.Fatalf("sale %s: %d rewards, model %d", sale.Key, len(tx.Rewards), len(earned))
				}
				m.txs[sale.Key] = mt
				recorded[sale.Key] = sale
				keys = append(keys, sale.Key)
			}
			for j := unique; j < len(sales); j++ {
				if txs[j].Key != sales[j].Key || txs[j].PK == 0 {
					t.Fatalf("op %d: the repeated %s answered %+v", op, sales[j].Key, txs[j])
				}
			}
		case n < 50: // the same sale again: nothing changes
			key := keys[rng.Intn(len(keys))]
			_, created, err := ledger.RecordTransaction(ctx, db, p, recorded[key])
			if err != nil || created {
				t.Fatalf("retry of %s: created=%v %v", key, created, err)
			}
		case n < 70: // a partial refund, sometimes one seen before
			key := keys[rng.Intn(len(keys))]
			rk := fmt.Sprintf("re%d", op)
			if len(refundKeys) > 0 && rng.Intn(4) == 0 {
				rk = refundKeys[rng.Intn(len(refundKeys))]
			} else {
				refundKeys = append(refundKeys, rk)
			}
			amount := int64(rng.Intn(20000) + 1)
			if _, _, err := ledger.RefundTransaction(ctx, db, p, ledger.Refund{TransactionKey: key, Key: rk, Amount: amount}); err != nil {
				t.Fatal(err)
			}
			m.refund(key, rk, amount)
		case n < 78: // a full refund
			key := keys[rng.Intn(len(keys))]
			if _, _, err := ledger.RefundTransaction(ctx, db, p, ledger.Refund{TransactionKey: key}); err != nil {
				t.Fatal(err)
			}
			m.refund(key, "full:"+key, 0)
		default: // a credit or a debit
			c := everyone[rng.Intn(len(everyone))]
			units := currencies[rng.Intn(len(currencies))]
			amount := int64(rng.Intn(3000) - 2000)
			if amount == 0 {
				amount = 1
			}
			scale, _ := money.Scale(units)
			in := ledger.CreditInput{Amount: referral.Number(money.FormatMajor(amount, scale)), AmountUnits: units}
			_, _, err := ledger.CreditBalance(ctx, db, p, c.key, in)
			var verr *referral.ValidationError
			refused := errors.As(err, &verr)
			if err != nil && !refused {
				t.Fatal(err)
			}
			k := bkey(c.pk, units)
			wantRefused := amount < 0 && m.avail[k]+amount < 0
			if refused != wantRefused {
				t.Fatalf("op %d: debit of %d from %d refused=%v, want %v (%v)", op, amount, m.avail[k], refused, wantRefused, err)
			}
			if !refused {
				m.avail[k] += amount
			}
		}
	}
	check := func(stage string) {
		t.Helper()
		for _, c := range everyone {
			bs, err := store.Balances(ctx, db, c.pk)
			if err != nil {
				t.Fatal(err)
			}
			sums, err := store.LedgerSums(ctx, db, c.pk)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(bs) != fmt.Sprint(sums) {
				t.Errorf("%s: %s balances %v differ from the ledger's sums %v", stage, c.key, bs, sums)
			}
			got := map[string][2]int64{}
			for _, b := range bs {
				got[b.Units] = [2]int64{b.Amount, b.Pending}
			}
			for _, units := range []string{"usd", "eur", "jpy"} {
				k := bkey(c.pk, units)
				if want := [2]int64{m.avail[k], m.pend[k]}; got[units] != want {
					t.Errorf("%s: %s %s balance %v, model %v", stage, c.key, units, got[units], want)
				}
			}
		}
		var bad int
		if err := db.Get(&bad, `
			SELECT count(*) FROM reward_totals t WHERE t.total <> (
				SELECT coalesce(sum(amount - reversed), 0) FROM rewards w WHERE w.customer_pk = t.customer_pk AND w.units = t.units)`); err != nil || bad != 0 {
			t.Errorf("%s: %d reward totals differ from their rewards (%v)", stage, bad, err)
		}
		if err := db.Get(&bad, `
			SELECT count(*) FROM customer_stats s WHERE s.successful <> (
				SELECT count(*) FROM customers f WHERE f.referrer_pk = s.customer_pk AND EXISTS (
					SELECT FROM transactions x WHERE x.customer_pk = f.pk AND x.deleted_at IS NULL))`); err != nil || bad != 0 {
			t.Errorf("%s: %d successful_referrals counters differ from the rows (%v)", stage, bad, err)
		}
		if err := db.Get(&bad, `
			SELECT count(*) FROM customer_stats s WHERE (s.purchases, s.live_sales) <> (
				SELECT count(*), count(*) FILTER (WHERE x.deleted_at IS NULL) FROM transactions x WHERE x.customer_pk = s.customer_pk)`); err != nil || bad != 0 {
			t.Errorf("%s: %d purchases/live_sales counters differ from the rows (%v)", stage, bad, err)
		}
		if err := db.Get(&bad, `
			SELECT count(*) FROM transactions x JOIN customers c ON c.pk = x.customer_pk
			WHERE x.referrer_pk IS DISTINCT FROM c.referrer_pk
				OR (x.referrer_pk IS NULL AND EXISTS (SELECT FROM rewards w WHERE w.transaction_pk = x.pk))`); err != nil || bad != 0 {
			t.Errorf("%s: %d transactions with a wrong referrer, or unreferred with rewards (%v)", stage, bad, err)
		}
	}
	check("before approval")
	if _, err := ledger.ApproveDueRewards(ctx, db, time.Now().AddDate(0, 0, 4)); err != nil {
		t.Fatal(err)
	}
	for _, tx := range m.txs {
		for _, r := range tx.rewards {
			if r.pending && r.inBalance {
				net := r.amount - r.reversed
				m.pend[bkey(r.customer, r.units)] -= net
				m.avail[bkey(r.customer, r.units)] += net
				r.pending = false
			}
		}
	}
	check("after approval")
}

func text(s string) *referral.Text {
	t := referral.Text(s)
	return &t
}
