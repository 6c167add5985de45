package api_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// rules sets the program's reward rules.
func (e *env) rules(rules string) {
	e.t.Helper()
	e.must(200, "PATCH", "/v1/program", `{"rewards": `+rules+`}`)
	p, err := store.ProgramByID(context.Background(), e.db, e.prog.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	e.prog = p
}

// referral creates a referrer and a friend it referred.
func (e *env) referral(referrer, friend string) {
	e.t.Helper()
	if r := e.call("GET", "/v1/customers/"+referrer, nil); r.Status == 404 {
		e.must(201, "POST", "/v1/customers", fmt.Sprintf(`{"key": %q}`, referrer))
	}
	e.must(201, "POST", "/v1/customers", fmt.Sprintf(`{"key": %q, "referring_customer": {"key": %q}}`, friend, referrer))
}

// balance returns the customer's balance entries by units: [amount, pending].
func (e *env) balance(customer string) map[string][2]string {
	e.t.Helper()
	d := e.must(200, "GET", "/v1/customers/"+customer+"/balance", nil).data()
	out := map[string][2]string{}
	for _, b := range d["balance"].([]any) {
		m := b.(map[string]any)
		out[m["amount_units"].(string)] = [2]string{fmt.Sprint(m["amount"]), fmt.Sprint(m["pending"])}
	}
	if _, ok := d["customer"].(map[string]any)["key"]; !ok {
		e.t.Errorf("balance without its customer: %v", d)
	}
	return out
}

const tenPercentAndFive = `[
	{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "percent"},
	{"recipient": "referred", "trigger": "first_purchase", "type": "discount", "amount": 5, "amount_type": "fixed"}
]`

// The seed's sale: the referred friend buys, the referrer earns.
func TestTransactionEarnsRewards(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.rules(tenPercentAndFive)
	e.referral("customer_123", "customer_456")

	tx := e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "customer_456"}, "key": "invoice_123", "amount": 100, "action": "sale"}`).data()
	if tx["key"] != "invoice_123" || tx["amount"] != float64(100) || tx["amount_units"] != "usd" || tx["refunded_amount"] != float64(0) ||
		tx["action"] != "sale" || tx["source"] != "api" || tx["livemode"] != true || tx["deleted_at"] != nil {
		t.Errorf("transaction = %v", tx)
	}
	if tx["customer"].(map[string]any)["key"] != "customer_456" || tx["referring_customer"].(map[string]any)["key"] != "customer_123" {
		t.Errorf("parties = %v / %v", tx["customer"], tx["referring_customer"])
	}
	rw := tx["rewards"].([]any)
	if len(rw) != 2 {
		t.Fatalf("rewards = %v", rw)
	}
	ref, friend := rw[0].(map[string]any), rw[1].(map[string]any)
	if ref["recipient"] != "referrer" || ref["amount"] != float64(10) || ref["amount_units"] != "usd" || ref["type"] != "credit" || ref["status"] != "approved" || ref["is_currency"] != true {
		t.Errorf("referrer reward = %v", ref)
	}
	if friend["recipient"] != "referred" || friend["amount"] != float64(5) || friend["type"] != "discount" {
		t.Errorf("friend reward = %v", friend)
	}
	if b := e.balance("customer_123"); b["usd"] != [2]string{"10", "0"} {
		t.Errorf("referrer balance = %v, want 10 usd", b)
	}
	// A discount lives in the rewards list, not in the balance.
	if b := e.balance("customer_456"); len(b) != 0 {
		t.Errorf("friend balance = %v, want none", b)
	}
	fr := e.must(200, "GET", "/v1/customers/customer_456/rewards", nil).list()
	if len(fr) != 1 || fr[0].(map[string]any)["transaction_key"] != "invoice_123" || fr[0].(map[string]any)["type"] != "discount" {
		t.Errorf("friend rewards = %v", fr)
	}

	// A second purchase: 10% again, no second first_purchase discount.
	e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "customer_456"}, "key": "invoice_124", "amount": 49.99}`)
	if b := e.balance("customer_123"); b["usd"] != [2]string{"15", "0"} { // 10 + round(4.999) = 15.00
		t.Errorf("referrer balance = %v, want 15 usd", b)
	}
	st := e.must(200, "GET", "/v1/customers/customer_123/stats", nil).data()
	if st["total_referrals"] != float64(1) || st["successful_referrals"] != float64(1) || st["pending_referrals"] != float64(0) ||
		st["clicks"] != float64(0) || st["unique_clicks"] != float64(0) {
		t.Errorf("stats = %v", st)
	}
	if tr := st["total_rewards"].([]any); len(tr) != 1 || fmt.Sprint(tr[0]) != "map[amount:15 amount_units:usd is_currency:true]" {
		t.Errorf("total_rewards = %v", tr)
	}
	links := st["sharing_links"].(map[string]any)
	for _, k := range []string{"twitter", "facebook", "linkedin", "whatsapp", "email"} {
		if s, _ := links[k].(string); s == "" {
			t.Errorf("sharing_links.%s missing: %v", k, links)
		}
	}
	var events []string
	for _, ev := range e.outbox() {
		events = append(events, ev.Event)
	}
	want := "[customer.created customer.created reward.created reward.created transaction.created reward.created transaction.created]"
	if fmt.Sprint(events) != want {
		t.Errorf("events = %v\nwant %s", events, want)
	}
}

func TestTransactionIdempotency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.rules(tenPercentAndFive)
	e.referral("ref", "friend")
	body := `{"customer": {"key": "friend"}, "key": "inv-1", "amount": 100, "action": "sale"}`
	first := e.must(201, "POST", "/v1/transactions", body).data()
	again := e.must(200, "POST", "/v1/transactions", body).data()
	if fmt.Sprint(first) != fmt.Sprint(again) {
		t.Errorf("repeat answered %v, want the original %v", again, first)
	}
	wantError(t, e.call("POST", "/v1/transactions", `{"customer": {"key": "friend"}, "key": "inv-1", "amount": 101}`), 409, "key")

	// 20 concurrent sends of one new key record one transaction.
	var wg sync.WaitGroup
	statuses := make(chan int, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- e.call("POST", "/v1/transactions", `{"customer": {"key": "friend"}, "key": "inv-2", "amount": 50}`).Status
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[201] != 1 || count[200] != 19 {
		t.Errorf("statuses = %v, want one 201 and 19 200", count)
	}
	if b := e.balance("ref"); b["usd"] != [2]string{"15", "0"} {
		t.Errorf("balance = %v, want 15 usd (10 + 5, each once)", b)
	}
	if l := e.must(200, "GET", "/v1/transactions", nil).list(); len(l) != 2 {
		t.Errorf("%d transactions, want 2", len(l))
	}
}

func TestTransactionErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.referral("ref", "friend")
	e.must(201, "POST", "/v1/customers", `{"key": "loner"}`)
	for _, tc := range []struct {
		name, body, field string
		status            int
		offSpec           bool // the body breaks openapi.json
	}{
		{"customer not referred", `{"customer": {"key": "loner"}, "key": "t", "amount": 10}`, "customer", 422, false},
		{"unknown customer", `{"customer": {"key": "ghost"}, "key": "t", "amount": 10}`, "customer", 422, false},
		{"no customer", `{"key": "t", "amount": 10}`, "customer", 422, true},
		{"no key", `{"customer": {"key": "friend"}, "amount": 10}`, "key", 422, true},
		{"no amount", `{"customer": {"key": "friend"}, "key": "t"}`, "amount", 422, true},
		{"zero amount", `{"customer": {"key": "friend"}, "key": "t", "amount": 0}`, "amount", 422, true},
		{"negative amount", `{"customer": {"key": "friend"}, "key": "t", "amount": -5}`, "amount", 422, true},
		{"too many decimals", `{"customer": {"key": "friend"}, "key": "t", "amount": 10.001}`, "amount", 422, false},
		{"yen with decimals", `{"customer": {"key": "friend"}, "key": "t", "amount": 10.5, "amount_units": "jpy"}`, "amount", 422, false},
		{"unknown currency", `{"customer": {"key": "friend"}, "key": "t", "amount": 10, "amount_units": "credit"}`, "amount_units", 422, true},
		{"amount as text", `{"customer": {"key": "friend"}, "key": "t", "amount": "ten"}`, "amount", 422, true},
		{"bad action", `{"customer": {"key": "friend"}, "key": "t", "amount": 10, "action": "Sale!"}`, "action", 422, true},
		{"empty batch", `{"customer": {"key": "friend"}, "transactions": []}`, "transactions", 422, true},
		{"bad batch item", `{"customer": {"key": "friend"}, "transactions": [{"key": "a", "amount": 1}, {"key": "b"}]}`, "transactions.1.amount", 422, true},
		{"malformed", `{"customer": `, "", 400, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, e.offSpecIf(tc.offSpec).call("POST", "/v1/transactions", tc.body), tc.status, tc.field)
		})
	}
	if l := e.must(200, "GET", "/v1/transactions", nil).list(); len(l) != 0 {
		t.Errorf("failed requests stored %d transactions", len(l))
	}
	wantError(t, e.call("DELETE", "/v1/transactions/ghost", nil), 404, "")
	wantError(t, e.call("GET", "/v1/transactions/ghost", nil), 404, "")
}

func TestCurrencyExponents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.rules(`[{"recipient": "referrer", "trigger": "purchase", "type": "cash", "amount": 10, "amount_type": "percent"}]`)
	e.referral("ref", "friend")
	jpy := e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "friend"}, "key": "yen", "amount": 5000, "amount_units": "JPY"}`).data()
	kwd := e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "friend"}, "key": "dinar", "amount": 1.234, "amount_units": "kwd"}`).data()
	if jpy["amount"] != float64(5000) || jpy["amount_units"] != "jpy" || kwd["amount"] != 1.234 {
		t.Errorf("jpy %v kwd %v", jpy, kwd)
	}
	b := e.balance("ref")
	if b["jpy"] != [2]string{"500", "0"} || b["kwd"] != [2]string{"0.123", "0"} { // 10% of 1.234 = 0.1234 -> 0.123
		t.Errorf("balances = %v", b)
	}
}

func TestBatchTransactionsAreAtomic(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.rules(tenPercentAndFive)
	e.referral("ref", "friend")
	e.must(201, "POST", "/v1/customers", `{"key": "loner"}`)
	r := e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "friend"}, "transactions": [
		{"key": "invoice_123", "amount": 100, "action": "sale"}, {"key": "invoice_456", "amount": 200, "action": "sale"}]}`)
	if l := r.list(); len(l) != 2 || l[1].(map[string]any)["amount"] != float64(200) {
		t.Fatalf("batch answered %s", r.Raw)
	}
	// One bad item (a customer that was not referred) stores none of them.
	wantError(t, e.call("POST", "/v1/transactions", `{"customer": {"key": "friend"}, "transactions": [
		{"key": "x1", "amount": 1}, {"key": "x2", "amount": 1, "customer": {"key": "loner"}}]}`), 422, "transactions.1.customer")
	if l := e.must(200, "GET", "/v1/transactions?limit=250", nil).list(); len(l) != 2 {
		t.Errorf("%d transactions after a failed batch, want 2", len(l))
	}
	// Repeating the batch changes nothing.
	e.must(200, "POST", "/v1/transactions", `{"customer": {"key": "friend"}, "transactions": [
		{"key": "invoice_123", "amount": 100, "action": "sale"}, {"key": "invoice_456", "amount": 200, "action": "sale"}]}`)
	if b := e.balance("ref"); b["usd"] != [2]string{"30", "0"} {
		t.Errorf("balance = %v, want 30", b)
	}
	l := e.must(200, "GET", "/v1/transactions?customer=friend&key=invoice_456", nil).list()
	if len(l) != 1 || l[0].(map[string]any)["key"] != "invoice_456" {
		t.Errorf("filtered list = %v", l)
	}
	if l := e.must(200, "GET", "/v1/transactions", `{"customer": "ref"}`).list(); len(l) != 0 {
		t.Errorf("ref bought nothing, listed %v", l)
	}
}

func TestRefunds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.rules(`[
		{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "percent"},
		{"recipient": "referrer", "trigger": "first_purchase", "type": "cash", "amount": 3, "amount_type": "fixed"}]`)
	e.referral("ref", "friend")
	e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "friend"}, "key": "inv", "amount": 100}`)
	if b := e.balance("ref"); b["usd"] != [2]string{"13", "0"} {
		t.Fatalf("balance = %v", b)
	}
	ctx := context.Background()
	// A partial refund of 25 reverses 25% of the percent reward, not the fixed one.
	tx, found, err := referral.RefundTransaction(ctx, e.db, e.prog, referral.Refund{TransactionKey: "inv", Key: "re_1", Amount: 2500})
	if err != nil || !found || tx.Refunded != 2500 {
		t.Fatalf("partial refund: %+v %v %v", tx, found, err)
	}
	// The same refund again changes nothing.
	if _, _, err := referral.RefundTransaction(ctx, e.db, e.prog, referral.Refund{TransactionKey: "inv", Key: "re_1", Amount: 2500}); err != nil {
		t.Fatal(err)
	}
	if b := e.balance("ref"); b["usd"] != [2]string{"10.5", "0"} {
		t.Errorf("balance after 25%% refund = %v, want 10.5", b)
	}
	got := e.must(200, "GET", "/v1/transactions/inv", nil).data()
	if got["refunded_amount"] != float64(25) || got["deleted_at"] != nil {
		t.Errorf("after partial refund: %v", got)
	}
	st := e.must(200, "GET", "/v1/customers/ref/stats", nil).data()
	if st["successful_referrals"] != float64(1) {
		t.Errorf("a partly refunded sale still counts: %v", st)
	}
	// DELETE refunds the rest: every reward reversed.
	del := e.must(200, "DELETE", "/v1/transactions/inv", nil).data()
	if del["refunded_amount"] != float64(100) || del["deleted_at"] == nil {
		t.Errorf("after delete: %v", del)
	}
	for _, r := range del["rewards"].([]any) {
		if r.(map[string]any)["status"] != "reversed" {
			t.Errorf("reward not reversed: %v", r)
		}
	}
	e.must(200, "DELETE", "/v1/transactions/inv", nil) // again: nothing changes
	if b := e.balance("ref"); b["usd"] != [2]string{"0", "0"} {
		t.Errorf("balance after full refund = %v, want 0", b)
	}
	st = e.must(200, "GET", "/v1/customers/ref/stats", nil).data()
	if st["successful_referrals"] != float64(0) || st["pending_referrals"] != float64(1) || len(st["total_rewards"].([]any)) != 0 {
		t.Errorf("stats after full refund = %v", st)
	}
	var reversals, deletes int
	for _, ev := range e.outbox() {
		switch ev.Event {
		case "reward.reversed":
			reversals++
		case "transaction.deleted":
			deletes++
		}
	}
	if reversals != 3 || deletes != 1 { // percent: partial + rest; fixed: once
		t.Errorf("%d reward.reversed and %d transaction.deleted events, want 3 and 1", reversals, deletes)
	}
}

func TestRefundBeforeSale(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.rules(tenPercentAndFive)
	e.referral("ref", "friend")
	ctx := context.Background()
	_, found, err := referral.RefundTransaction(ctx, e.db, e.prog, referral.Refund{TransactionKey: "late", Key: "re_early", Amount: 4000, WaitForSale: true})
	if err != nil || found {
		t.Fatalf("refund before sale: found=%v err=%v", found, err)
	}
	tx := e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "friend"}, "key": "late", "amount": 100}`).data()
	if tx["refunded_amount"] != float64(40) {
		t.Errorf("the waiting refund was not applied: %v", tx)
	}
	if b := e.balance("ref"); b["usd"] != [2]string{"6", "0"} {
		t.Errorf("balance = %v, want 6 (10 less 40%%)", b)
	}
}

func TestHeldRewardsApproveWhenDue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.rules(`[{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 20, "amount_type": "fixed", "hold_days": 14}]`)
	e.referral("ref", "friend")
	e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "friend"}, "key": "a", "amount": 100}`)
	e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "friend"}, "key": "b", "amount": 100}`)
	if b := e.balance("ref"); b["usd"] != [2]string{"0", "40"} {
		t.Fatalf("balance = %v, want 0 with 40 pending", b)
	}
	rw := e.must(200, "GET", "/v1/customers/ref/rewards", nil).list()
	if len(rw) != 2 || rw[0].(map[string]any)["status"] != "pending" {
		t.Fatalf("rewards = %v", rw)
	}
	// Refunding a held reward's sale takes it from pending.
	e.must(200, "DELETE", "/v1/transactions/b", nil)
	ctx := context.Background()
	if n, err := referral.ApproveDueRewards(ctx, e.db, time.Now()); err != nil || n != 0 {
		t.Fatalf("approved %d before due: %v", n, err)
	}
	n, err := referral.ApproveDueRewards(ctx, e.db, time.Now().AddDate(0, 0, 15))
	if err != nil || n != 1 {
		t.Fatalf("approved %d when due: %v", n, err)
	}
	if n, _ := referral.ApproveDueRewards(ctx, e.db, time.Now().AddDate(0, 0, 15)); n != 0 {
		t.Errorf("approved %d twice", n)
	}
	if b := e.balance("ref"); b["usd"] != [2]string{"20", "0"} {
		t.Errorf("balance = %v, want 20", b)
	}
	var approved int
	for _, ev := range e.outbox() {
		if ev.Event == "reward.approved" {
			approved++
			if ev.Payload["status"] != "approved" {
				t.Errorf("reward.approved payload %v", ev.Payload)
			}
		}
	}
	if approved != 1 {
		t.Errorf("%d reward.approved events", approved)
	}
}

func TestSignupRewards(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.rules(`[{"recipient": "referrer", "trigger": "signup", "type": "credit", "amount": 2, "amount_type": "fixed"},
		{"recipient": "referred", "trigger": "signup", "type": "credit", "amount": 1, "amount_type": "fixed", "currency": "eur"}]`)
	e.referral("ref", "friend")
	e.must(201, "POST", "/v1/customers", `{"key": "loner"}`) // not referred: no reward
	if b := e.balance("ref"); b["usd"] != [2]string{"2", "0"} || len(b) != 1 {
		t.Errorf("referrer balance = %v", b)
	}
	if b := e.balance("friend"); b["eur"] != [2]string{"1", "0"} {
		t.Errorf("friend balance = %v", b)
	}
	if b := e.balance("loner"); len(b) != 0 {
		t.Errorf("loner balance = %v", b)
	}
}

func TestCredit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.must(201, "POST", "/v1/customers", `{"key": "c"}`)
	b := e.must(200, "POST", "/v1/customers/c/balance/credit", `{"amount": 10, "is_currency": true, "amount_units": "usd"}`).data()
	if fmt.Sprint(b["balance"]) != "[map[amount:10 amount_units:usd is_currency:true pending:0]]" {
		t.Errorf("after credit: %v", b["balance"])
	}
	e.must(200, "POST", "/v1/customers/c/balance/credit", `{"amount": -4.5, "amount_units": "usd", "note": "payout"}`)
	wantError(t, e.call("POST", "/v1/customers/c/balance/credit", `{"amount": -5.51, "amount_units": "usd"}`), 422, "amount")
	wantError(t, e.call("POST", "/v1/customers/c/balance/credit", `{"amount": -1, "amount_units": "eur"}`), 422, "amount")
	wantError(t, e.call("POST", "/v1/customers/c/balance/credit", `{"amount": 0}`), 422, "amount")
	wantError(t, e.call("POST", "/v1/customers/c/balance/credit", `{"amount": 1.001, "amount_units": "usd"}`), 422, "amount")
	wantError(t, e.call("POST", "/v1/customers/c/balance/credit", `{"amount": 1, "amount_units": "usd", "is_currency": false}`), 422, "is_currency")
	wantError(t, e.offSpec().call("POST", "/v1/customers/c/balance/credit", `{"amount": 1, "amount_units": "dollars"}`), 422, "amount_units")
	wantError(t, e.call("POST", "/v1/customers/ghost/balance/credit", `{"amount": 1}`), 404, "")
	// Points are credit, not money; a keyed credit counts once.
	e.must(200, "POST", "/v1/customers/c/balance/credit", `{"amount": 100, "amount_units": "credit", "is_currency": false, "key": "bonus-1"}`)
	e.must(200, "POST", "/v1/customers/c/balance/credit", `{"amount": 100, "amount_units": "credit", "is_currency": false, "key": "bonus-1"}`)
	if b := e.balance("c"); b["usd"] != [2]string{"5.5", "0"} || b["credit"] != [2]string{"100", "0"} {
		t.Errorf("balance = %v", b)
	}
}

// 100 concurrent sales of one referrer's friends, with credits and debits beside
// them: the balance is exact.
func TestConcurrentTransactionsOfOneReferrer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.rules(`[{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "percent"}]`)
	for i := 0; i < 10; i++ {
		e.referral("ref", fmt.Sprintf("f%d", i))
	}
	e.must(200, "POST", "/v1/customers/ref/balance/credit", `{"amount": 1000}`)
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if r := e.call("POST", "/v1/transactions", fmt.Sprintf(`{"customer": {"key": "f%d"}, "key": "t%d", "amount": 12.34}`, i%10, i)); r.Status != 201 {
				t.Errorf("sale %d: %d %s", i, r.Status, r.Raw)
			}
			if i%4 == 0 {
				if r := e.call("POST", "/v1/customers/ref/balance/credit", `{"amount": -1}`); r.Status != 200 {
					t.Errorf("debit %d: %d %s", i, r.Status, r.Raw)
				}
			}
		}(i)
	}
	wg.Wait()
	// 1000 + 100 x 1.23 (10% of 12.34, rounded) - 25 x 1
	if b := e.balance("ref"); b["usd"] != [2]string{"1098", "0"} {
		t.Errorf("balance = %v, want 1098", b)
	}
	c, err := store.GetCustomer(context.Background(), e.db, e.prog.PK, "ref", false)
	if err != nil {
		t.Fatal(err)
	}
	sums, err := store.LedgerSums(context.Background(), e.db, c.PK)
	if err != nil || len(sums) != 1 || sums[0].Amount != 109800 {
		t.Errorf("ledger sums = %+v %v", sums, err)
	}
	st := e.must(200, "GET", "/v1/customers/ref/stats", nil).data()
	if st["total_referrals"] != float64(10) || st["successful_referrals"] != float64(10) {
		t.Errorf("stats = %v", st)
	}
}

// Concurrent sales of one buyer (batched together or not) are numbered one by one:
// exactly one of them is the first purchase.
func TestConcurrentSalesOfOneBuyer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.rules(`[{"recipient": "referrer", "trigger": "first_purchase", "type": "credit", "amount": 7, "amount_type": "fixed"},
		{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 1, "amount_type": "fixed", "max_purchases": 5}]`)
	e.referral("ref", "friend")
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if r := e.call("POST", "/v1/transactions", fmt.Sprintf(`{"customer": {"key": "friend"}, "key": "b%d", "amount": 10}`, i)); r.Status != 201 {
				t.Errorf("sale %d: %d %s", i, r.Status, r.Raw)
			}
		}(i)
	}
	wg.Wait()
	// 7 for the first purchase, 1 for each of the first five.
	if b := e.balance("ref"); b["usd"] != [2]string{"12", "0"} {
		t.Errorf("balance = %v, want 12", b)
	}
	var numbers []int
	if err := e.db.Select(&numbers, `SELECT purchase_number FROM transactions ORDER BY purchase_number`); err != nil {
		t.Fatal(err)
	}
	for i, n := range numbers {
		if n != i+1 {
			t.Fatalf("purchase numbers %v, want 1..30", numbers)
		}
	}
}
