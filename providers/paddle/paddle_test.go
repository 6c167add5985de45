package paddle

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/referd/referd/providers"
)

// upstream is the folder of real Paddle payloads, taken unchanged from Paddle's own
// SDK test suites (see its README).
var upstreamDir = filepath.Join("..", "..", "testdata", "paddle", "upstream")

func upstream(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(upstreamDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		body     []byte
		opt      providers.Options
		wantID   string
		wantType string
		want     []providers.Event
	}{
		{
			name:     "upstream transaction.completed (renewal, custom_data null)",
			body:     upstream(t, "transaction.completed.json"),
			wantID:   "evt_01hywqk7y8qfzj69z3pdvz34qt",
			wantType: "transaction.completed",
			want: []providers.Event{{
				Kind:               providers.Payment,
				ObjectID:           "txn_01hywqfe6yxhxcsfb4ays8mqt3",
				ProviderCustomerID: "ctm_01hszn72m8kqyqm8g1jxwxc3t3",
				Amount:             950,
				Currency:           "gbp",
				Subscription:       true,
				ProductID:          "pro_01hszn726kxbk7y5mt6trc6at6",
				Livemode:           true,
				OccurredAt:         at("2024-05-27T09:55:06.825325Z"),
			}},
		},
		{
			name:     "upstream subscription.created is stored, not acted on",
			body:     upstream(t, "subscription.created.json"),
			wantID:   "evt_01hv9771tccgcm4y810d8zbceh",
			wantType: "subscription.created",
		},
		{
			name:     "upstream customer.created",
			body:     upstream(t, "customer.created.json"),
			wantID:   "evt_01h8441jx8x1q971q9ksksqh82",
			wantType: "customer.created",
			want: []providers.Event{{
				Kind:               providers.CustomerSeen,
				ProviderCustomerID: "ctm_01h8441jn5pcwrfhwh78jqt8hk",
				Email:              "sam@example.com",
				Livemode:           true,
				OccurredAt:         at("2023-08-18T10:46:18.792661Z"),
			}},
		},
		{
			name:     "upstream adjustment.created pending_approval is no refund yet",
			body:     upstream(t, "adjustment.created.json"),
			wantID:   "evt_02h8441jx8x1q971q9ksksqh82",
			wantType: "adjustment.created",
		},
		{
			name:     "one-time payment with customer_key and referral_key",
			body:     testdata(t, "transaction.completed.customer_key.json"),
			wantID:   "evt_01j9referdonetime0000000001",
			wantType: "transaction.completed",
			want: []providers.Event{{
				Kind:               providers.Payment,
				ObjectID:           "txn_01j9referdonetime0000000001",
				ProviderCustomerID: "ctm_01j9referdcustomer00000001",
				CustomerKey:        "cust_42",
				ReferralKey:        "REF-ALICE",
				Amount:             4900,
				Currency:           "usd",
				ProductID:          "pro_01j9referdlifetime00000001",
				Livemode:           true,
				OccurredAt:         at("2025-03-04T10:11:12.123456Z"),
			}},
		},
		{
			name:     "custom key field not present",
			body:     testdata(t, "transaction.completed.customer_key.json"),
			opt:      providers.Options{CustomerKeyField: "user_id"},
			wantID:   "evt_01j9referdonetime0000000001",
			wantType: "transaction.completed",
			want: []providers.Event{{
				Kind:               providers.Payment,
				ObjectID:           "txn_01j9referdonetime0000000001",
				ProviderCustomerID: "ctm_01j9referdcustomer00000001",
				ReferralKey:        "REF-ALICE",
				Amount:             4900,
				Currency:           "usd",
				ProductID:          "pro_01j9referdlifetime00000001",
				Livemode:           true,
				OccurredAt:         at("2025-03-04T10:11:12.123456Z"),
			}},
		},
		{
			name:     "subscription payment",
			body:     testdata(t, "transaction.completed.subscription.json"),
			wantID:   "evt_01j9referdsubscription00001",
			wantType: "transaction.completed",
			want: []providers.Event{{
				Kind:               providers.Payment,
				ObjectID:           "txn_01j9referdsubscription00001",
				ProviderCustomerID: "ctm_01j9referdcustomer00000002",
				CustomerKey:        "cust_43",
				Amount:             2856,
				Currency:           "eur",
				Subscription:       true,
				ProductID:          "pro_01j9referdpro0000000000001",
				Livemode:           true,
				OccurredAt:         at("2025-03-05T08:00:00Z"),
			}},
		},
		{
			name:     "zero-total trial is no payment",
			body:     testdata(t, "transaction.completed.trial_zero.json"),
			wantID:   "evt_01j9referdtrial0000000000001",
			wantType: "transaction.completed",
		},
		{
			name:     "JPY is zero-decimal: 5000 stays 5000; numeric custom key",
			body:     testdata(t, "transaction.completed.jpy.json"),
			wantID:   "evt_01j9referdjpy000000000000001",
			wantType: "transaction.completed",
			want: []providers.Event{{
				Kind:               providers.Payment,
				ObjectID:           "txn_01j9referdjpy000000000000001",
				ProviderCustomerID: "ctm_01j9referdcustomer00000004",
				CustomerKey:        "4711",
				Amount:             5000,
				Currency:           "jpy",
				Livemode:           true,
				OccurredAt:         at("2025-03-06T16:02:03Z"),
			}},
		},
		{
			name:     "transaction.paid with grand_total only, no notification_id",
			body:     testdata(t, "transaction.paid.grand_total.json"),
			wantID:   "evt_01j9referdpaid00000000000001",
			wantType: "transaction.paid",
			want: []providers.Event{{
				Kind:               providers.Payment,
				ObjectID:           "txn_01j9referdpaid00000000000001",
				ProviderCustomerID: "ctm_01j9referdcustomer00000005",
				Amount:             1200,
				Currency:           "gbp",
				ProductID:          "pro_01j9referdgbp0000000000001",
				Livemode:           true,
				OccurredAt:         at("2025-03-08T12:00:00.5Z"),
			}},
		},
		{
			name:     "approved refund",
			body:     testdata(t, "adjustment.updated.approved.json"),
			wantID:   "evt_01j9referdadjapproved0000001",
			wantType: "adjustment.updated",
			want: []providers.Event{{
				Kind:               providers.Refund,
				ObjectID:           "txn_01j9referdonetime0000000001",
				ProviderCustomerID: "ctm_01j9referdcustomer00000001",
				RefundID:           "adj_01j9referdrefund000000000001",
				Amount:             1500,
				Currency:           "usd",
				Livemode:           true,
				OccurredAt:         at("2025-03-09T09:30:00.000001Z"),
			}},
		},
		{
			name:     "pending refund is no event",
			body:     testdata(t, "adjustment.updated.pending.json"),
			wantID:   "evt_01j9referdadjpending00000001",
			wantType: "adjustment.updated",
		},
		{
			name:     "customer.created with custom_data",
			body:     testdata(t, "customer.created.custom_data.json"),
			wantID:   "evt_01j9referdcustomer0000000001",
			wantType: "customer.created",
			want: []providers.Event{{
				Kind:               providers.CustomerSeen,
				ProviderCustomerID: "ctm_01j9referdcustomer00000001",
				Email:              "carol@example.com",
				CustomerKey:        "cust_42",
				Livemode:           true,
				OccurredAt:         at("2025-03-01T00:00:00Z"),
			}},
		},
		{
			name:     "notification_id when event_id is missing",
			body:     []byte(`{"notification_id":"ntf_1","event_type":"customer.updated","occurred_at":"2025-01-01T00:00:00Z","data":{"id":"ctm_1","email":null,"custom_data":"not-an-object"}}`),
			wantID:   "ntf_1",
			wantType: "customer.updated",
			want: []providers.Event{{
				Kind:               providers.CustomerSeen,
				ProviderCustomerID: "ctm_1",
				Livemode:           true,
				OccurredAt:         at("2025-01-01T00:00:00Z"),
			}},
		},
		{
			name:     "rejected and non-refund adjustments are no events",
			body:     []byte(`{"event_id":"evt_r","event_type":"adjustment.updated","data":{"id":"adj_r","action":"credit","status":"approved","transaction_id":"txn_1","currency_code":"USD","totals":{"total":"5"}}}`),
			wantID:   "evt_r",
			wantType: "adjustment.updated",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.body, tc.opt)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.EventID != tc.wantID || got.Type != tc.wantType || !got.Livemode {
				t.Errorf("got id %q type %q livemode %v, want %q %q true", got.EventID, got.Type, got.Livemode, tc.wantID, tc.wantType)
			}
			if len(got.Events) != len(tc.want) || (len(tc.want) > 0 && !reflect.DeepEqual(got.Events, tc.want)) {
				t.Errorf("events:\n got %+v\nwant %+v", got.Events, tc.want)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	tests := map[string]string{
		"not json":             `{"event_id":`,
		"array":                `[]`,
		"null":                 `null`,
		"missing id":           `{"event_type":"transaction.completed","data":{}}`,
		"missing type":         `{"event_id":"evt_1","data":{}}`,
		"bad occurred_at":      `{"event_id":"evt_1","event_type":"x.y","occurred_at":"yesterday"}`,
		"handled without data": `{"event_id":"evt_1","event_type":"transaction.completed"}`,
		"null data":            `{"event_id":"evt_1","event_type":"customer.created","data":null}`,
		"float total":          `{"event_id":"evt_1","event_type":"transaction.completed","data":{"id":"txn_1","currency_code":"USD","details":{"totals":{"total":"9.50"}}}}`,
		"exponent total":       `{"event_id":"evt_1","event_type":"transaction.completed","data":{"id":"txn_1","currency_code":"USD","details":{"totals":{"total":1e3}}}}`,
		"overflowing total":    `{"event_id":"evt_1","event_type":"transaction.completed","data":{"id":"txn_1","currency_code":"USD","details":{"totals":{"total":"99999999999999999999"}}}}`,
		"negative total":       `{"event_id":"evt_1","event_type":"transaction.completed","data":{"id":"txn_1","currency_code":"USD","details":{"totals":{"total":"-5"}}}}`,
		"no totals":            `{"event_id":"evt_1","event_type":"transaction.completed","data":{"id":"txn_1","currency_code":"USD"}}`,
		"no currency":          `{"event_id":"evt_1","event_type":"transaction.completed","data":{"id":"txn_1","details":{"totals":{"total":"5"}}}}`,
		"bad currency":         `{"event_id":"evt_1","event_type":"transaction.completed","data":{"id":"txn_1","currency_code":"US$","details":{"totals":{"total":"5"}}}}`,
		"txn without id":       `{"event_id":"evt_1","event_type":"transaction.completed","data":{"currency_code":"USD","details":{"totals":{"total":"5"}}}}`,
		"refund without txn":   `{"event_id":"evt_1","event_type":"adjustment.updated","data":{"id":"adj_1","action":"refund","status":"approved","currency_code":"USD","totals":{"total":"5"}}}`,
		"customer without id":  `{"event_id":"evt_1","event_type":"customer.created","data":{"email":"a@b.c"}}`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(body), providers.Options{})
			if !errors.Is(err, providers.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestParseAmountIsExact(t *testing.T) {
	// 2^53+1 is not representable as a float64; an exact parse keeps it.
	body := `{"event_id":"evt_1","event_type":"transaction.completed","data":{"id":"txn_1","currency_code":"KRW","details":{"totals":{"total":"9007199254740993"}}}}`
	p, err := Parse([]byte(body), providers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 1 || p.Events[0].Amount != 9007199254740993 || p.Events[0].Currency != "krw" {
		t.Fatalf("got %+v", p.Events)
	}
}

func TestVerify(t *testing.T) {
	body := upstream(t, "transaction.completed.json")
	now := time.Unix(1716803706, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	good := Sign(body, "pdl_ntfset_second", now)
	h1 := strings.TrimPrefix(good[strings.Index(good, ";")+1:], "h1=")
	other := Sign(body, "pdl_ntfset_other", now)
	otherH1 := strings.TrimPrefix(other[strings.Index(other, ";")+1:], "h1=")
	secrets := []string{"pdl_ntfset_first", "pdl_ntfset_second"}

	ok := map[string]struct {
		body   []byte
		header string
		now    time.Time
	}{
		"second of two secrets":       {body, good, now},
		"second of two h1 values":     {body, "ts=" + ts + ";h1=" + otherH1 + ";h1=" + h1, now},
		"spaces and unknown h2":       {body, " ts=" + ts + " ; h2=zz ; h1=" + h1 + " ", now},
		"ts 299 s in the past":        {body, good, now.Add(299 * time.Second)},
		"ts 300 s in the future edge": {body, good, now.Add(-300 * time.Second)},
	}
	for name, tc := range ok {
		t.Run("ok/"+name, func(t *testing.T) {
			if err := Verify(tc.body, tc.header, secrets, tc.now); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}

	tampered := bytes.Replace(body, []byte(`"950"`), []byte(`"951"`), 1)
	if bytes.Equal(tampered, body) {
		t.Fatal("tamper did not change the body")
	}
	bad := map[string]struct {
		body    []byte
		header  string
		secrets []string
		now     time.Time
	}{
		"wrong secret":       {body, good, []string{"pdl_ntfset_first", "pdl_ntfset_third"}, now},
		"no secrets":         {body, good, nil, now},
		"empty secret only":  {body, good, []string{""}, now},
		"tampered body":      {tampered, good, secrets, now},
		"stale ts":           {body, good, secrets, now.Add(301 * time.Second)},
		"future ts":          {body, good, secrets, now.Add(-301 * time.Second)},
		"ts changed":         {body, "ts=" + strconv.FormatInt(now.Unix()+1, 10) + ";h1=" + h1, secrets, now},
		"empty header":       {body, "", secrets, now},
		"no ts":              {body, "h1=" + h1, secrets, now},
		"no h1":              {body, "ts=" + ts, secrets, now},
		"two ts":             {body, "ts=" + ts + ";ts=" + ts + ";h1=" + h1, secrets, now},
		"non-numeric ts":     {body, "ts=abc;h1=" + h1, secrets, now},
		"signed ts":          {body, "ts=+" + ts + ";h1=" + h1, secrets, now},
		"h1 not hex":         {body, "ts=" + ts + ";h1=xyz", secrets, now},
		"h1 short":           {body, "ts=" + ts + ";h1=" + h1[:62], secrets, now},
		"element without =":  {body, "ts=" + ts + ";h1", secrets, now},
		"stripe-style value": {body, "t=" + ts + ",v1=" + h1, secrets, now},
	}
	for name, tc := range bad {
		t.Run("bad/"+name, func(t *testing.T) {
			err := Verify(tc.body, tc.header, tc.secrets, tc.now)
			if !errors.Is(err, providers.ErrSignature) {
				t.Fatalf("err = %v, want ErrSignature", err)
			}
		})
	}
}

// TestVerifyKnownVector checks Sign/Verify against an independently computed digest:
// HMAC-SHA256("secret", "1671552777:{}") computed with openssl.
func TestVerifyKnownVector(t *testing.T) {
	const h = "ts=1671552777;h1=" + knownH1
	if err := Verify([]byte("{}"), h, []string{"secret"}, time.Unix(1671552777, 0)); err != nil {
		t.Fatal(err)
	}
	if got := Sign([]byte("{}"), "secret", time.Unix(1671552777, 0)); got != h {
		t.Fatalf("Sign = %q, want %q", got, h)
	}
}

func fuzzSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, dir := range []string{"testdata", upstreamDir} {
		names, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, b)
		}
	}
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	return seeds
}

func FuzzVerifyParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte(`{"event_id":"e","event_type":"transaction.completed","data":{"id":"t","currency_code":"usd","details":{"totals":{"total":"-0"}}}}`))
	f.Add([]byte(`{"event_id":"e","event_type":"adjustment.updated","data":{"id":"a","action":"refund","status":"approved","transaction_id":"t","currency_code":"USD","totals":{"total":"-5"}}}`))
	now := time.Unix(1700000000, 0)
	secrets := []string{"first", "pdl_ntfset_fuzz"}
	f.Fuzz(func(t *testing.T, body []byte) {
		if err := Verify(body, Sign(body, "pdl_ntfset_fuzz", now), secrets, now); err != nil {
			t.Fatalf("Verify of a correctly signed body: %v", err)
		}
		if Verify(body, Sign(body, "wrong", now), secrets, now) == nil {
			t.Fatal("Verify accepted a body signed with an unconfigured secret")
		}
		p, err := Parse(body, providers.Options{})
		if err != nil {
			if !errors.Is(err, providers.ErrMalformed) {
				t.Fatalf("Parse error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if p.EventID == "" || p.Type == "" {
			t.Fatalf("parsed without id/type: %+v", p)
		}
		for _, ev := range p.Events {
			if ev.Amount < 0 {
				t.Fatalf("negative amount: %+v", ev)
			}
			if ev.Currency != strings.ToLower(ev.Currency) {
				t.Fatalf("currency not lower-case: %+v", ev)
			}
			switch ev.Kind {
			case providers.Payment, providers.Refund:
				if ev.Amount == 0 || ev.ObjectID == "" || len(ev.Currency) != 3 {
					t.Fatalf("incomplete %s: %+v", ev.Kind, ev)
				}
				if ev.Kind == providers.Refund && ev.RefundID == "" {
					t.Fatalf("refund without RefundID: %+v", ev)
				}
			case providers.CustomerSeen:
				if ev.ProviderCustomerID == "" {
					t.Fatalf("customer without id: %+v", ev)
				}
			default:
				t.Fatalf("unknown kind: %+v", ev)
			}
		}
	})
}

const knownH1 = "34ffe9f6a5b1a44ae14b11d3172f63c8f9d288354d1c745da58b40b2e8d861c7"
