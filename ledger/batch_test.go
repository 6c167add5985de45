package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/referd/referd/ledger"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store/storetest"
)

// Sales recorded together through the Batcher are committed in lock order, not in
// the order they came; each caller still gets its own sale back, and a caller's
// mistake (an unknown buyer, a key reused with another amount) is its own.
func TestBatcherAnswersEachCallerItsOwnSale(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	p, _, err := referral.CreateProgram(ctx, db, "Batch", "https://batch.test")
	if err != nil {
		t.Fatal(err)
	}
	var patch referral.ProgramPatch
	json.Unmarshal([]byte(`{"rewards": [{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "percent"}]}`), &patch)
	if p, err = referral.UpdateProgram(ctx, db, p.PK, patch); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := referral.CreateCustomer(ctx, db, p, referral.CustomerInput{Key: text(fmt.Sprintf("r%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 12 {
		if _, err := referral.CreateCustomer(ctx, db, p, referral.CustomerInput{Key: text(fmt.Sprintf("f%d", i)),
			ReferringCustomer: &referral.CustomerRefInput{Key: text(fmt.Sprintf("r%d", i%3))}}); err != nil {
			t.Fatal(err)
		}
	}
	b := ledger.NewBatcher(db, 2, 16)
	if _, _, err := b.Record(ctx, p, ledger.Sale{CustomerKey: "f0", Key: "taken", Amount: 100, Units: "usd"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for n := range 60 {
		wg.Go(func() {
			// Keys descend while calls ascend, so lock order differs from arrival.
			key, buyer, amount := fmt.Sprintf("k%03d", 100-n), fmt.Sprintf("f%d", n%12), int64(1000+n)
			switch n % 10 {
			case 7:
				buyer = "nobody"
			case 9:
				key = "taken" // same key, another amount: a conflict
			}
			tx, created, err := b.Record(ctx, p, ledger.Sale{CustomerKey: buyer, Key: key, Amount: amount, Units: "usd"})
			switch n % 10 {
			case 7, 9:
				if err == nil {
					t.Errorf("sale %d (%s by %s) was recorded", n, key, buyer)
				}
			default:
				if err != nil || !created || tx.Key != key || tx.Amount != amount || tx.Buyer.Key != buyer {
					t.Errorf("sale %d: got %s by %s for %d (created %v, %v); want %s by %s for %d",
						n, tx.Key, tx.Buyer.Key, tx.Amount, created, err, key, buyer, amount)
				}
			}
		})
	}
	wg.Wait()
}
