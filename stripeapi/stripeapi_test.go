package stripeapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	stripe "github.com/stripe/stripe-go/v76"

	"github.com/referd/referd/stripeapi"
)

const key = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"

// request is what the recording server saw of one request.
type request struct {
	Method, Path string
	Form         url.Values // the body's form, or the query of a GET
	Header       http.Header
}

// recorder is a stand-in for Stripe's API that answers each request with answer and
// records it: it shows what stripe-mock cannot (headers, which requests were made).
type recorder struct {
	mu   sync.Mutex
	reqs []request
	srv  *httptest.Server
}

func record(t *testing.T, answer func(r request) (int, string)) (*recorder, *stripeapi.Client) {
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		if r.Method == http.MethodGet {
			form = r.URL.Query()
		}
		req := request{Method: r.Method, Path: r.URL.Path, Form: form, Header: r.Header.Clone()}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, req)
		rec.mu.Unlock()
		status, out := answer(req)
		if strings.Contains(out, `"replayed": true`) {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_test")
		w.WriteHeader(status)
		io.WriteString(w, out)
	}))
	t.Cleanup(rec.srv.Close)
	return rec, stripeapi.New(stripeapi.Options{URL: rec.srv.URL, Retries: -1})
}

func (r *recorder) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

// stripeAnswers answers like Stripe: a coupon, a promotion code, its id's object.
func stripeAnswers(r request) (int, string) {
	switch {
	case r.Method == "POST" && r.Path == "/v1/coupons":
		return 200, `{"id": "co_1", "object": "coupon"}`
	case r.Method == "POST" && r.Path == "/v1/promotion_codes":
		return 200, fmt.Sprintf(`{"id": "promo_1", "object": "promotion_code", "code": %q, "coupon": {"id": %q}}`, r.Form.Get("code"), r.Form.Get("coupon"))
	case r.Method == "GET" && strings.HasPrefix(r.Path, "/v1/promotion_codes/"):
		return 200, `{"id": "` + strings.TrimPrefix(r.Path, "/v1/promotion_codes/") + `", "object": "promotion_code", "code": "ANNA10"}`
	}
	return 404, `{"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}}`
}

func TestCreatePromotionCodeRequests(t *testing.T) {
	t.Parallel()
	cases := []struct {
		d    stripeapi.Discount
		want url.Values
	}{
		{stripeapi.Discount{Type: stripeapi.Percent, Percent: 12.5, Duration: stripeapi.Once},
			url.Values{"percent_off": {"12.5000"}, "duration": {"once"}, "name": {"ANNA10"}, "metadata[referd_code]": {"ANNA10"}}},
		{stripeapi.Discount{Type: stripeapi.Fixed, AmountOff: 1050, Currency: "USD", Duration: stripeapi.Repeating, DurationInMonths: 3},
			url.Values{"amount_off": {"1050"}, "currency": {"usd"}, "duration": {"repeating"}, "duration_in_months": {"3"}, "name": {"ANNA10"}, "metadata[referd_code]": {"ANNA10"}}},
	}
	for _, c := range cases {
		rec, client := record(t, stripeAnswers)
		ctx := context.Background()
		for try := 0; try < 2; try++ { // a retried create, with the same key
			promo, coupon, err := client.CreatePromotionCode(ctx, key, c.d, "ANNA10", "pc_42")
			if err != nil || promo != "promo_1" || coupon != "co_1" {
				t.Fatalf("CreatePromotionCode(%+v) = %q, %q, %v", c.d, promo, coupon, err)
			}
		}
		reqs := rec.requests()
		if len(reqs) != 4 {
			t.Fatalf("%d requests, want 4: %+v", len(reqs), reqs)
		}
		for i, r := range reqs {
			wantPath, wantKey := "/v1/coupons", "pc_42:coupon"
			if i%2 == 1 {
				wantPath, wantKey = "/v1/promotion_codes", "pc_42:promo"
			}
			if r.Method != "POST" || r.Path != wantPath {
				t.Errorf("request %d: %s %s, want POST %s", i, r.Method, r.Path, wantPath)
			}
			if got := r.Header.Get("Idempotency-Key"); got != wantKey {
				t.Errorf("request %d: Idempotency-Key %q, want %q", i, got, wantKey)
			}
			if got := r.Header.Get("Stripe-Version"); got != "2023-10-16" {
				t.Errorf("request %d: Stripe-Version %q", i, got)
			}
			if got := r.Header.Get("Authorization"); got != "Bearer "+key {
				t.Errorf("request %d: Authorization %q", i, got)
			}
			if i%2 == 0 && r.Form.Encode() != c.want.Encode() {
				t.Errorf("coupon form %s, want %s", r.Form.Encode(), c.want.Encode())
			}
			if i%2 == 1 && r.Form.Encode() != (url.Values{"coupon": {"co_1"}, "code": {"ANNA10"}}).Encode() {
				t.Errorf("promotion code form %s", r.Form.Encode())
			}
		}
	}
}

// The version referd pins is the one stripe-go sends.
func TestAPIVersionIsStripeGos(t *testing.T) {
	if stripe.APIVersion != stripeapi.APIVersion {
		t.Errorf("stripe-go speaks %s, stripeapi.APIVersion is %s", stripe.APIVersion, stripeapi.APIVersion)
	}
}

func TestCreatePromotionCodeStripeRefuses(t *testing.T) {
	t.Parallel()
	d := stripeapi.Discount{Type: stripeapi.Percent, Percent: 10, Duration: stripeapi.Forever}
	ctx := context.Background()

	// A code already in use: the error carries Stripe's message, and the coupon
	// made for it is deleted.
	rec, client := record(t, func(r request) (int, string) {
		if r.Path == "/v1/promotion_codes" {
			return 400, `{"error": {"type": "invalid_request_error", "code": "resource_already_exists", "param": "code", "message": "An active promotion code with ` + "`code: ANNA10`" + ` already exists."}}`
		}
		if r.Method == "DELETE" {
			return 200, `{"id": "co_1", "object": "coupon", "deleted": true}`
		}
		return stripeAnswers(r)
	})
	_, _, err := client.CreatePromotionCode(ctx, key, d, "ANNA10", "k")
	var se *stripeapi.Error
	if !errors.As(err, &se) {
		t.Fatalf("err = %#v, want *stripeapi.Error", err)
	}
	if se.Status != 400 || se.Code != "resource_already_exists" || se.Param != "code" || se.RequestID != "req_test" ||
		!strings.Contains(se.Message, "already exists") || se.Temporary() || se.Op != "create promotion code ANNA10" {
		t.Errorf("error %+v", se)
	}
	if !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("Error() = %q", err.Error())
	}
	if reqs := rec.requests(); len(reqs) != 3 || reqs[2].Method != "DELETE" || reqs[2].Path != "/v1/coupons/co_1" {
		t.Errorf("requests %+v: want the coupon deleted", reqs)
	}

	// A coupon Stripe answered from an earlier call with the same key may back a
	// promotion code that exists: it is not deleted.
	for _, refusal := range []struct{ coupon, promo string }{
		{`"replayed": true`, `"type": "invalid_request_error", "code": "resource_already_exists", "message": "An active promotion code with that code already exists."`},
		{`"replayed": false`, `"type": "idempotency_error", "message": "Keys for idempotent requests can only be used with the same parameters they were first used with."`},
	} {
		rec, client = record(t, func(r request) (int, string) {
			if r.Path == "/v1/coupons" {
				return 200, `{"id": "co_1", "object": "coupon", ` + refusal.coupon + `}`
			}
			if r.Path == "/v1/promotion_codes" {
				return 400, `{"error": {` + refusal.promo + `}}`
			}
			return stripeAnswers(r)
		})
		_, _, err = client.CreatePromotionCode(ctx, key, d, "OTHER", "k")
		if !errors.As(err, &se) || se.Status != 400 || se.Temporary() {
			t.Errorf("%s: %#v", refusal.promo, err)
		}
		if reqs := rec.requests(); len(reqs) != 2 {
			t.Errorf("coupon %s, promotion code %s: requests %+v, want the coupon kept", refusal.coupon, refusal.promo, reqs)
		}
	}

	// A wrong key: 401 at the first call, nothing else is tried.
	rec, client = record(t, func(request) (int, string) {
		return 401, `{"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****dc"}}`
	})
	_, _, err = client.CreatePromotionCode(ctx, key, d, "ANNA10", "k")
	if !errors.As(err, &se) || se.Status != 401 || se.Op != "create coupon" || !strings.Contains(se.Message, "Invalid API Key") || se.Temporary() {
		t.Errorf("401: %#v", err)
	}
	if n := len(rec.requests()); n != 1 {
		t.Errorf("%d requests after a 401", n)
	}

	// Stripe down: temporary, the coupon kept for the retry (same idempotency key).
	rec, client = record(t, func(r request) (int, string) {
		if r.Path == "/v1/promotion_codes" {
			return 500, `{"error": {"type": "api_error", "message": "Something went wrong"}}`
		}
		return stripeAnswers(r)
	})
	_, _, err = client.CreatePromotionCode(ctx, key, d, "ANNA10", "k")
	if !errors.As(err, &se) || se.Status != 500 || !se.Temporary() {
		t.Errorf("500: %#v", err)
	}
	if n := len(rec.requests()); n != 2 {
		t.Errorf("%d requests after a 500, want no delete", n)
	}

	// Nobody there: Status 0, temporary.
	rec.srv.Close()
	_, _, err = client.CreatePromotionCode(ctx, key, d, "ANNA10", "k")
	if !errors.As(err, &se) || se.Status != 0 || !se.Temporary() || se.Message == "" {
		t.Errorf("no answer: %#v", err)
	}

	// An invalid discount is not sent.
	_, _, err = client.CreatePromotionCode(ctx, key, stripeapi.Discount{Type: "half"}, "X", "k")
	var ve *stripeapi.ValidationError
	if !errors.As(err, &ve) || len(ve.Fields["discount.type"]) != 1 {
		t.Errorf("invalid discount: %#v", err)
	}
}

func TestResolvePromotionCodeCaches(t *testing.T) {
	t.Parallel()
	rec, client := record(t, func(r request) (int, string) {
		if r.Path == "/v1/promotion_codes/promo_gone" {
			return 404, `{"error": {"type": "invalid_request_error", "code": "resource_missing", "param": "id", "message": "No such promotion code: 'promo_gone'"}}`
		}
		return stripeAnswers(r)
	})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if code, err := client.ResolvePromotionCode(ctx, key, "promo_9"); err != nil || code != "ANNA10" {
			t.Fatalf("ResolvePromotionCode = %q, %v", code, err)
		}
		_, err := client.ResolvePromotionCode(ctx, key, "promo_gone")
		var se *stripeapi.Error
		if !errors.As(err, &se) || !se.NotFound() || se.Code != "resource_missing" || !strings.Contains(se.Message, "No such promotion code") {
			t.Fatalf("a missing promotion code: %#v", err)
		}
	}
	// Another account (key) asks again.
	if _, err := client.ResolvePromotionCode(ctx, "sk_test_other0000000000", "promo_9"); err != nil {
		t.Fatal(err)
	}
	reqs := rec.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want one per id and account: %+v", len(reqs), reqs)
	}
	if reqs[0].Header.Get("Stripe-Version") != "2023-10-16" || reqs[0].Header.Get("Idempotency-Key") != "" {
		t.Errorf("GET headers %v", reqs[0].Header)
	}

	// A miss is kept only MissTTL: here, not at all.
	rec, client = record(t, func(request) (int, string) {
		return 404, `{"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such promotion code"}}`
	})
	client = stripeapi.New(stripeapi.Options{URL: rec.srv.URL, Retries: -1, MissTTL: -1})
	client.ResolvePromotionCode(ctx, key, "promo_gone")
	client.ResolvePromotionCode(ctx, key, "promo_gone")
	if n := len(rec.requests()); n != 2 {
		t.Errorf("%d requests with MissTTL < 0, want 2", n)
	}
}

func TestInvoiceDiscountCodes(t *testing.T) {
	t.Parallel()
	rec, client := record(t, func(r request) (int, string) {
		if r.Path == "/v1/invoices/in_1" {
			return 200, `{"id": "in_1", "object": "invoice", "discounts": [
				{"id": "di_1", "object": "discount", "coupon": {"id": "co_1"}, "promotion_code": {"id": "promo_1", "object": "promotion_code", "code": "ANNA10"}},
				{"id": "di_2", "object": "discount", "coupon": {"id": "co_2"}, "promotion_code": "promo_2"},
				{"id": "di_3", "object": "discount", "coupon": {"id": "co_3"}, "promotion_code": null}]}`
		}
		return stripeAnswers(r)
	})
	ctx := context.Background()
	ds, err := client.InvoiceDiscountCodes(ctx, key, "in_1")
	if err != nil {
		t.Fatal(err)
	}
	want := []stripeapi.AppliedDiscount{
		{ID: "di_1", CouponID: "co_1", PromotionCodeID: "promo_1", Code: "ANNA10"},
		{ID: "di_2", CouponID: "co_2", PromotionCodeID: "promo_2", Code: "ANNA10"}, // read with GET
		{ID: "di_3", CouponID: "co_3"},
	}
	if fmt.Sprint(ds) != fmt.Sprint(want) {
		t.Errorf("InvoiceDiscountCodes = %+v\nwant %+v", ds, want)
	}
	reqs := rec.requests()
	if len(reqs) != 2 || reqs[1].Path != "/v1/promotion_codes/promo_2" {
		t.Fatalf("requests %+v", reqs)
	}
	if got := reqs[0].Form; got.Get("expand[0]") != "discounts" || got.Get("expand[1]") != "discounts.promotion_code" {
		t.Errorf("query %v, want the discounts and their promotion codes expanded", got)
	}
	// What the invoice said is cached: promo_1 needs no call.
	if code, err := client.ResolvePromotionCode(ctx, key, "promo_1"); err != nil || code != "ANNA10" || len(rec.requests()) != 2 {
		t.Errorf("promo_1 after the invoice: %q, %v, %d requests", code, err, len(rec.requests()))
	}
	if _, err := client.InvoiceDiscountCodes(ctx, key, "in_gone"); err == nil {
		t.Error("a missing invoice: no error")
	}
}

func TestValidateDiscount(t *testing.T) {
	t.Parallel()
	cases := []struct {
		d      stripeapi.Discount
		fields []string
	}{
		{stripeapi.Discount{Type: "percent", Percent: 100, Duration: "once"}, nil},
		{stripeapi.Discount{Type: "percent", Percent: 0.01, Duration: "forever"}, nil},
		{stripeapi.Discount{Type: "fixed", AmountOff: 1, Currency: "eur", Duration: "repeating", DurationInMonths: 12}, nil},
		{stripeapi.Discount{Type: "percent", Percent: 0, Duration: "once"}, []string{"discount.amount"}},
		{stripeapi.Discount{Type: "percent", Percent: 100.5, Duration: "once"}, []string{"discount.amount"}},
		{stripeapi.Discount{Type: "percent", Percent: 10.125, Duration: "once"}, []string{"discount.amount"}},
		{stripeapi.Discount{Type: "percent", Percent: -5, Duration: "once"}, []string{"discount.amount"}},
		{stripeapi.Discount{Type: "fixed", AmountOff: 0, Currency: "usd", Duration: "once"}, []string{"discount.amount"}},
		{stripeapi.Discount{Type: "fixed", AmountOff: 100, Duration: "once"}, []string{"discount.currency"}},
		{stripeapi.Discount{Type: "fixed", AmountOff: 100, Currency: "dollars", Duration: "once"}, []string{"discount.currency"}},
		{stripeapi.Discount{Type: "percent", Percent: 5, Duration: "repeating"}, []string{"discount.duration_in_months"}},
		{stripeapi.Discount{Type: "percent", Percent: 5, Duration: "once", DurationInMonths: 2}, []string{"discount.duration_in_months"}},
		{stripeapi.Discount{Type: "percent", Percent: 5}, []string{"discount.duration"}},
		{stripeapi.Discount{}, []string{"discount.duration", "discount.type"}},
	}
	for _, c := range cases {
		err := stripeapi.ValidateDiscount(c.d, "discount.")
		var got []string
		var ve *stripeapi.ValidationError
		if errors.As(err, &ve) {
			for f := range ve.Fields {
				got = append(got, f)
			}
		} else if err != nil {
			t.Errorf("%+v: %T", c.d, err)
		}
		if fmt.Sprint(slices.Sorted(slices.Values(got))) != fmt.Sprint(c.fields) {
			t.Errorf("ValidateDiscount(%+v) fields %v, want %v (%v)", c.d, got, c.fields, err)
		}
	}
}

func TestCheckAndMaskAPIKey(t *testing.T) {
	t.Parallel()
	for _, k := range []string{key, "rk_live_51Habc0123456789", "sk_live_" + strings.Repeat("a", 99)} {
		if msg := stripeapi.CheckAPIKey(k); msg != "" {
			t.Errorf("CheckAPIKey(%q) = %q", k, msg)
		}
	}
	for _, k := range []string{"", "pk_test_4eC39HqLyjWDarjtT1zdp7dc", "sk_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_short",
		"sk_test_4eC39Hq LyjWDarjtT1zdp7dc", "whsec_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_" + strings.Repeat("a", 248), "sk_prod_4eC39HqLyjWDarjtT1zdp7dc"} {
		if msg := stripeapi.CheckAPIKey(k); msg == "" {
			t.Errorf("CheckAPIKey(%q) accepted it", k)
		}
	}
	if got := stripeapi.MaskKey(key); got != "sk_test_…p7dc" {
		t.Errorf("MaskKey = %q", got)
	}
	if got := stripeapi.MaskKey("rk_live_51Habc0123456789"); got != "rk_live_…6789" {
		t.Errorf("MaskKey = %q", got)
	}
	if got := stripeapi.MaskKey("nonsense"); got != "****" {
		t.Errorf("MaskKey(nonsense) = %q", got)
	}
}

// MaskKey shows what the API shows of a stored key: never more than its prefix and
// last four characters.
func FuzzMaskKey(f *testing.F) {
	f.Add(key)
	f.Add("rk_live_51Habc0123456789")
	f.Add("sk_test_")
	f.Fuzz(func(t *testing.T, k string) {
		m := stripeapi.MaskKey(k)
		if stripeapi.CheckAPIKey(k) != "" {
			if m != "****" {
				t.Errorf("MaskKey(%q) = %q for an invalid key", k, m)
			}
			return
		}
		if m != k[:len("sk_test_")]+"…"+k[len(k)-4:] {
			t.Errorf("MaskKey(%q) = %q shows too much", k, m)
		}
	})
}
