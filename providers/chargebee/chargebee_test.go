package chargebee

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/referd/referd/providers"
)

// upstreamDir holds real Chargebee payloads, taken unchanged from a public test suite
// (see its README).
var upstreamDir = filepath.Join("..", "..", "testdata", "chargebee", "upstream")

// readFixture reads a payload: "upstream/NAME" from upstreamDir, any other name from
// this package's testdata.
func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	path := filepath.Join("testdata", name)
	if rest, ok := strings.CutPrefix(name, "upstream/"); ok {
		path = filepath.Join(upstreamDir, rest)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func at(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

type golden struct {
	file string
	opt  providers.Options
	want providers.Parsed
}

func checkGolden(t *testing.T, cases []golden) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			got, err := Parse(readFixture(t, tc.file), tc.opt)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse mismatch\n got: %+v\nwant: %+v", got, tc.want)
			}
		})
	}
}

// Real Chargebee payloads (testdata/chargebee/upstream at the top of the repository, see its README).
func TestParseUpstreamFixtures(t *testing.T) {
	checkGolden(t, []golden{
		{file: "upstream/payment_succeeded.json", want: providers.Parsed{
			EventID: "ev_AzqYRySIstMN16O", Type: "payment_succeeded", Livemode: true,
			Events: []providers.Event{{
				Kind:               providers.Payment,
				ObjectID:           "txn_AzqYRySIstMLf6N",
				ProviderCustomerID: "16BjsrSIh4AdLqkD",
				Email:              "taxes@test.com",
				Amount:             450000,
				Currency:           "usd",
				Subscription:       true,
				ProductID:          "contract-plan",
				Livemode:           true,
				OccurredAt:         at(1607708103),
			}},
		}},
		{file: "upstream/payment_refunded.json", want: providers.Parsed{
			EventID: "ev_3Nl7oGgQqGG0Dl3f", Type: "payment_refunded", Livemode: true,
			Events: []providers.Event{{
				Kind:               providers.Refund,
				ObjectID:           "txn_3Nl7oGgQqGFs2lf", // refunded_txn_id: the original payment
				RefundID:           "txn_3Nl7oGgQqGG07E3V",
				ProviderCustomerID: "3Nl7oGgQqGFprj9",
				Email:              "Benjamin@test.com",
				Amount:             2,
				Currency:           "usd",
				Subscription:       true,
				ProductID:          "no_trial",
				Livemode:           true,
				OccurredAt:         at(1362253267),
			}},
		}},
		{file: "upstream/customer_created.json", want: providers.Parsed{
			EventID: "ev_16CHTnSAxXWqQAg9", Type: "customer_created", Livemode: true,
			Events: []providers.Event{{
				Kind:               providers.CustomerSeen,
				ProviderCustomerID: "16CHTnSAxXWqMAg8",
				Livemode:           true,
				OccurredAt:         at(1600447719),
			}},
		}},
		{file: "upstream/invoice_generated.json", want: providers.Parsed{
			EventID: "ev_16CHTnSAx2s7J5Kv", Type: "invoice_generated", Livemode: true}},
		{file: "upstream/subscription_created.json", want: providers.Parsed{
			EventID: "ev_AzqgumSAxXl56AxY", Type: "subscription_created", Livemode: true}},
		{file: "upstream/subscription_renewed.json", want: providers.Parsed{
			EventID: "ev_16BgPKSClXogU2Eif", Type: "subscription_renewed", Livemode: true}},
	})
}

// The upstream refund also links to its payment through credit_note → invoice; the
// fallback must reach the same payment as refunded_txn_id.
func TestParseUpstreamRefundFallbacks(t *testing.T) {
	var env map[string]any
	if err := json.Unmarshal(readFixture(t, "upstream/payment_refunded.json"), &env); err != nil {
		t.Fatal(err)
	}
	txn := env["content"].(map[string]any)["transaction"].(map[string]any)
	delete(txn, "refunded_txn_id")
	body, _ := json.Marshal(env)
	got, err := Parse(body, providers.Options{})
	if err != nil {
		t.Fatalf("via invoice: %v", err)
	}
	if len(got.Events) != 1 || got.Events[0].ObjectID != "txn_3Nl7oGgQqGFs2lf" {
		t.Fatalf("via invoice: got %+v", got.Events)
	}

	txn["linked_payments"] = []any{map[string]any{"txn_id": "txn_from_linked_payments", "txn_status": "success"}}
	body, _ = json.Marshal(env)
	got, err = Parse(body, providers.Options{})
	if err != nil {
		t.Fatalf("via linked_payments: %v", err)
	}
	if len(got.Events) != 1 || got.Events[0].ObjectID != "txn_from_linked_payments" {
		t.Fatalf("via linked_payments: got %+v", got.Events)
	}
}

// Payloads the project writes for every event type it handles.
func TestParseProjectFixtures(t *testing.T) {
	checkGolden(t, []golden{
		{file: "payment_succeeded_meta.json", want: providers.Parsed{
			EventID: "ev_referd_ps_meta_1", Type: "payment_succeeded", Livemode: true,
			Events: []providers.Event{{
				Kind:               providers.Payment,
				ObjectID:           "txn_referd_meta_1",
				ProviderCustomerID: "cb_cust_meta",
				Email:              "ada@example.com",
				CustomerKey:        "cust_ada",
				ReferralKey:        "ref_bob",
				Amount:             4900,
				Currency:           "eur",
				Subscription:       true,
				ProductID:          "pro-monthly",
				Livemode:           true,
				OccurredAt:         at(1767225600),
			}},
		}},
		{file: "payment_succeeded_cf.json", want: providers.Parsed{
			EventID: "ev_referd_ps_cf_1", Type: "payment_succeeded", Livemode: true,
			Events: []providers.Event{{
				Kind:               providers.Payment,
				ObjectID:           "txn_referd_cf_1",
				ProviderCustomerID: "cb_cust_cf",
				Email:              "grace@example.com",
				CustomerKey:        "cust_grace",
				ReferralKey:        "ref_alan",
				Amount:             1999,
				Currency:           "usd",
				Livemode:           true,
				OccurredAt:         at(1767229200),
			}},
		}},
		{file: "payment_succeeded_zero.json", want: providers.Parsed{
			EventID: "ev_referd_ps_zero_1", Type: "payment_succeeded", Livemode: true}},
		{file: "payment_succeeded_jpy.json", want: providers.Parsed{
			EventID: "ev_referd_ps_jpy_1", Type: "payment_succeeded", Livemode: true,
			Events: []providers.Event{{
				Kind:               providers.Payment,
				ObjectID:           "txn_referd_jpy_1",
				ProviderCustomerID: "cb_cust_jp",
				Email:              "hanako@example.jp",
				CustomerKey:        "cust_hanako",
				Amount:             5000,
				Currency:           "jpy",
				Subscription:       true,
				Livemode:           true,
				OccurredAt:         at(1767236400),
			}},
		}},
		{file: "payment_refunded_partial.json", want: providers.Parsed{
			EventID: "ev_referd_pr_partial_1", Type: "payment_refunded", Livemode: true,
			Events: []providers.Event{{
				Kind:               providers.Refund,
				ObjectID:           "txn_referd_meta_1",
				RefundID:           "txn_referd_refund_1",
				ProviderCustomerID: "cb_cust_meta",
				Email:              "ada@example.com",
				CustomerKey:        "cust_ada",
				Amount:             1500,
				Currency:           "eur",
				Cumulative:         false,
				Subscription:       true,
				Livemode:           true,
				OccurredAt:         at(1767322800),
			}},
		}},
		{file: "payment_refunded_via_invoice.json", want: providers.Parsed{
			EventID: "ev_referd_pr_inv_1", Type: "payment_refunded", Livemode: true,
			Events: []providers.Event{{
				Kind:               providers.Refund,
				ObjectID:           "txn_referd_cf_1",
				RefundID:           "txn_referd_refund_2",
				ProviderCustomerID: "cb_cust_cf",
				Email:              "grace@example.com",
				CustomerKey:        "cust_grace",
				Amount:             1999,
				Currency:           "usd",
				Livemode:           true,
				OccurredAt:         at(1767326400),
			}},
		}},
		{file: "customer_created.json", want: providers.Parsed{
			EventID: "ev_referd_cc_1", Type: "customer_created", Livemode: true,
			Events: []providers.Event{{
				Kind:               providers.CustomerSeen,
				ProviderCustomerID: "cb_cust_meta",
				Email:              "ada@example.com",
				CustomerKey:        "cust_ada",
				ReferralKey:        "ref_bob",
				Livemode:           true,
				OccurredAt:         at(1767139200),
			}},
		}},
		{file: "customer_changed.json", want: providers.Parsed{
			EventID: "ev_referd_cch_1", Type: "customer_changed", Livemode: true,
			Events: []providers.Event{{
				Kind:               providers.CustomerSeen,
				ProviderCustomerID: "cb_cust_cf",
				Email:              "grace@example.com",
				CustomerKey:        "cust_grace",
				Livemode:           true,
				OccurredAt:         at(1767142800),
			}},
		}},
	})
}

func TestParseCustomKeyField(t *testing.T) {
	cases := []struct {
		name, customer, field, want string
	}{
		{"meta", `{"id":"c1","meta_data":{"partner_id":"p1"}}`, "partner_id", "p1"},
		{"meta number", `{"id":"c1","meta_data":{"partner_id":42}}`, "partner_id", "42"},
		{"meta as JSON string", `{"id":"c1","meta_data":"{\"partner_id\":\"p2\"}"}`, "partner_id", "p2"},
		{"cf field", `{"id":"c1","cf_partner_id":"p3"}`, "partner_id", "p3"},
		{"cf prefix given", `{"id":"c1","cf_partner_id":"p4"}`, "cf_partner_id", "p4"},
		{"meta wins over cf", `{"id":"c1","meta_data":{"partner_id":"m"},"cf_partner_id":"c"}`, "partner_id", "m"},
		{"empty meta falls back to cf", `{"id":"c1","meta_data":{"partner_id":""},"cf_partner_id":"c"}`, "partner_id", "c"},
		{"default field ignores others", `{"id":"c1","meta_data":{"partner_id":"x"}}`, "", ""},
		{"object value ignored", `{"id":"c1","meta_data":{"partner_id":{"a":1}}}`, "partner_id", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"id":"ev_1","occurred_at":1,"event_type":"customer_changed","content":{"customer":` + tc.customer + `}}`
			got, err := Parse([]byte(body), providers.Options{CustomerKeyField: tc.field})
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Events) != 1 || got.Events[0].CustomerKey != tc.want {
				t.Fatalf("got %+v, want CustomerKey %q", got.Events, tc.want)
			}
		})
	}
}

func TestParseSubscriptionKeyFallback(t *testing.T) {
	body := `{"id":"ev_1","occurred_at":1,"event_type":"payment_succeeded","content":{
		"transaction":{"id":"txn_1","customer_id":"c1","amount":100,"currency_code":"GBP","status":"success"},
		"customer":{"id":"c1"},
		"subscription":{"id":"s1","plan_id":"basic","meta_data":{"customer_key":"k_sub"},"cf_referral_key":"r_sub"}}}`
	got, err := Parse([]byte(body), providers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ev := got.Events[0]
	if ev.CustomerKey != "k_sub" || ev.ReferralKey != "r_sub" || !ev.Subscription || ev.ProductID != "basic" || ev.Currency != "gbp" {
		t.Fatalf("got %+v", ev)
	}
}

func TestParseNoEvents(t *testing.T) {
	for name, body := range map[string]string{
		"failed payment": `{"id":"e","event_type":"payment_succeeded","content":{"transaction":{"id":"t","amount":100,"currency_code":"USD","status":"failure"}}}`,
		"unknown type":   `{"id":"e","event_type":"subscription_cancelled","content":"anything"}`,
		"no content":     `{"id":"e","event_type":"invoice_generated"}`,
		"zero refund":    `{"id":"e","event_type":"payment_refunded","content":{"transaction":{"id":"t","amount":0,"currency_code":"USD"}}}`,
		"missing amount": `{"id":"e","event_type":"payment_succeeded","content":{"transaction":{"id":"t","currency_code":"USD"}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Parse([]byte(body), providers.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Events) != 0 || got.EventID != "e" {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	txn := func(fields string) string {
		return `{"id":"e","occurred_at":1,"event_type":"payment_succeeded","content":{"transaction":{` + fields + `}}}`
	}
	cases := map[string]string{
		"empty":              ``,
		"truncated":          `{"id":"e"`,
		"null":               `null`,
		"array":              `[]`,
		"trailing data":      `{"id":"e","event_type":"x"} {}`,
		"trailing brace":     `{"id":"e","event_type":"x"}}`,
		"no id":              `{"event_type":"payment_succeeded"}`,
		"no event_type":      `{"id":"e"}`,
		"id not string":      `{"id":1,"event_type":"x"}`,
		"bad occurred_at":    `{"id":"e","occurred_at":"soon","event_type":"x"}`,
		"float occurred_at":  `{"id":"e","occurred_at":1.5,"event_type":"x"}`,
		"no transaction":     `{"id":"e","event_type":"payment_succeeded","content":{}}`,
		"null transaction":   `{"id":"e","event_type":"payment_succeeded","content":{"transaction":null}}`,
		"no transaction id":  txn(`"amount":100,"currency_code":"USD"`),
		"float amount":       txn(`"id":"t","amount":1.5,"currency_code":"USD"`),
		"exp amount":         txn(`"id":"t","amount":1e3,"currency_code":"USD"`),
		"negative amount":    txn(`"id":"t","amount":-100,"currency_code":"USD"`),
		"huge amount":        txn(`"id":"t","amount":99999999999999999999,"currency_code":"USD"`),
		"bool amount":        txn(`"id":"t","amount":true,"currency_code":"USD"`),
		"no currency":        txn(`"id":"t","amount":100`),
		"bad currency":       txn(`"id":"t","amount":100,"currency_code":"US"`),
		"non-ascii currency": txn(`"id":"t","amount":100,"currency_code":"ÜSD"`),
		"content not object": `{"id":"e","event_type":"payment_succeeded","content":[1]}`,
		"customer no id":     `{"id":"e","event_type":"customer_created","content":{"customer":{"email":"a@b.c"}}}`,
		"customer not obj":   `{"id":"e","event_type":"customer_created","content":{"customer":"c1"}}`,
		"unlinked refund":    string(readFixture(t, "payment_refunded_unlinked.json")),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(body), providers.Options{})
			if !errors.Is(err, providers.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestVerify(t *testing.T) {
	const user, pass = "referd", "s3cret:with:colons"
	if err := Verify(basic(user, pass), user, pass); err != nil {
		t.Fatalf("right credentials: %v", err)
	}
	if err := Verify("  basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)), user, pass); err != nil {
		t.Fatalf("scheme is case-insensitive: %v", err)
	}
	bad := map[string]string{
		"wrong password":   basic(user, "nope"),
		"wrong user":       basic("admin", pass),
		"both wrong":       basic("admin", "nope"),
		"password prefix":  basic(user, "s3cret"),
		"password longer":  basic(user, pass+"x"),
		"missing header":   "",
		"scheme only":      "Basic",
		"empty creds":      "Basic ",
		"malformed base64": "Basic !!!not-base64!!!",
		"unpadded base64":  "Basic " + base64.RawStdEncoding.EncodeToString([]byte(user+":"+pass+"x")),
		"no colon":         "Basic " + base64.StdEncoding.EncodeToString([]byte(user+pass)),
		"bearer":           "Bearer x",
		"bearer creds":     "Bearer " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)),
		"raw creds":        user + ":" + pass,
	}
	for name, h := range bad {
		t.Run(name, func(t *testing.T) {
			if err := Verify(h, user, pass); !errors.Is(err, providers.ErrSignature) {
				t.Fatalf("err = %v, want ErrSignature", err)
			}
		})
	}
	t.Run("unconfigured password", func(t *testing.T) {
		if err := Verify(basic("", ""), "", ""); !errors.Is(err, providers.ErrSignature) {
			t.Fatalf("empty configured credentials verified: %v", err)
		}
	})
	t.Run("empty user configured", func(t *testing.T) {
		if err := Verify(basic("", pass), "", pass); err != nil {
			t.Fatalf("empty user, right password: %v", err)
		}
		if err := Verify(basic("x", pass), "", pass); !errors.Is(err, providers.ErrSignature) {
			t.Fatalf("wrong user accepted: %v", err)
		}
	})
}

func fixtureSeeds(f *testing.F) {
	for _, dir := range []string{"testdata", upstreamDir} {
		files, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil || len(files) == 0 {
			f.Fatalf("no fixtures in %s: %v", dir, err)
		}
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b, "")
			f.Add(b, "partner_id")
		}
	}
}

func FuzzParse(f *testing.F) {
	fixtureSeeds(f)
	f.Add([]byte(`{"id":"e","event_type":"payment_succeeded","content":{"transaction":{"id":"t","amount":"100","currency_code":"usd"}}}`), "")
	f.Fuzz(func(t *testing.T, body []byte, keyField string) {
		got, err := Parse(body, providers.Options{CustomerKeyField: keyField})
		if err != nil {
			if !errors.Is(err, providers.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if got.EventID == "" || got.Type == "" {
			t.Fatalf("parsed without id/type: %+v", got)
		}
		for _, ev := range got.Events {
			switch ev.Kind {
			case providers.Payment, providers.Refund:
				if ev.Amount <= 0 {
					t.Fatalf("non-positive amount: %+v", ev)
				}
				if len(ev.Currency) != 3 || ev.Currency != strings.ToLower(ev.Currency) {
					t.Fatalf("bad currency: %+v", ev)
				}
				if ev.ObjectID == "" {
					t.Fatalf("money event without ObjectID: %+v", ev)
				}
				if ev.Kind == providers.Refund && (ev.RefundID == "" || ev.Cumulative) {
					t.Fatalf("bad refund: %+v", ev)
				}
			case providers.CustomerSeen:
				if ev.ProviderCustomerID == "" || ev.Amount != 0 {
					t.Fatalf("bad customer event: %+v", ev)
				}
			default:
				t.Fatalf("unknown kind: %+v", ev)
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	const user, pass = "referd", "s3cret"
	f.Add(basic(user, pass), user, pass)
	f.Add("Bearer x", user, pass)
	f.Add("Basic !!!", user, pass)
	f.Add(basic("a:b", "c"), "a", "b:c")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, header, u, p string) {
		err := Verify(header, u, p)
		if err != nil {
			if !errors.Is(err, providers.ErrSignature) {
				t.Fatalf("error %v does not wrap ErrSignature", err)
			}
			return
		}
		// Only the exact configured credentials pass.
		scheme, cred, _ := strings.Cut(strings.TrimSpace(header), " ")
		raw, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		if !strings.EqualFold(scheme, "basic") || derr != nil || p == "" {
			t.Fatalf("accepted %q for %q:%q", header, u, p)
		}
		gu, gp, ok := strings.Cut(string(raw), ":")
		if !ok || gu != u || gp != p {
			t.Fatalf("accepted %q (%q:%q) for %q:%q", header, gu, gp, u, p)
		}
	})
}
