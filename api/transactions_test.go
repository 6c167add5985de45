package api_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/referd/referd/ledger"
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
	// Each reward.created comes with Partnero's customer.rewarded.
	want := "[customer.created customer.created reward.created customer.rewarded reward.created customer.rewarded transaction.created " +
		"reward.created customer.rewarded transaction.created]"
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
	// One bad item (a customer that does not exist) stores none of them.
	wantError(t, e.call("POST", "/v1/transactions", `{"customer": {"key": "friend"}, "transactions": [
		{"key": "x1", "amount": 1}, {"key": "x2", "amount": 1, "customer": {"key": "ghost"}}]}`), 422, "transactions.1.customer")
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
	tx, found, err := ledger.RefundTransaction(ctx, e.db, e.prog, ledger.Refund{TransactionKey: "inv", Key: "re_1", Amount: 2500})
	if err != nil || !found || tx.Refunded != 2500 {
		t.Fatalf("partial refund: %+v %v %v", tx, found, err)
	}
	// The same refund again changes nothing.
	if _, _, err := ledger.RefundTransaction(ctx, e.db, e.prog, ledger.Refund{TransactionKey: "inv", Key: "re_1", Amount: 2500}); err != nil {
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
	_, found, err := ledger.RefundTransaction(ctx, e.db, e.prog, ledger.Refund{TransactionKey: "late", Key: "re_early", Amount: 4000, WaitForSale: true})
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
	if n, err := ledger.ApproveDueRewards(ctx, e.db, time.Now()); err != nil || n != 0 {
		t.Fatalf("approved %d before due: %v", n, err)
	}
	n, err := ledger.ApproveDueRewards(ctx, e.db, time.Now().AddDate(0, 0, 15))
	if err != nil || n != 1 {
		t.Fatalf("approved %d when due: %v", n, err)
	}
	if n, _ := ledger.ApproveDueRewards(ctx, e.db, time.Now().AddDate(0, 0, 15)); n != 0 {
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

// stats returns a customer's successful and pending referral counts.
func (e *env) stats(customer string) [2]any {
	e.t.Helper()
	st := e.must(200, "GET", "/v1/customers/"+customer+"/stats", nil).data()
	return [2]any{st["successful_referrals"], st["pending_referrals"]}
}

// Seed 001 reports every purchase: a sale of a customer nobody referred is recorded
// with no rewards and no referring customer, and changes nobody's referral counts,
// alone, in a batch beside referred sales, and when refunded.
func TestUnreferredSale(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.rules(`[{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "percent"},
		{"recipient": "referred", "trigger": "first_purchase", "type": "credit", "amount": 5, "amount_type": "fixed"}]`)
	e.referral("jane", "friend") // jane refers, and nobody referred jane
	e.must(201, "POST", "/v1/customers", `{"key": "loner"}`)

	tx := e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "loner"}, "key": "l1", "amount": 100, "action": "sale"}`)
	if d := tx.data(); d["referring_customer"] != nil || len(d["rewards"].([]any)) != 0 || d["customer"].(map[string]any)["key"] != "loner" ||
		d["amount"] != float64(100) {
		t.Errorf("unreferred sale = %s", tx.Raw)
	}
	if got := e.must(200, "GET", "/v1/transactions/l1", nil).data(); got["referring_customer"] != nil {
		t.Errorf("stored with a referrer: %v", got)
	}
	e.must(200, "POST", "/v1/transactions", `{"customer": {"key": "loner"}, "key": "l1", "amount": 100, "action": "sale"}`)
	wantError(t, e.call("POST", "/v1/transactions", `{"customer": {"key": "loner"}, "key": "l1", "amount": 99}`), 409, "key")

	// A batch where the unreferred referrer buys twice beside her friend's sale.
	b := e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "jane"}, "transactions": [
		{"key": "j1", "amount": 50}, {"key": "f1", "amount": 200, "customer": {"key": "friend"}}, {"key": "j2", "amount": 20}]}`).list()
	if len(b) != 3 {
		t.Fatalf("batch = %v", b)
	}
	for _, i := range []int{0, 2} {
		if d := b[i].(map[string]any); d["referring_customer"] != nil || len(d["rewards"].([]any)) != 0 {
			t.Errorf("jane's sale %v", d)
		}
	}
	if d := b[1].(map[string]any); d["referring_customer"].(map[string]any)["key"] != "jane" || len(d["rewards"].([]any)) != 2 {
		t.Errorf("friend's sale %v", d)
	}
	if got := e.balance("jane"); fmt.Sprint(got) != "map[usd:[20 0]]" {
		t.Errorf("jane's balance = %v, want 20 usd from her friend's sale only", got)
	}
	if got := e.balance("loner"); len(got) != 0 {
		t.Errorf("loner's balance = %v", got)
	}
	if got := e.stats("jane"); got != [2]any{float64(1), float64(0)} {
		t.Errorf("jane's successful/pending = %v, want 1/0 (her friend bought)", got)
	}
	for _, c := range []string{"loner", "friend"} {
		if got := e.stats(c); got != [2]any{float64(0), float64(0)} {
			t.Errorf("%s's successful/pending = %v, want 0/0", c, got)
		}
	}
	// Refunding jane's own sales changes no referral count.
	e.must(200, "DELETE", "/v1/transactions/j1", nil)
	e.must(200, "DELETE", "/v1/transactions/j2", nil)
	e.must(200, "DELETE", "/v1/transactions/l1", nil)
	if got := e.stats("jane"); got != [2]any{float64(1), float64(0)} {
		t.Errorf("jane's successful/pending after her refunds = %v, want 1/0", got)
	}
	// The buyers' own counters count their sales, referred or not.
	var rows []struct {
		Key        string `db:"key"`
		Purchases  int    `db:"purchases"`
		LiveSales  int    `db:"live_sales"`
		Successful int    `db:"successful"`
	}
	if err := e.db.Select(&rows, `SELECT c.key, s.purchases, s.live_sales, s.successful FROM customer_stats s
		JOIN customers c ON c.pk = s.customer_pk WHERE c.program_pk = $1 ORDER BY c.key`, e.prog.PK); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rows) != "[{friend 1 1 0} {jane 2 0 1} {loner 1 0 0}]" {
		t.Errorf("customer_stats = %v", rows)
	}
	if l := e.must(200, "GET", "/v1/transactions?customer=jane", nil).list(); len(l) != 2 {
		t.Errorf("jane's transactions = %v", l)
	}
}

// iso renders t as Partnero does.
func iso(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// created_at dates a sale (an import): hold_days count from it, and so do
// max_months from the referral; a sale dated in the future is refused.
func TestTransactionCreatedAt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.rules(`[{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "fixed", "max_months": 2},
		{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 1, "amount_type": "fixed", "hold_days": 30}]`)
	e.referral("ref", "friend")
	// The friend was referred six months ago.
	now := time.Now().UTC().Truncate(time.Second)
	referred := now.AddDate(0, -6, 0)
	if _, err := e.db.Exec(`UPDATE customers SET created_at = $1 WHERE program_pk = $2 AND key = 'friend'`, referred, e.prog.PK); err != nil {
		t.Fatal(err)
	}

	// A month after the referral: within max_months, and the 30-day hold is long over.
	early := referred.AddDate(0, 1, 0)
	tx := e.must(201, "POST", "/v1/transactions", fmt.Sprintf(`{"customer": {"key": "friend"}, "key": "early", "amount": 50, "created_at": %q}`, iso(early))).data()
	if tx["created_at"] != iso(early) {
		t.Errorf("created_at = %v, want %s", tx["created_at"], iso(early))
	}
	if rw := tx["rewards"].([]any); len(rw) != 2 || rw[0].(map[string]any)["status"] != "approved" || rw[1].(map[string]any)["status"] != "approved" {
		t.Errorf("rewards of the early sale = %v, want both, approved", rw)
	}
	// Three months after the referral (given with an offset): beyond max_months.
	late := referred.AddDate(0, 3, 0)
	tx = e.must(201, "POST", "/v1/transactions", fmt.Sprintf(`{"customer": {"key": "friend"}, "key": "late", "amount": 50, "created_at": %q}`,
		late.In(time.FixedZone("", 2*3600)).Format(time.RFC3339))).data()
	if tx["created_at"] != iso(late) {
		t.Errorf("created_at = %v, want %s", tx["created_at"], iso(late))
	}
	if rw := tx["rewards"].([]any); len(rw) != 1 || rw[0].(map[string]any)["amount"] != float64(1) {
		t.Errorf("rewards of the late sale = %v, want only the held 1", rw)
	}
	// Today's sale: held for 30 days from now.
	tx = e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "friend"}, "key": "today", "amount": 50}`).data()
	if rw := tx["rewards"].([]any); len(rw) != 1 || rw[0].(map[string]any)["status"] != "pending" {
		t.Errorf("rewards of today's sale = %v, want the held 1, pending", rw)
	}
	if b := e.balance("ref"); b["usd"] != [2]string{"12", "1"} {
		t.Errorf("balance = %v, want 12 (10 + 1 + 1) with 1 pending", b)
	}
	avail := map[string]string{}
	for _, r := range e.must(200, "GET", "/v1/customers/ref/rewards", nil).list() {
		m := r.(map[string]any)
		if m["amount"] == float64(1) {
			avail[m["transaction_key"].(string)] = m["available_at"].(string)
		}
	}
	if avail["early"] != iso(early.AddDate(0, 0, 30)) || avail["late"] != iso(late.AddDate(0, 0, 30)) {
		t.Errorf("available_at = %v, want the sales' created_at + 30 days", avail)
	}
	if at, err := time.Parse(time.RFC3339, avail["today"]); err != nil || at.Before(now.AddDate(0, 0, 30)) {
		t.Errorf("today's available_at = %v (%v), want 30 days from now", avail["today"], err)
	}

	// A clock a little ahead is tolerated (recorded as of now); the future is refused.
	tx = e.must(201, "POST", "/v1/transactions", fmt.Sprintf(`{"customer": {"key": "friend"}, "key": "skew", "amount": 5, "created_at": %q}`,
		iso(time.Now().Add(10*time.Second)))).data()
	if at, _ := time.Parse(time.RFC3339, tx["created_at"].(string)); at.After(time.Now()) {
		t.Errorf("created_at = %v, in the future", tx["created_at"])
	}
	future := iso(time.Now().Add(time.Hour))
	for _, tc := range []struct {
		name, body, field string
		offSpec           bool // the body breaks openapi.json
	}{
		{"future", fmt.Sprintf(`{"customer": {"key": "friend"}, "key": "f", "amount": 5, "created_at": %q}`, future), "created_at", false},
		{"not a date", `{"customer": {"key": "friend"}, "key": "f", "amount": 5, "created_at": "yesterday"}`, "created_at", true},
		{"not a string", `{"customer": {"key": "friend"}, "key": "f", "amount": 5, "created_at": 1700000000}`, "created_at", true},
		{"before 1970", `{"customer": {"key": "friend"}, "key": "f", "amount": 5, "created_at": "1969-12-31T00:00:00Z"}`, "created_at", false},
		{"future in a batch", fmt.Sprintf(`{"customer": {"key": "friend"}, "transactions": [{"key": "f1", "amount": 5}, {"key": "f2", "amount": 5, "created_at": %q}]}`, future),
			"transactions.1.created_at", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, e.offSpecIf(tc.offSpec).call("POST", "/v1/transactions", tc.body), 422, tc.field)
		})
	}
	if l := e.must(200, "GET", "/v1/transactions", nil).list(); len(l) != 4 {
		t.Errorf("%d transactions, want 4: refused ones stored", len(l))
	}
}

// rewardable: false records the sale and earns nothing; it is still the buyer's
// purchase.
func TestTransactionNotRewardable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.rules(`[{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "percent"},
		{"recipient": "referrer", "trigger": "first_purchase", "type": "cash", "amount": 5, "amount_type": "fixed"}]`)
	e.referral("ref", "friend")
	tx := e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "friend"}, "key": "free", "amount": 100, "rewardable": false}`).data()
	if tx["rewardable"] != false || len(tx["rewards"].([]any)) != 0 || tx["referring_customer"].(map[string]any)["key"] != "ref" {
		t.Errorf("unrewardable sale = %v", tx)
	}
	if b := e.balance("ref"); len(b) != 0 {
		t.Errorf("balance = %v, want none", b)
	}
	// The next sale is the second purchase: 10 %, no first_purchase cash.
	tx = e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "friend"}, "key": "paid", "amount": 100, "rewardable": true}`).data()
	if tx["rewardable"] != true || len(tx["rewards"].([]any)) != 1 {
		t.Errorf("rewardable sale = %v", tx)
	}
	if tx := e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "friend"}, "key": "default", "amount": 10, "rewardable": null}`).data(); tx["rewardable"] != true {
		t.Errorf("rewardable defaults to %v", tx["rewardable"])
	}
	if b := e.balance("ref"); b["usd"] != [2]string{"11", "0"} {
		t.Errorf("balance = %v, want 11", b)
	}
	if got := e.stats("ref"); got != [2]any{float64(1), float64(0)} {
		t.Errorf("successful/pending = %v, want 1/0", got)
	}
	wantError(t, e.offSpec().call("POST", "/v1/transactions", `{"customer": {"key": "friend"}, "key": "x", "amount": 1, "rewardable": "no"}`), 422, "rewardable")
}

// discount_code, discount_amount and gross_amount are stored and returned, in the
// API and in transaction.created.
func TestTransactionDiscountFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.referral("ref", "friend")
	tx := e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "friend"}, "key": "d1", "amount": 80, "product_id": "pro",
		"discount_code": " FRIEND20 ", "discount_amount": 20, "gross_amount": "100.00"}`).data()
	want := "map[discount_amount:20 discount_code:FRIEND20 gross_amount:100 product_id:pro]"
	pick := func(m map[string]any) string {
		return fmt.Sprint(map[string]any{"discount_code": m["discount_code"], "discount_amount": m["discount_amount"],
			"gross_amount": m["gross_amount"], "product_id": m["product_id"]})
	}
	if pick(tx) != want {
		t.Errorf("created = %s, want %s", pick(tx), want)
	}
	if got := e.must(200, "GET", "/v1/transactions/d1", nil).data(); pick(got) != want {
		t.Errorf("read back = %s, want %s", pick(got), want)
	}
	var payload map[string]any
	for _, ev := range e.outbox() {
		if ev.Event == "transaction.created" {
			payload = ev.Payload
		}
	}
	if pick(payload) != want || payload["rewardable"] != true {
		t.Errorf("transaction.created = %v", payload)
	}
	// In the currency's own minor units; absent or null is null.
	tx = e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "friend"}, "key": "d2", "amount": 900, "amount_units": "jpy",
		"discount_amount": 100, "gross_amount": null}`).data()
	if tx["discount_amount"] != float64(100) || tx["gross_amount"] != nil || tx["discount_code"] != nil {
		t.Errorf("jpy sale = %v", tx)
	}
	var minor struct {
		Discount int64 `db:"discount_amount"`
		Gross    int64 `db:"gross_amount"`
	}
	if err := e.db.Get(&minor, `SELECT discount_amount, gross_amount FROM transactions WHERE program_pk = $1 AND key = 'd1'`, e.prog.PK); err != nil ||
		minor.Discount != 2000 || minor.Gross != 10000 {
		t.Errorf("stored %+v (%v), want 2000 and 10000 minor units", minor, err)
	}
	for _, tc := range []struct {
		name, body, field string
		offSpec           bool // the body breaks openapi.json
	}{
		{"negative discount", `{"customer": {"key": "friend"}, "key": "x", "amount": 1, "discount_amount": -1}`, "discount_amount", false},
		{"negative gross", `{"customer": {"key": "friend"}, "key": "x", "amount": 1, "gross_amount": -0.01}`, "gross_amount", false},
		{"discount in thousandths", `{"customer": {"key": "friend"}, "key": "x", "amount": 1, "discount_amount": 0.001}`, "discount_amount", false},
		{"yen with decimals", `{"customer": {"key": "friend"}, "key": "x", "amount": 1, "amount_units": "jpy", "gross_amount": 1.5}`, "gross_amount", false},
		{"discount as text", `{"customer": {"key": "friend"}, "key": "x", "amount": 1, "discount_amount": "ten"}`, "discount_amount", true},
		{"code with control characters", `{"customer": {"key": "friend"}, "key": "x", "amount": 1, "discount_code": "A\nB"}`, "discount_code", false},
		{"negative in a batch", `{"customer": {"key": "friend"}, "transactions": [{"key": "x", "amount": 1, "discount_amount": -5}]}`, "transactions.0.discount_amount", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, e.offSpecIf(tc.offSpec).call("POST", "/v1/transactions", tc.body), 422, tc.field)
		})
	}
}

// The new fields are part of what makes a repeat the same transaction (200) or a
// reused key (409).
func TestTransactionIdempotencyWithFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.rules(tenPercentAndFive)
	e.referral("ref", "friend")
	at := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Second)
	fields := map[string]any{"created_at": iso(at), "rewardable": true, "discount_code": "SPRING", "discount_amount": 5, "gross_amount": 105,
		"product_id": "p1"}
	body := func(change map[string]any) map[string]any {
		b := map[string]any{"customer": map[string]any{"key": "friend"}, "key": "inv", "amount": 100}
		for k, v := range fields {
			b[k] = v
		}
		for k, v := range change {
			b[k] = v
		}
		return b
	}
	first := e.must(201, "POST", "/v1/transactions", body(nil))
	again := e.must(200, "POST", "/v1/transactions", body(nil))
	if string(first.Raw) != string(again.Raw) {
		t.Errorf("repeat answered %s\nwant the original %s", again.Raw, first.Raw)
	}
	// The same instant in another zone is the same sale.
	e.must(200, "POST", "/v1/transactions", body(map[string]any{"created_at": at.In(time.FixedZone("", -5*3600)).Format(time.RFC3339)}))
	for field, v := range map[string]any{
		"created_at": iso(at.Add(time.Second)), "rewardable": false, "discount_code": "SUMMER", "discount_amount": 6,
		"gross_amount": 106, "product_id": "p2",
	} {
		t.Run(field, func(t *testing.T) {
			wantError(t, e.call("POST", "/v1/transactions", body(map[string]any{field: v})), 409, "key")
		})
	}
	for _, field := range []string{"created_at", "discount_code", "discount_amount", "gross_amount"} {
		t.Run("without "+field, func(t *testing.T) {
			wantError(t, e.call("POST", "/v1/transactions", body(map[string]any{field: nil})), 409, "key")
		})
	}
	if l := e.must(200, "GET", "/v1/transactions", nil).list(); len(l) != 1 {
		t.Errorf("%d transactions, want 1", len(l))
	}
}
