// Package paddle verifies and parses Paddle Billing webhooks (not Paddle Classic) into
// provider-neutral events.
//
// Verification: the Paddle-Signature header is "ts=<unix seconds>;h1=<hex>[;h1=<hex>...]".
// The signed payload is the header's ts text, a colon and the raw body; it verifies if
// HMAC-SHA256 keyed by any configured secret equals any h1 (constant-time compare), and
// ts is within Tolerance of now in either direction.
//
// Parsing, by event_type:
//
//   - transaction.completed, transaction.paid: a Payment of data.details.totals.total
//     (grand_total when total is absent), a string of integer minor units. Paddle sends
//     transaction.paid and then transaction.completed for the same transaction; both
//     carry ObjectID = data.id (txn_...), so the sale is recorded once. A zero total (a
//     free trial, a 100% discount) is no Payment.
//   - adjustment.created, adjustment.updated: a Refund of data.totals.total when action
//     is "refund" and status is "approved"; any other action or status (pending_approval,
//     rejected, credit, chargeback, ...) is no event. ObjectID is the refunded
//     transaction, RefundID the adjustment (adj_...), Cumulative false.
//   - customer.created, customer.updated: CustomerSeen with the ctm_ id, the email and
//     custom_data[customer key field].
//   - anything else: no events.
//
// Paddle payloads carry no live/sandbox flag (the two environments are separate
// accounts with separate webhook secrets), so Parse reports Livemode true; the ingest
// may override it from the program's configured Paddle environment.
package paddle

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/referd/referd/providers"
)

// Tolerance is how far a signature's timestamp may be from now, in either direction.
const Tolerance = 300 * time.Second

// Header is the HTTP header carrying the signature.
const Header = "Paddle-Signature"

// Verify checks body against the Paddle-Signature header value using any of secrets.
// Every failure wraps providers.ErrSignature.
func Verify(body []byte, sigHeader string, secrets []string, now time.Time) error {
	ts, sigs, err := parseHeader(sigHeader)
	if err != nil {
		return err
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return sigErr("bad timestamp %q", ts)
	}
	tol := int64(Tolerance / time.Second)
	n := now.Unix()
	if t < n-tol || t > n+tol {
		return sigErr("timestamp %d outside %v of now", t, Tolerance)
	}
	configured := false
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		configured = true
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(ts))
		mac.Write([]byte{':'})
		mac.Write(body)
		want := mac.Sum(nil)
		for _, sig := range sigs {
			if hmac.Equal(want, sig) {
				return nil
			}
		}
	}
	if !configured {
		return sigErr("no secret configured")
	}
	return sigErr("no h1 matches")
}

func sigErr(format string, args ...any) error {
	return fmt.Errorf("paddle: %s: %w", fmt.Sprintf(format, args...), providers.ErrSignature)
}

// parseHeader splits "ts=...;h1=...;h1=..." into the ts text and the decoded h1 values.
// Unknown keys (a future h2) are ignored; a missing or repeated ts, no h1, or an h1
// that is not a 32-byte hex digest is malformed.
func parseHeader(h string) (ts string, sigs [][]byte, err error) {
	if strings.TrimSpace(h) == "" {
		return "", nil, sigErr("missing %s header", Header)
	}
	haveTS := false
	for _, part := range strings.Split(h, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return "", nil, sigErr("malformed header element %q", part)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "ts":
			if haveTS {
				return "", nil, sigErr("repeated ts")
			}
			if !allDigits(v) {
				return "", nil, sigErr("bad timestamp %q", v)
			}
			ts, haveTS = v, true
		case "h1":
			b, derr := hex.DecodeString(v)
			if derr != nil || len(b) != sha256.Size {
				return "", nil, sigErr("malformed h1")
			}
			sigs = append(sigs, b)
		}
	}
	if !haveTS {
		return "", nil, sigErr("missing ts")
	}
	if len(sigs) == 0 {
		return "", nil, sigErr("missing h1")
	}
	return ts, sigs, nil
}

func allDigits(s string) bool {
	if s == "" || len(s) > 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Sign returns a Paddle-Signature header value for body at ts (for tests and tools).
func Sign(body []byte, secret string, ts time.Time) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(t + ":"))
	mac.Write(body)
	return "ts=" + t + ";h1=" + hex.EncodeToString(mac.Sum(nil))
}

// envelope is a Paddle Billing notification.
type envelope struct {
	EventID        string          `json:"event_id"`
	NotificationID string          `json:"notification_id"`
	EventType      string          `json:"event_type"`
	OccurredAt     string          `json:"occurred_at"`
	Data           json.RawMessage `json:"data"`
}

// minor is an amount in integer minor units, sent by Paddle as a string ("950"). A
// bare JSON integer is accepted too; anything with a fraction or exponent is not.
type minor struct {
	v   int64
	set bool
}

func (m *minor) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		*m = minor{}
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := parseMinor(s)
	if err != nil {
		return err
	}
	*m = minor{v: v, set: true}
	return nil
}

// parseMinor parses an optionally negative decimal integer, exactly.
func parseMinor(s string) (int64, error) {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || len(digits) > 18 {
		return 0, fmt.Errorf("amount %q is not an integer of minor units", s)
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, fmt.Errorf("amount %q is not an integer of minor units", s)
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

type totals struct {
	Total        minor  `json:"total"`
	GrandTotal   minor  `json:"grand_total"`
	CurrencyCode string `json:"currency_code"`
}

type transaction struct {
	ID             string          `json:"id"`
	CustomerID     *string         `json:"customer_id"`
	SubscriptionID *string         `json:"subscription_id"`
	CurrencyCode   string          `json:"currency_code"`
	CustomData     json.RawMessage `json:"custom_data"`
	Details        *struct {
		Totals *totals `json:"totals"`
	} `json:"details"`
	Items json.RawMessage `json:"items"`
	// DiscountID is the Paddle discount (dsc_...) applied to the transaction;
	// Discount is that discount, when the payload includes it.
	DiscountID *string `json:"discount_id"`
	Discount   *struct {
		ID   string  `json:"id"`
		Code *string `json:"code"`
	} `json:"discount"`
}

// discounts is the Paddle discount the transaction was paid with: its id is what
// provider_ids.paddle holds, its code what the customer typed.
func (tx *transaction) discounts() []providers.Discount {
	d := providers.Discount{PromotionID: strings.TrimSpace(deref(tx.DiscountID))}
	if tx.Discount != nil {
		if d.PromotionID == "" {
			d.PromotionID = strings.TrimSpace(tx.Discount.ID)
		}
		d.Code = strings.TrimSpace(deref(tx.Discount.Code))
	}
	if d == (providers.Discount{}) {
		return nil
	}
	return []providers.Discount{d}
}

type adjustment struct {
	ID             string  `json:"id"`
	Action         string  `json:"action"`
	Status         string  `json:"status"`
	TransactionID  string  `json:"transaction_id"`
	CustomerID     *string `json:"customer_id"`
	SubscriptionID *string `json:"subscription_id"`
	CurrencyCode   string  `json:"currency_code"`
	Totals         *totals `json:"totals"`
}

type customer struct {
	ID         string          `json:"id"`
	Email      *string         `json:"email"`
	CustomData json.RawMessage `json:"custom_data"`
}

// Parse turns a verified Paddle Billing notification into provider-neutral events.
// A body that is not a notification, or a handled event whose data lacks what it
// needs, wraps providers.ErrMalformed; when the envelope itself was readable the
// returned Parsed still carries EventID and Type.
func Parse(body []byte, opt providers.Options) (providers.Parsed, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return providers.Parsed{}, malformed("envelope: %v", err)
	}
	id := env.EventID
	if id == "" {
		id = env.NotificationID
	}
	if id == "" || env.EventType == "" {
		return providers.Parsed{}, malformed("missing event_id or event_type")
	}
	p := providers.Parsed{EventID: id, Type: env.EventType, Livemode: true}
	var occurred time.Time
	if env.OccurredAt != "" {
		t, err := time.Parse(time.RFC3339Nano, env.OccurredAt)
		if err != nil {
			return p, malformed("occurred_at %q: %v", env.OccurredAt, err)
		}
		occurred = t.UTC()
	}
	base := providers.Event{Livemode: true, OccurredAt: occurred}

	var (
		ev  *providers.Event
		err error
	)
	switch env.EventType {
	case "transaction.completed", "transaction.paid":
		ev, err = parseTransaction(env.Data, opt, base)
	case "adjustment.created", "adjustment.updated":
		ev, err = parseAdjustment(env.Data, base)
	case "customer.created", "customer.updated":
		ev, err = parseCustomer(env.Data, opt, base)
	default:
		return p, nil
	}
	if err != nil {
		return p, err
	}
	if ev != nil {
		p.Events = []providers.Event{*ev}
	}
	return p, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("paddle: %s: %w", fmt.Sprintf(format, args...), providers.ErrMalformed)
}

// decodeData unmarshals a handled event's data object; a missing or null data is
// malformed.
func decodeData(raw json.RawMessage, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return malformed("missing data")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return malformed("data: %v", err)
	}
	return nil
}

func parseTransaction(raw json.RawMessage, opt providers.Options, ev providers.Event) (*providers.Event, error) {
	var tx transaction
	if err := decodeData(raw, &tx); err != nil {
		return nil, err
	}
	if tx.ID == "" {
		return nil, malformed("transaction without id")
	}
	if tx.Details == nil || tx.Details.Totals == nil {
		return nil, malformed("transaction %s without details.totals", tx.ID)
	}
	amt := tx.Details.Totals.Total
	if !amt.set {
		amt = tx.Details.Totals.GrandTotal
	}
	if !amt.set {
		return nil, malformed("transaction %s without a total", tx.ID)
	}
	if amt.v < 0 {
		return nil, malformed("transaction %s has a negative total", tx.ID)
	}
	if amt.v == 0 {
		return nil, nil
	}
	cur, err := currency(tx.CurrencyCode, tx.Details.Totals.CurrencyCode)
	if err != nil {
		return nil, malformed("transaction %s: %v", tx.ID, err)
	}
	ev.Kind = providers.Payment
	ev.ObjectID = tx.ID
	ev.Amount = amt.v
	ev.Currency = cur
	ev.ProviderCustomerID = deref(tx.CustomerID)
	ev.CustomerKey = customString(tx.CustomData, opt.KeyField())
	ev.ReferralKey = customString(tx.CustomData, "referral_key")
	ev.Subscription = deref(tx.SubscriptionID) != ""
	ev.ProductID = firstProductID(tx.Items)
	ev.Discounts = tx.discounts()
	return &ev, nil
}

// firstProductID is the first item's price.product_id. It is informational, so a shape
// it does not expect yields "" rather than an error.
func firstProductID(raw json.RawMessage) string {
	var items []struct {
		Price *struct {
			ProductID string `json:"product_id"`
		} `json:"price"`
	}
	if json.Unmarshal(raw, &items) != nil || len(items) == 0 || items[0].Price == nil {
		return ""
	}
	return items[0].Price.ProductID
}

func parseAdjustment(raw json.RawMessage, ev providers.Event) (*providers.Event, error) {
	var adj adjustment
	if err := decodeData(raw, &adj); err != nil {
		return nil, err
	}
	if adj.Action != "refund" || adj.Status != "approved" {
		return nil, nil
	}
	if adj.ID == "" || adj.TransactionID == "" {
		return nil, malformed("refund adjustment without id or transaction_id")
	}
	if adj.Totals == nil || !adj.Totals.Total.set {
		return nil, malformed("adjustment %s without totals.total", adj.ID)
	}
	amt := adj.Totals.Total.v
	if amt < 0 {
		// Paddle reports refund totals as positive amounts; take the magnitude if a
		// sign ever appears.
		amt = -amt
	}
	if amt == 0 {
		return nil, nil
	}
	cur, err := currency(adj.CurrencyCode, adj.Totals.CurrencyCode)
	if err != nil {
		return nil, malformed("adjustment %s: %v", adj.ID, err)
	}
	ev.Kind = providers.Refund
	ev.ObjectID = adj.TransactionID
	ev.RefundID = adj.ID
	ev.Amount = amt
	ev.Currency = cur
	ev.Cumulative = false
	ev.ProviderCustomerID = deref(adj.CustomerID)
	ev.Subscription = deref(adj.SubscriptionID) != ""
	return &ev, nil
}

func parseCustomer(raw json.RawMessage, opt providers.Options, ev providers.Event) (*providers.Event, error) {
	var c customer
	if err := decodeData(raw, &c); err != nil {
		return nil, err
	}
	if c.ID == "" {
		return nil, malformed("customer without id")
	}
	ev.Kind = providers.CustomerSeen
	ev.ProviderCustomerID = c.ID
	ev.Email = strings.TrimSpace(deref(c.Email))
	ev.CustomerKey = customString(c.CustomData, opt.KeyField())
	return &ev, nil
}

// currency is the first non-empty code, lower-cased; it must be three ASCII letters.
func currency(codes ...string) (string, error) {
	for _, c := range codes {
		if c == "" {
			continue
		}
		if len(c) != 3 {
			return "", fmt.Errorf("bad currency_code %q", c)
		}
		b := []byte(c)
		for i, ch := range b {
			switch {
			case ch >= 'a' && ch <= 'z':
			case ch >= 'A' && ch <= 'Z':
				b[i] = ch + ('a' - 'A')
			default:
				return "", fmt.Errorf("bad currency_code %q", c)
			}
		}
		return string(b), nil
	}
	return "", errors.New("missing currency_code")
}

// customString reads custom_data[key] as text: a string as is, a number as its
// literal; anything else (null, object, array, bool) is "". custom_data that is not an
// object yields "" rather than rejecting the event.
func customString(customData json.RawMessage, key string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(customData, &m) != nil {
		return ""
	}
	raw, ok := m[key]
	if !ok {
		return ""
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return strings.TrimSpace(s)
	case c == '-' || (c >= '0' && c <= '9'):
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			return ""
		}
		return n.String()
	}
	return ""
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
