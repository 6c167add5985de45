// Package chargebee turns Chargebee (API v2) webhooks into provider-neutral events.
//
// Chargebee signs nothing: a webhook is authenticated by the HTTP basic-auth
// credentials configured on the Chargebee webhook endpoint (Verify). The body is an
// event envelope {id, occurred_at, event_type, api_version, content: {...}} whose
// content holds the resources the event concerns (transaction, customer,
// subscription, invoice, credit_note).
//
// Events acted on:
//
//   - payment_succeeded: one Payment for content.transaction (ObjectID = the
//     transaction id, Amount = transaction.amount in minor units). A zero amount or a
//     transaction whose status is not "success" gives no event.
//   - payment_refunded: one Refund of the original payment transaction. The refund
//     transaction (content.transaction, type "refund") names the payment it refunds
//     in refunded_txn_id; failing that its linked_payments[0].txn_id; failing that,
//     when content.credit_note.reference_invoice_id (or the transaction's
//     linked_credit_notes[].cn_reference_invoice_id) is content.invoice and that
//     invoice was paid by exactly one successful transaction, that transaction.
//     ObjectID is that payment transaction's id (what payment_succeeded used), Amount
//     this refund's own amount (Cumulative false), RefundID the refund transaction's
//     id. A refund that links to no payment is an error (ErrMalformed), so the
//     stored event is marked failed instead of the refund vanishing silently.
//   - customer_created, customer_changed: one CustomerSeen for content.customer.
//
// Every other type parses to no events. Chargebee payloads do not say whether the
// site is a test site, so Livemode is always true: keep test sites on their own
// program (or credentials) if their sales must stay apart.
//
// Who paid: ProviderCustomerID is content.customer.id (else the transaction's
// customer_id); Email content.customer.email; CustomerKey the customer's
// meta_data[key field], else its custom field cf_<key field>, else the same on
// content.subscription; ReferralKey likewise from referral_key / cf_referral_key.
package chargebee

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/referd/referd/providers"
)

// Event types referd acts on.
const (
	TypePaymentSucceeded = "payment_succeeded"
	TypePaymentRefunded  = "payment_refunded"
	TypeCustomerCreated  = "customer_created"
	TypeCustomerChanged  = "customer_changed"
)

// referralKeyField is the meta_data key (and cf_ custom field suffix) carrying a
// referrer's key.
const referralKeyField = "referral_key"

// Verify checks the Authorization header of a Chargebee webhook against the basic
// auth credentials configured for it. User and password are both compared, in
// constant time over their SHA-256 digests so neither their contents nor their
// lengths leak through timing. Any failure wraps providers.ErrSignature (answer 401).
// An empty configured password never verifies: an endpoint without credentials is a
// misconfiguration, not an open door.
func Verify(authHeader string, username, password string) error {
	if password == "" {
		return fmt.Errorf("%w: chargebee webhook password not configured", providers.ErrSignature)
	}
	scheme, cred, ok := strings.Cut(strings.TrimSpace(authHeader), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return fmt.Errorf("%w: no basic authorization", providers.ErrSignature)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return fmt.Errorf("%w: bad basic authorization encoding", providers.ErrSignature)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return fmt.Errorf("%w: bad basic authorization credentials", providers.ErrSignature)
	}
	gu, wu := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(username))
	gp, wp := sha256.Sum256([]byte(pass)), sha256.Sum256([]byte(password))
	userOK := subtle.ConstantTimeCompare(gu[:], wu[:])
	passOK := subtle.ConstantTimeCompare(gp[:], wp[:])
	if userOK&passOK != 1 {
		return fmt.Errorf("%w: chargebee credentials do not match", providers.ErrSignature)
	}
	return nil
}

type envelope struct {
	ID         string          `json:"id"`
	OccurredAt json.Number     `json:"occurred_at"`
	EventType  string          `json:"event_type"`
	APIVersion string          `json:"api_version"`
	Content    json.RawMessage `json:"content"`
}

// content holds the resources of an event; each is decoded only when the event type
// needs it, so an odd shape in a resource referd ignores cannot fail a parse.
type content struct {
	Transaction  json.RawMessage `json:"transaction"`
	Customer     json.RawMessage `json:"customer"`
	Subscription json.RawMessage `json:"subscription"`
	Invoice      json.RawMessage `json:"invoice"`
	CreditNote   json.RawMessage `json:"credit_note"`
}

type txnLink struct {
	TxnID     string `json:"txn_id"`
	TxnStatus string `json:"txn_status"`
}

type transaction struct {
	ID             string      `json:"id"`
	CustomerID     string      `json:"customer_id"`
	SubscriptionID string      `json:"subscription_id"`
	Type           string      `json:"type"`
	Status         string      `json:"status"`
	Amount         json.Number `json:"amount"`
	CurrencyCode   string      `json:"currency_code"`
	RefundedTxnID  string      `json:"refunded_txn_id"`
	LinkedPayments []txnLink   `json:"linked_payments"`
	LinkedCNs      []struct {
		RefInvoiceID string `json:"cn_reference_invoice_id"`
	} `json:"linked_credit_notes"`
}

type invoice struct {
	ID             string    `json:"id"`
	LinkedPayments []txnLink `json:"linked_payments"`
	// Discounts are what reduced the invoice: coupons (entity_type
	// item_level_coupon or document_level_coupon, entity_id the coupon's id, and
	// coupon_set_code the code typed when it came from a coupon set), credits, and
	// discounts that are no coupon.
	Discounts []struct {
		EntityType    string `json:"entity_type"`
		EntityID      string `json:"entity_id"`
		CouponSetCode string `json:"coupon_set_code"`
	} `json:"discounts"`
}

// coupons are the coupons an invoice was paid with: a coupon's id is what
// provider_ids.chargebee holds.
func (in *invoice) coupons() []providers.Discount {
	var out []providers.Discount
	for _, d := range in.Discounts {
		if (d.EntityType != "item_level_coupon" && d.EntityType != "document_level_coupon") || strings.TrimSpace(d.EntityID) == "" {
			continue
		}
		id := strings.TrimSpace(d.EntityID)
		out = append(out, providers.Discount{PromotionID: id, CouponID: id, Code: strings.TrimSpace(d.CouponSetCode)})
	}
	return out
}

type creditNote struct {
	ReferenceInvoiceID string `json:"reference_invoice_id"`
}

// fields is a resource (customer, subscription) read field by field, since its
// custom fields (cf_...) are not known in advance.
type fields map[string]json.RawMessage

// Parse reads a verified Chargebee webhook body. Malformed JSON, a missing id or
// event_type, or a handled event missing what it needs wraps providers.ErrMalformed.
func Parse(body []byte, opt providers.Options) (providers.Parsed, error) {
	var env envelope
	if err := decode(body, &env); err != nil {
		return providers.Parsed{}, malformed("envelope: %v", err)
	}
	if env.ID == "" || env.EventType == "" {
		return providers.Parsed{}, malformed("missing id or event_type")
	}
	out := providers.Parsed{EventID: env.ID, Type: env.EventType, Livemode: true}
	var occurred time.Time
	if env.OccurredAt != "" {
		sec, err := strconv.ParseInt(env.OccurredAt.String(), 10, 64)
		if err != nil {
			return out, malformed("occurred_at %q", env.OccurredAt)
		}
		occurred = time.Unix(sec, 0).UTC()
	}

	switch env.EventType {
	case TypePaymentSucceeded, TypePaymentRefunded, TypeCustomerCreated, TypeCustomerChanged:
	default:
		return out, nil
	}
	var c content
	if len(env.Content) > 0 && !isNull(env.Content) {
		if err := decode(env.Content, &c); err != nil {
			return out, malformed("content: %v", err)
		}
	}
	var cust, sub fields
	if err := decodeOptional(c.Customer, &cust); err != nil {
		return out, malformed("customer: %v", err)
	}
	if err := decodeOptional(c.Subscription, &sub); err != nil {
		return out, malformed("subscription: %v", err)
	}
	keyField := opt.KeyField()
	base := providers.Event{
		ProviderCustomerID: cust.str("id"),
		Email:              cust.str("email"),
		CustomerKey:        firstNonEmpty(cust.key(keyField), sub.key(keyField)),
		ReferralKey:        firstNonEmpty(cust.key(referralKeyField), sub.key(referralKeyField)),
		Livemode:           true,
		OccurredAt:         occurred,
	}

	switch env.EventType {
	case TypeCustomerCreated, TypeCustomerChanged:
		if base.ProviderCustomerID == "" {
			return out, malformed("%s without content.customer.id", env.EventType)
		}
		base.Kind = providers.CustomerSeen
		out.Events = []providers.Event{base}
		return out, nil
	}

	// payment_succeeded, payment_refunded: both about content.transaction.
	var txn transaction
	if isNull(c.Transaction) {
		return out, malformed("%s without content.transaction", env.EventType)
	}
	if err := decode(c.Transaction, &txn); err != nil {
		return out, malformed("transaction: %v", err)
	}
	if txn.ID == "" {
		return out, malformed("%s without content.transaction.id", env.EventType)
	}
	if txn.Status != "" && txn.Status != "success" {
		return out, nil // not money moved (yet)
	}
	amount, err := minorUnits(txn.Amount)
	if err != nil {
		return out, malformed("transaction.amount: %v", err)
	}
	if amount == 0 {
		return out, nil
	}
	currency, ok := currencyCode(txn.CurrencyCode)
	if !ok {
		return out, malformed("transaction.currency_code %q", txn.CurrencyCode)
	}
	ev := base
	if ev.ProviderCustomerID == "" {
		ev.ProviderCustomerID = txn.CustomerID
	}
	ev.Amount, ev.Currency = amount, currency
	ev.Subscription = txn.SubscriptionID != "" || len(sub) > 0
	ev.ProductID = sub.str("plan_id")

	if env.EventType == TypePaymentSucceeded {
		ev.Kind = providers.Payment
		ev.ObjectID = txn.ID
		// The invoice's coupons; an invoice of another shape is no reason to fail the
		// payment, only to find no code in it.
		var in invoice
		if !isNull(c.Invoice) && decode(c.Invoice, &in) == nil {
			ev.Discounts = in.coupons()
		}
		out.Events = []providers.Event{ev}
		return out, nil
	}

	payment, err := refundedPayment(txn, c)
	if err != nil {
		return out, err
	}
	ev.Kind = providers.Refund
	ev.ObjectID = payment
	ev.RefundID = txn.ID
	ev.Cumulative = false
	out.Events = []providers.Event{ev}
	return out, nil
}

// refundedPayment finds the id of the payment transaction a refund transaction
// refunds (see the package comment for the order tried).
func refundedPayment(txn transaction, c content) (string, error) {
	if txn.RefundedTxnID != "" {
		return txn.RefundedTxnID, nil
	}
	if len(txn.LinkedPayments) > 0 && txn.LinkedPayments[0].TxnID != "" {
		return txn.LinkedPayments[0].TxnID, nil
	}
	var cn creditNote
	var inv invoice
	if err := decodeOptional(c.CreditNote, &cn); err != nil {
		return "", malformed("credit_note: %v", err)
	}
	if err := decodeOptional(c.Invoice, &inv); err != nil {
		return "", malformed("invoice: %v", err)
	}
	ref := cn.ReferenceInvoiceID
	if ref == "" {
		for _, l := range txn.LinkedCNs {
			if l.RefInvoiceID != "" {
				ref = l.RefInvoiceID
				break
			}
		}
	}
	if ref != "" && ref == inv.ID {
		var paid []string
		for _, p := range inv.LinkedPayments {
			if p.TxnID != "" && (p.TxnStatus == "" || p.TxnStatus == "success") {
				paid = append(paid, p.TxnID)
			}
		}
		if len(paid) == 1 {
			return paid[0], nil
		}
	}
	return "", malformed("refund transaction %s names no payment it refunds", txn.ID)
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: chargebee: %s", providers.ErrMalformed, fmt.Sprintf(format, args...))
}

func decode(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if rest := bytes.Trim(data[d.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

// decodeOptional decodes raw into v unless it is absent or null.
func decodeOptional(raw json.RawMessage, v any) error {
	if isNull(raw) {
		return nil
	}
	return decode(raw, v)
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// minorUnits reads an integer amount in minor units; absent is zero, anything but a
// non-negative integer is an error.
func minorUnits(n json.Number) (int64, error) {
	if n == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not an integer: %q", n)
	}
	if v < 0 {
		return 0, fmt.Errorf("negative: %d", v)
	}
	return v, nil
}

// currencyCode lower-cases an ISO 4217 code; ok is false unless it is three ASCII
// letters.
func currencyCode(s string) (string, bool) {
	if len(s) != 3 {
		return "", false
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
		case 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		default:
			return "", false
		}
	}
	return string(b), true
}

// str is the string field name of f, or "" if absent or not a string.
func (f fields) str(name string) string {
	var s string
	if raw, ok := f[name]; ok && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

// key is a referd key carried by a Chargebee customer or subscription:
// meta_data[name] (meta_data is a JSON object, or a string holding one), else the
// custom field cf_<name> (name itself if it already starts with cf_).
func (f fields) key(name string) string {
	if f == nil {
		return ""
	}
	if raw, ok := f["meta_data"]; ok {
		var meta fields
		if json.Unmarshal(raw, &meta) != nil {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				_ = json.Unmarshal([]byte(s), &meta)
			}
		}
		if v := scalar(meta[name]); v != "" {
			return v
		}
	}
	cf := name
	if !strings.HasPrefix(cf, "cf_") {
		cf = "cf_" + cf
	}
	return scalar(f[cf])
}

// scalar is a JSON string's value or a JSON number's text, trimmed; "" otherwise.
func scalar(raw json.RawMessage) string {
	if isNull(raw) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	var n json.Number
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if d.Decode(&n) == nil {
		return n.String()
	}
	return ""
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
