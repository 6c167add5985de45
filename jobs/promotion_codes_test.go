package jobs_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/referd/referd/jobs"
	"github.com/referd/referd/ledger"
	"github.com/referd/referd/ops"
	"github.com/referd/referd/promo"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/secrets"
	"github.com/referd/referd/store"
	"github.com/referd/referd/stripeapi"
)

// promoEnv is a program with a 10% purchase rule, a referrer "ref", and Alice, who
// owns the code ALICE20 (Stripe promo_1Alice, Paddle dsc_01hv6scyf7qdnzcdq01t2y8dx4,
// Chargebee alice-coupon) unless a test creates it later.
type promoEnv struct {
	*processEnv
	mux *asynq.ServeMux
}

func newPromoEnv(t *testing.T, withCode bool, o jobs.Options) *promoEnv {
	e := &promoEnv{processEnv: newProcessEnv(t)}
	e.mux = jobs.HandlersWith(e.db, slog.New(slog.NewTextHandler(io.Discard, nil)), o)
	if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, referral.CustomerInput{Key: text("alice")}); err != nil {
		t.Fatal(err)
	}
	if withCode {
		e.createCode()
	}
	return e
}

func (e *promoEnv) createCode() {
	e.t.Helper()
	ids := &promo.ProviderIDs{Stripe: strptr("promo_1Alice"), Paddle: strptr("dsc_01hv6scyf7qdnzcdq01t2y8dx4"), Chargebee: strptr("alice-coupon")}
	if _, err := promo.Create(e.ctx, e.db, e.p, promo.Input{Customer: &referral.CustomerRefInput{Key: text("alice")},
		Code: text("ALICE20"), ProviderIDs: ids}, nil); err != nil {
		e.t.Fatal(err)
	}
}

// store stores testdata/promotion_codes/<file> as ingest would, edited by edit.
func (e *promoEnv) store(provider, file string, edit func(map[string]any)) store.ProviderEvent {
	e.t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "testdata", "promotion_codes", file))
	if err != nil {
		e.t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		e.t.Fatal(err)
	}
	if edit != nil {
		edit(v)
		body, _ = json.Marshal(v)
	}
	id, _ := v["id"].(string)
	if id == "" {
		id, _ = v["event_id"].(string)
	}
	typ, _ := v["type"].(string)
	for _, k := range []string{"event_type"} {
		if s, ok := v[k].(string); ok {
			typ = s
		}
	}
	evs := []store.ProviderEvent{{ProgramPK: e.p.PK, Provider: provider, EventID: id, Type: typ, Payload: body, ReceivedAt: store.Now()}}
	if _, err := store.InsertProviderEvents(e.ctx, e.db, evs); err != nil {
		e.t.Fatal(err)
	}
	return evs[0]
}

// run runs the event's task twice at once, as two deliveries would, and returns the
// stored event as it ends.
func (e *promoEnv) run(ev store.ProviderEvent) store.ProviderEvent {
	e.t.Helper()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			task, _ := jobs.ProcessEventTask(ev.PK)
			if err := e.mux.ProcessTask(e.ctx, task); err != nil {
				e.t.Errorf("task of %s: %v", ev.EventID, err)
			}
		})
	}
	wg.Wait()
	got, err := store.GetProviderEvent(e.ctx, e.db, ev.PK)
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

// retry runs what the relay's RetryDiscounts poller would queue, and says how many
// events it queued.
func (e *promoEnv) retry() int {
	e.t.Helper()
	var js []jobs.Job
	if err := e.db.InTx(e.ctx, func(tx *store.Tx) error {
		var err error
		js, err = jobs.RetryDiscounts(e.ctx, tx)
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, j := range js {
		n += len(strings.Split(string(j.Task.Payload()), ",")) // the pks, with commas between them
		if err := e.mux.ProcessTask(e.ctx, j.Task); err != nil {
			e.t.Fatal(err)
		}
	}
	return n
}

// balanceIn is the customer's balance in units.
func (e *promoEnv) balanceIn(key, units string) int64 {
	e.t.Helper()
	c, err := store.GetCustomer(e.ctx, e.db, e.p.PK, key, false)
	if err != nil {
		e.t.Fatal(err)
	}
	bs, err := store.Balances(e.ctx, e.db, c.PK)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, b := range bs {
		if b.Units == units {
			return b.Amount
		}
	}
	return 0
}

func (e *promoEnv) uses() int {
	e.t.Helper()
	pc, err := promo.Get(e.ctx, e.db, e.p, "alice20")
	if err != nil {
		e.t.Fatal(err)
	}
	return pc.Uses
}

// referrerOf returns the key of the referrer of the sale key's buyer, and the sale.
func (e *promoEnv) sale(key string) store.Transaction {
	e.t.Helper()
	tx, err := ledger.GetTransaction(e.ctx, e.db, e.p, key)
	if err != nil {
		e.t.Fatalf("sale %s: %v", key, err)
	}
	return tx
}

// A friend nobody referred, unknown to referd, pays with Alice's code in each
// provider's real payload: the friend becomes Alice's referral and Alice earns her
// 10 % once, though the payment is delivered twice at once.
func TestPromotionCodeAttributesEachProvider(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		provider, file, sale string
		amount               int64
	}{
		{"stripe", "stripe.2023-10-16.invoice.paid.json", "stripe:in_1Ref2310SubInvoice", 2000},
		{"stripe", "stripe.2025-09-30.clover.checkout.session.completed.json", "stripe:pi_3Ref2509OneOffPay", 5000},
		{"stripe", "stripe.2023-10-16.checkout.session.completed.breakdown.json", "stripe:pi_3Ref2310OneOffPay", 5000},
		{"paddle", "paddle.transaction.completed.json", "paddle:txn_01hywqfe6yxhxcsfb4ays8mqt3", 950},
		{"chargebee", "chargebee.payment_succeeded.json", "chargebee:txn_AzqYRySIstMLf6N", 450000},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			e := newPromoEnv(t, true, jobs.Options{})
			ev := e.run(e.store(tc.provider, tc.file, nil))
			if ev.Status != store.EventProcessed || len(ev.TransactionKeys) != 1 || ev.TransactionKeys[0] != tc.sale {
				t.Fatalf("event = %s %v %s", ev.Status, ev.TransactionKeys, ev.Error.String)
			}
			s := e.sale(tc.sale)
			if s.Referrer == nil || s.Referrer.Key != "alice" || s.DiscountCode.String != "ALICE20" || s.Amount != tc.amount {
				t.Errorf("sale = %+v (referrer %+v)", s, s.Referrer)
			}
			buyer, err := store.GetCustomer(e.ctx, e.db, e.p.PK, s.BuyerID, false)
			if err != nil || buyer.Source != tc.provider || buyer.Referrer == nil || buyer.Referrer.Key != "alice" {
				t.Errorf("buyer = %+v, %v", buyer, err)
			}
			if b := e.balance("alice"); b != tc.amount/10 {
				t.Errorf("alice's balance = %d, want %d", b, tc.amount/10)
			}
			if u := e.uses(); u != 1 {
				t.Errorf("uses = %d, want 1", u)
			}
			// A replay changes nothing.
			if _, err := ops.Replay(e.ctx, e.db, ops.ReplayFilter{Status: store.EventProcessed}, nil); err != nil {
				t.Fatal(err)
			}
			if b, u := e.balance("alice"), e.uses(); b != tc.amount/10 || u != 1 {
				t.Errorf("after a replay: balance %d, uses %d", b, u)
			}
		})
	}
}

// Current Stripe invoices name only the discount id: customer.discount.created says
// which promotion code it is, in either order.
func TestPromotionCodeStripeDiscountIDs(t *testing.T) {
	t.Parallel()
	const invoice, discount = "stripe.2025-09-30.clover.invoice.paid.json", "stripe.2025-09-30.clover.customer.discount.created.json"
	const sale = "stripe:in_1Ref2509SubInvoice"
	t.Run("discount first", func(t *testing.T) {
		t.Parallel()
		e := newPromoEnv(t, true, jobs.Options{})
		if ev := e.run(e.store("stripe", discount, nil)); ev.Status != store.EventProcessed {
			t.Fatalf("customer.discount.created: %s %s", ev.Status, ev.Error.String)
		}
		if ev := e.run(e.store("stripe", invoice, nil)); ev.Status != store.EventProcessed {
			t.Fatalf("invoice.paid: %s %s", ev.Status, ev.Error.String)
		}
		if s := e.sale(sale); s.Referrer == nil || s.Referrer.Key != "alice" || e.balance("alice") != 200 || e.uses() != 1 {
			t.Errorf("sale %+v, balance %d, uses %d", s, e.balance("alice"), e.uses())
		}
	})
	t.Run("invoice first", func(t *testing.T) {
		t.Parallel()
		e := newPromoEnv(t, true, jobs.Options{})
		if ev := e.run(e.store("stripe", invoice, nil)); ev.Status != store.EventUnattributed {
			t.Fatalf("invoice.paid before its discount: %s", ev.Status)
		}
		if ev := e.run(e.store("stripe", discount, nil)); ev.Status != store.EventProcessed {
			t.Fatalf("customer.discount.created: %s %s", ev.Status, ev.Error.String)
		}
		if n := e.retry(); n != 1 {
			t.Errorf("retried %d events, want the invoice", n)
		}
		if s := e.sale(sale); s.Referrer == nil || s.Referrer.Key != "alice" || e.balance("alice") != 200 || e.uses() != 1 {
			t.Errorf("sale %+v, balance %d, uses %d", s, e.balance("alice"), e.uses())
		}
	})
	t.Run("code last", func(t *testing.T) {
		t.Parallel()
		e := newPromoEnv(t, false, jobs.Options{})
		if ev := e.run(e.store("stripe", discount, nil)); ev.Status != store.EventProcessed {
			t.Fatalf("customer.discount.created: %s %s", ev.Status, ev.Error.String)
		}
		if ev := e.run(e.store("stripe", invoice, nil)); ev.Status != store.EventUnattributed {
			t.Fatalf("invoice.paid before its code: %s", ev.Status)
		}
		e.createCode() // its Stripe id names the discount learned above
		if n := e.retry(); n != 1 {
			t.Errorf("retried %d events, want the invoice", n)
		}
		if s := e.sale(sale); s.Referrer == nil || s.Referrer.Key != "alice" || e.balance("alice") != 200 || e.uses() != 1 {
			t.Errorf("sale %+v, balance %d, uses %d", s, e.balance("alice"), e.uses())
		}
	})
}

// A payment that arrives before its code is attributed when the code is created:
// a friend unknown to referd (unattributed) and one known but referred by nobody
// (ignored). A replay of such events after the code exists (a backfill) attributes
// them too, once.
func TestPromotionCodeCreatedAfterPayment(t *testing.T) {
	t.Parallel()
	e := newPromoEnv(t, false, jobs.Options{})
	if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, referral.CustomerInput{Key: text("known")}); err != nil {
		t.Fatal(err)
	}
	unknown := e.run(e.store("stripe", "stripe.2023-10-16.invoice.paid.json", nil))
	known := e.run(e.store("paddle", "paddle.transaction.completed.json", func(v map[string]any) {
		v["data"].(map[string]any)["custom_data"] = map[string]any{"customer_key": "known"}
	}))
	if unknown.Status != store.EventUnattributed || known.Status != store.EventIgnored {
		t.Fatalf("before the code: %s, %s", unknown.Status, known.Status)
	}
	e.createCode()
	if n := e.retry(); n != 2 {
		t.Fatalf("creating the code queued %d events, want 2", n)
	}
	for _, key := range []string{"stripe:in_1Ref2310SubInvoice", "paddle:txn_01hywqfe6yxhxcsfb4ays8mqt3"} {
		if s := e.sale(key); s.Referrer == nil || s.Referrer.Key != "alice" {
			t.Errorf("%s: referrer %+v", key, s.Referrer)
		}
	}
	if usd, gbp, u := e.balanceIn("alice", "usd"), e.balanceIn("alice", "gbp"), e.uses(); usd != 200 || gbp != 95 || u != 2 {
		t.Errorf("balance %d usd, %d gbp, uses %d; want 200, 95, 2", usd, gbp, u)
	}
	if n := e.retry(); n != 0 {
		t.Errorf("%d events queued again", n)
	}

	// The backfill: an event the relay never got to, replayed.
	late := e.run(e.store("chargebee", "chargebee.payment_succeeded.json", func(v map[string]any) {
		v["content"].(map[string]any)["invoice"].(map[string]any)["discounts"].([]any)[0].(map[string]any)["entity_id"] = "later-coupon"
	}))
	if late.Status != store.EventUnattributed {
		t.Fatalf("chargebee before its code: %s", late.Status)
	}
	if _, err := e.db.Exec(`INSERT INTO promotion_codes (program_pk, customer_pk, code, chargebee_id, created_at)
		SELECT $1, pk, 'LATER', 'later-coupon', now() FROM customers WHERE program_pk = $1 AND key = 'alice'`, e.p.PK); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if res, err := ops.Replay(e.ctx, e.db, ops.ReplayFilter{}, nil); err != nil || res.Processed != 1 && res.Replayed != 0 {
			t.Fatalf("replay: %+v, %v", res, err)
		}
	}
	if s := e.sale("chargebee:txn_AzqYRySIstMLf6N"); s.Referrer == nil || s.Referrer.Key != "alice" {
		t.Errorf("replayed chargebee sale: referrer %+v", s.Referrer)
	}
	if b := e.balanceIn("alice", "usd"); b != 200+45000 {
		t.Errorf("balance after the backfill %d usd, want %d", b, 200+45000)
	}
}

// Alice paying with her own code earns nothing; a friend referred by someone else
// keeps their referrer; an unknown promotion id falls back to the other rules, or to
// a Resolver when there is one.
func TestPromotionCodeRules(t *testing.T) {
	t.Parallel()
	withKey := func(key string) func(map[string]any) {
		return func(v map[string]any) {
			o := v["data"].(map[string]any)["object"].(map[string]any)
			o["subscription_details"].(map[string]any)["metadata"] = map[string]any{"customer_key": key}
		}
	}
	const file, sale = "stripe.2023-10-16.invoice.paid.json", "stripe:in_1Ref2310SubInvoice"
	t.Run("own code", func(t *testing.T) {
		t.Parallel()
		e := newPromoEnv(t, true, jobs.Options{})
		if ev := e.run(e.store("stripe", file, withKey("alice"))); ev.Status != store.EventIgnored {
			t.Errorf("alice's own code: %s", ev.Status)
		}
		if b, u := e.balance("alice"), e.uses(); b != 0 || u != 0 {
			t.Errorf("balance %d, uses %d", b, u)
		}
	})
	t.Run("referrer kept", func(t *testing.T) {
		t.Parallel()
		e := newPromoEnv(t, true, jobs.Options{})
		if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, referral.CustomerInput{Key: text("friend"),
			ReferringCustomer: &referral.CustomerRefInput{Key: text("ref")}}); err != nil {
			t.Fatal(err)
		}
		e.run(e.store("stripe", file, withKey("friend")))
		if s := e.sale(sale); s.Referrer == nil || s.Referrer.Key != "ref" || e.balance("ref") != 200 || e.balance("alice") != 0 || e.uses() != 0 {
			t.Errorf("referrer %+v; ref %d, alice %d, uses %d", s.Referrer, e.balance("ref"), e.balance("alice"), e.uses())
		}
	})
	unknownPromo := func(v map[string]any) {
		v["data"].(map[string]any)["object"].(map[string]any)["discount"].(map[string]any)["promotion_code"] = "promo_1Unknown"
	}
	t.Run("unknown promotion id", func(t *testing.T) {
		t.Parallel()
		e := newPromoEnv(t, true, jobs.Options{})
		if ev := e.run(e.store("stripe", file, unknownPromo)); ev.Status != store.EventUnattributed {
			t.Errorf("unknown promotion id, unknown friend: %s", ev.Status)
		}
		if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, referral.CustomerInput{Key: text("friend"),
			ReferringCustomer: &referral.CustomerRefInput{Key: text("ref")}}); err != nil {
			t.Fatal(err)
		}
		ev := e.store("stripe", file, func(v map[string]any) { unknownPromo(v); withKey("friend")(v); v["id"] = "evt_other" })
		if ev := e.run(ev); ev.Status != store.EventProcessed || e.balance("ref") != 200 || e.balance("alice") != 0 {
			t.Errorf("unknown promotion id, friend of ref: %s; ref %d, alice %d", ev.Status, e.balance("ref"), e.balance("alice"))
		}
	})
	t.Run("resolver", func(t *testing.T) {
		t.Parallel()
		e := newPromoEnv(t, true, jobs.Options{Promo: resolverFunc(func(provider, id string) (string, bool) {
			return "alice20", provider == "stripe" && id == "promo_1Unknown"
		})})
		if ev := e.run(e.store("stripe", file, unknownPromo)); ev.Status != store.EventProcessed || e.balance("alice") != 200 {
			t.Errorf("resolved promotion id: %s, alice %d", ev.Status, e.balance("alice"))
		}
	})
}

// With the Stripe integration's API key, the workers ask Stripe (here a server that
// answers as Stripe does) which code an unknown promotion id names, once per id; when
// Stripe refuses for good, the event fails with its answer instead of retrying.
func TestPromotionCodeAskedOfStripe(t *testing.T) {
	t.Parallel()
	const file = "stripe.2023-10-16.invoice.paid.json"
	unknownPromo := func(v map[string]any) {
		v["data"].(map[string]any)["object"].(map[string]any)["discount"].(map[string]any)["promotion_code"] = "promo_1Unknown"
	}
	key, err := secrets.ParseKey(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32))))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		status int
		body   string
	}{
		{"answered", 200, `{"id": "promo_1Unknown", "object": "promotion_code", "code": "ALICE20", "active": true}`},
		{"refused", 401, `{"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****p7dc"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var asked atomic.Int32
			stripe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/promotion_codes/promo_1Unknown" || r.Header.Get("Authorization") != "Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc" {
					t.Errorf("asked %s %s (%s)", r.Method, r.URL, r.Header.Get("Authorization"))
				}
				asked.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			t.Cleanup(stripe.Close)
			e := newPromoEnv(t, false, jobs.Options{})
			e.mux = jobs.HandlersWith(e.db, slog.New(slog.NewTextHandler(io.Discard, nil)), jobs.Options{
				Promo: &promo.Stripe{DB: e.db, Key: key, Client: stripeapi.New(stripeapi.Options{URL: stripe.URL})}})
			if _, err := referral.PutIntegration(e.ctx, e.db, e.p, "stripe", referral.IntegrationInput{WebhookSecrets: []string{"whsec_0123456789abcdef"},
				APIKey: referral.Optional[string]{Set: true, Value: "sk_test_4eC39HqLyjWDarjtT1zdp7dc"}}, key); err != nil {
				t.Fatal(err)
			}
			if _, err := promo.Create(e.ctx, e.db, e.p, promo.Input{Customer: &referral.CustomerRefInput{Key: text("alice")}, Code: text("ALICE20")}, nil); err != nil {
				t.Fatal(err)
			}
			ev := e.run(e.store("stripe", file, unknownPromo))
			switch tc.status {
			case 200:
				if ev.Status != store.EventProcessed || e.balance("alice") != 200 || e.uses() != 1 || asked.Load() != 1 {
					t.Errorf("resolved by Stripe: %s, alice %d, uses %d, asked %d times (want once: cached)", ev.Status, e.balance("alice"), e.uses(), asked.Load())
				}
			default:
				if ev.Status != store.EventFailed || !strings.Contains(ev.Error.String, "Invalid API Key provided") || e.balance("alice") != 0 {
					t.Errorf("refused by Stripe: %s %q, alice %d", ev.Status, ev.Error.String, e.balance("alice"))
				}
			}
		})
	}
}

// A current-version invoice names only its discount's id, and no
// customer.discount.created said which code it is: with the API key, the workers read
// the invoice from Stripe with its discounts expanded, and attribute by the code.
func TestPromotionCodeDiscountAskedOfStripe(t *testing.T) {
	t.Parallel()
	key, err := secrets.ParseKey(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32))))
	if err != nil {
		t.Fatal(err)
	}
	stripe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/invoices/in_1Ref2509SubInvoice" || !strings.Contains(r.URL.RawQuery, "=discounts.promotion_code") {
			t.Errorf("asked %s %s", r.Method, r.URL)
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id": "in_1Ref2509SubInvoice", "object": "invoice", "discounts": [{"id": "di_1Promo2509", "object": "discount",
			"coupon": {"id": "co_1", "object": "coupon"}, "promotion_code": {"id": "promo_1Else", "object": "promotion_code", "code": "ALICE20"}}]}`)
	}))
	t.Cleanup(stripe.Close)
	e := newPromoEnv(t, false, jobs.Options{})
	e.mux = jobs.HandlersWith(e.db, slog.New(slog.NewTextHandler(io.Discard, nil)), jobs.Options{
		Promo: &promo.Stripe{DB: e.db, Key: key, Client: stripeapi.New(stripeapi.Options{URL: stripe.URL})}})
	if _, err := referral.PutIntegration(e.ctx, e.db, e.p, "stripe", referral.IntegrationInput{WebhookSecrets: []string{"whsec_0123456789abcdef"},
		APIKey: referral.Optional[string]{Set: true, Value: "sk_test_4eC39HqLyjWDarjtT1zdp7dc"}}, key); err != nil {
		t.Fatal(err)
	}
	if _, err := promo.Create(e.ctx, e.db, e.p, promo.Input{Customer: &referral.CustomerRefInput{Key: text("alice")}, Code: text("ALICE20")}, nil); err != nil {
		t.Fatal(err)
	}
	ev := e.run(e.store("stripe", "stripe.2025-09-30.clover.invoice.paid.json", nil))
	if s := e.sale("stripe:in_1Ref2509SubInvoice"); ev.Status != store.EventProcessed || s.Referrer == nil || s.Referrer.Key != "alice" || e.balance("alice") != 200 || e.uses() != 1 {
		t.Errorf("%s: sale %+v, alice %d, uses %d", ev.Status, s.Referrer, e.balance("alice"), e.uses())
	}
}

type resolverFunc func(provider, id string) (string, bool)

func (f resolverFunc) ResolvePromotionCode(_ context.Context, _ store.Program, provider, id string) (string, bool, error) {
	code, ok := f(provider, id)
	return code, ok, nil
}
