// Package stripe verifies Stripe webhooks and turns the events referd acts on into
// provider-neutral events (package providers). It knows Stripe and nothing else.
//
// Events that count:
//
//   - checkout.session.completed, mode payment, payment_status paid: a Payment.
//     In subscription mode it is no payment (the invoice.paid that follows is), only
//     a CustomerSeen linking client_reference_id / metadata key to the customer.
//   - invoice.paid and invoice.payment_succeeded: a Payment of amount_paid (none for
//     0, a trial), plus nothing else; a 0 invoice carrying a key is a CustomerSeen.
//   - charge.succeeded without an invoice: a Payment. A charge with an invoice is
//     counted by its invoice.paid.
//   - charge.refunded: a Refund whose Amount is the cumulative amount_refunded.
//   - customer.created and customer.updated: a CustomerSeen.
//
// One-off payments are keyed (ObjectID) by their PaymentIntent when they have one, so
// that a Checkout payment's checkout.session.completed and its charge.succeeded are
// one sale, and its charge.refunded matches it; without a PaymentIntent the session or
// charge id is the key. Invoice payments and their refunds are keyed by the invoice.
package stripe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	stripe "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/referd/referd/providers"
)

// Tolerance is how old a signature's timestamp may be.
const Tolerance = 300 * time.Second

// ReferralKeyField is the metadata field that carries a referrer's key.
const ReferralKeyField = "referral_key"

// ErrTooOld means the signature's timestamp is older than Tolerance; it wraps
// providers.ErrSignature.
var ErrTooOld = fmt.Errorf("%w: stripe: timestamp older than %s", providers.ErrSignature, Tolerance)

// Verify checks the Stripe-Signature header sigHeader against body with each of
// secrets in turn and succeeds if any verifies. A timestamp older than Tolerance
// (measured from now) fails whatever the signature. Every failure wraps
// providers.ErrSignature.
func Verify(body []byte, sigHeader string, secrets []string, now time.Time) error {
	ts, ok := headerTimestamp(sigHeader)
	if !ok {
		return fmt.Errorf("%w: stripe: no valid timestamp in Stripe-Signature", providers.ErrSignature)
	}
	if now.Sub(ts) > Tolerance {
		return ErrTooOld
	}
	var last error = errors.New("no webhook secret configured")
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		// The timestamp was checked above against now (stripe-go checks it against
		// the wall clock), so stripe-go checks only the signature here.
		err := webhook.ValidatePayloadIgnoringTolerance(body, sigHeader, secret)
		if err == nil {
			return nil
		}
		last = err
	}
	return fmt.Errorf("%w: stripe: %v", providers.ErrSignature, last)
}

// headerTimestamp reads t= from a Stripe-Signature header the way stripe-go does
// (the last t wins; a malformed pair makes the whole header invalid).
func headerTimestamp(h string) (time.Time, bool) {
	var ts time.Time
	found := false
	for _, pair := range strings.Split(h, ",") {
		parts := strings.Split(pair, "=")
		if len(parts) != 2 {
			return time.Time{}, false
		}
		if parts[0] == "t" {
			n, err := strconv.ParseInt(parts[1], 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			ts, found = time.Unix(n, 0), true
		}
	}
	return ts, found
}

// envelope is the part of a Stripe event referd reads.
type envelope struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Livemode   bool   `json:"livemode"`
	Created    int64  `json:"created"`
	APIVersion string `json:"api_version"`
	Data       *struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: stripe: %s", providers.ErrMalformed, fmt.Sprintf(format, a...))
}

// Parse turns a verified Stripe event body into its provider-neutral events. Types
// referd does not act on parse to no events. A body that is not a Stripe event
// (bad JSON, no id or type, a handled type whose object does not decode, a negative
// amount or a currency that is not three letters) is an error wrapping
// providers.ErrMalformed.
func Parse(body []byte, opt providers.Options) (providers.Parsed, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return providers.Parsed{}, malformed("%v", err)
	}
	if env.ID == "" || env.Type == "" {
		return providers.Parsed{}, malformed("event without id or type")
	}
	p := providers.Parsed{EventID: env.ID, Type: env.Type, Livemode: env.Livemode}

	var parse func(*parser, json.RawMessage) error
	switch env.Type {
	case "checkout.session.completed":
		parse = (*parser).checkoutSession
	case "invoice.paid", "invoice.payment_succeeded":
		parse = (*parser).invoice
	case "charge.succeeded":
		parse = (*parser).chargeSucceeded
	case "charge.refunded":
		parse = (*parser).chargeRefunded
	case "customer.created", "customer.updated":
		parse = (*parser).customer
	default:
		return p, nil
	}
	if env.Data == nil || len(bytes.TrimSpace(env.Data.Object)) == 0 || bytes.Equal(bytes.TrimSpace(env.Data.Object), []byte("null")) {
		return providers.Parsed{}, malformed("%s without data.object", env.Type)
	}
	ps := parser{
		keyField: opt.KeyField(),
		base: providers.Event{
			Livemode:   env.Livemode,
			OccurredAt: time.Unix(env.Created, 0).UTC(),
		},
	}
	if err := parse(&ps, env.Data.Object); err != nil {
		return providers.Parsed{}, err
	}
	p.Events = ps.events
	return p, nil
}

type parser struct {
	keyField string
	base     providers.Event
	events   []providers.Event
}

func (ps *parser) emit(e providers.Event) {
	e.Livemode = ps.base.Livemode
	e.OccurredAt = ps.base.OccurredAt
	ps.events = append(ps.events, e)
}

// decode unmarshals a data.object into one of stripe-go's typed objects. A bare id
// string decodes without error into an object with only an ID; that is no object.
func decode(raw json.RawMessage, v any, what string) error {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return malformed("data.object is not a %s object", what)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return malformed("%s: %v", what, err)
	}
	return nil
}

func (ps *parser) checkoutSession(raw json.RawMessage) error {
	var s stripe.CheckoutSession
	if err := decode(raw, &s, "checkout.session"); err != nil {
		return err
	}
	if s.ID == "" {
		return malformed("checkout.session without id")
	}
	key := first(s.ClientReferenceID, meta(s.Metadata, ps.keyField), custMeta(s.Customer, ps.keyField))
	ref := first(meta(s.Metadata, ReferralKeyField), custMeta(s.Customer, ReferralKeyField))
	email := s.CustomerEmail
	if s.CustomerDetails != nil && s.CustomerDetails.Email != "" {
		email = s.CustomerDetails.Email
	}
	cust := custID(s.Customer)

	switch s.Mode {
	case stripe.CheckoutSessionModePayment:
		if s.PaymentStatus != stripe.CheckoutSessionPaymentStatusPaid {
			return nil // async payment methods: checkout.session.async_payment_succeeded later
		}
		if s.AmountTotal < 0 {
			return malformed("checkout.session %s: negative amount_total", s.ID)
		}
		if s.AmountTotal == 0 {
			return ps.seen(cust, email, key, ref)
		}
		cur, err := currency(s.Currency)
		if err != nil {
			return err
		}
		objectID := s.ID
		if s.PaymentIntent != nil && s.PaymentIntent.ID != "" {
			objectID = s.PaymentIntent.ID
		}
		ps.emit(providers.Event{
			Kind:               providers.Payment,
			ObjectID:           objectID,
			ProviderCustomerID: cust,
			Email:              email,
			CustomerKey:        key,
			ReferralKey:        ref,
			Amount:             s.AmountTotal,
			Currency:           cur,
		})
		return nil
	case stripe.CheckoutSessionModeSubscription:
		return ps.seen(cust, email, key, ref)
	}
	return nil
}

// seen emits a CustomerSeen linking a provider customer to a key, when there is a
// customer and something to link it to.
func (ps *parser) seen(cust, email, key, ref string) error {
	if cust == "" || (key == "" && ref == "") {
		return nil
	}
	ps.emit(providers.Event{
		Kind:               providers.CustomerSeen,
		ProviderCustomerID: cust,
		Email:              email,
		CustomerKey:        key,
		ReferralKey:        ref,
	})
	return nil
}

func (ps *parser) invoice(raw json.RawMessage) error {
	var in stripe.Invoice
	if err := decode(raw, &in, "invoice"); err != nil {
		return err
	}
	if in.ID == "" {
		return malformed("invoice without id")
	}
	var subMeta map[string]string
	if in.SubscriptionDetails != nil {
		subMeta = in.SubscriptionDetails.Metadata
	}
	var expandedSubMeta map[string]string
	if in.Subscription != nil {
		expandedSubMeta = in.Subscription.Metadata
	}
	key := first(meta(in.Metadata, ps.keyField), meta(subMeta, ps.keyField),
		meta(expandedSubMeta, ps.keyField), custMeta(in.Customer, ps.keyField))
	ref := first(meta(in.Metadata, ReferralKeyField), meta(subMeta, ReferralKeyField),
		meta(expandedSubMeta, ReferralKeyField), custMeta(in.Customer, ReferralKeyField))
	cust := custID(in.Customer)
	email := first(in.CustomerEmail, custEmail(in.Customer))

	if in.AmountPaid < 0 {
		return malformed("invoice %s: negative amount_paid", in.ID)
	}
	if in.AmountPaid == 0 {
		return ps.seen(cust, email, key, ref)
	}
	cur, err := currency(in.Currency)
	if err != nil {
		return err
	}
	ps.emit(providers.Event{
		Kind:               providers.Payment,
		ObjectID:           in.ID,
		ProviderCustomerID: cust,
		Email:              email,
		CustomerKey:        key,
		ReferralKey:        ref,
		Amount:             in.AmountPaid,
		Currency:           cur,
		Subscription:       in.Subscription != nil && in.Subscription.ID != "",
		ProductID:          invoiceProduct(&in),
	})
	return nil
}

// invoiceProduct is the product of the invoice's first line, when the payload has it.
func invoiceProduct(in *stripe.Invoice) string {
	if in.Lines == nil {
		return ""
	}
	for _, l := range in.Lines.Data {
		if l == nil {
			continue
		}
		if l.Price != nil && l.Price.Product != nil && l.Price.Product.ID != "" {
			return l.Price.Product.ID
		}
		if l.Plan != nil && l.Plan.Product != nil && l.Plan.Product.ID != "" {
			return l.Plan.Product.ID
		}
	}
	return ""
}

func decodeCharge(raw json.RawMessage) (*stripe.Charge, error) {
	var ch stripe.Charge
	if err := decode(raw, &ch, "charge"); err != nil {
		return nil, err
	}
	if ch.ID == "" {
		return nil, malformed("charge without id")
	}
	return &ch, nil
}

func chargeInvoice(ch *stripe.Charge) string {
	if ch.Invoice != nil {
		return ch.Invoice.ID
	}
	return ""
}

// chargeObjectID is the ObjectID of a one-off charge's sale: its PaymentIntent when
// it has one (which a Checkout session in payment mode shares), else the charge.
func chargeObjectID(ch *stripe.Charge) string {
	if ch.PaymentIntent != nil && ch.PaymentIntent.ID != "" {
		return ch.PaymentIntent.ID
	}
	return ch.ID
}

func (ps *parser) chargeSucceeded(raw json.RawMessage) error {
	ch, err := decodeCharge(raw)
	if err != nil {
		return err
	}
	if chargeInvoice(ch) != "" {
		return nil // counted by the invoice's invoice.paid
	}
	amount := ch.AmountCaptured
	if amount == 0 && ch.Captured {
		amount = ch.Amount // API versions before amount_captured
	}
	if amount < 0 {
		return malformed("charge %s: negative amount", ch.ID)
	}
	if amount == 0 {
		return nil // authorised, not captured
	}
	cur, err := currency(ch.Currency)
	if err != nil {
		return err
	}
	email := ch.ReceiptEmail
	if ch.BillingDetails != nil && ch.BillingDetails.Email != "" {
		email = ch.BillingDetails.Email
	}
	ps.emit(providers.Event{
		Kind:               providers.Payment,
		ObjectID:           chargeObjectID(ch),
		ProviderCustomerID: custID(ch.Customer),
		Email:              first(email, custEmail(ch.Customer)),
		CustomerKey:        first(meta(ch.Metadata, ps.keyField), custMeta(ch.Customer, ps.keyField)),
		ReferralKey:        first(meta(ch.Metadata, ReferralKeyField), custMeta(ch.Customer, ReferralKeyField)),
		Amount:             amount,
		Currency:           cur,
	})
	return nil
}

func (ps *parser) chargeRefunded(raw json.RawMessage) error {
	ch, err := decodeCharge(raw)
	if err != nil {
		return err
	}
	if ch.AmountRefunded < 0 {
		return malformed("charge %s: negative amount_refunded", ch.ID)
	}
	if ch.AmountRefunded == 0 {
		return nil
	}
	cur, err := currency(ch.Currency)
	if err != nil {
		return err
	}
	objectID := chargeInvoice(ch)
	if objectID == "" {
		objectID = chargeObjectID(ch)
	}
	ps.emit(providers.Event{
		Kind:               providers.Refund,
		ObjectID:           objectID,
		ProviderCustomerID: custID(ch.Customer),
		Amount:             ch.AmountRefunded,
		Currency:           cur,
		Cumulative:         true,
		RefundID:           ch.ID + ":" + strconv.FormatInt(ch.AmountRefunded, 10),
	})
	return nil
}

func (ps *parser) customer(raw json.RawMessage) error {
	var c stripe.Customer
	if err := decode(raw, &c, "customer"); err != nil {
		return err
	}
	if c.ID == "" {
		return malformed("customer without id")
	}
	ps.emit(providers.Event{
		Kind:               providers.CustomerSeen,
		ProviderCustomerID: c.ID,
		Email:              c.Email,
		CustomerKey:        meta(c.Metadata, ps.keyField),
		ReferralKey:        meta(c.Metadata, ReferralKeyField),
	})
	return nil
}

// currency is a Stripe currency as a lower-case three-letter code.
func currency(c stripe.Currency) (string, error) {
	s := strings.ToLower(strings.TrimSpace(string(c)))
	if len(s) != 3 {
		return "", malformed("currency %q", string(c))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return "", malformed("currency %q", string(c))
		}
	}
	return s, nil
}

func meta(m map[string]string, k string) string {
	return strings.TrimSpace(m[k])
}

func custID(c *stripe.Customer) string {
	if c == nil {
		return ""
	}
	return c.ID
}

func custMeta(c *stripe.Customer, k string) string {
	if c == nil {
		return ""
	}
	return meta(c.Metadata, k)
}

func custEmail(c *stripe.Customer) string {
	if c == nil {
		return ""
	}
	return c.Email
}

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
