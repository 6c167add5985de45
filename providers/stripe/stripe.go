// Package stripe verifies Stripe webhooks and turns the events referd acts on into
// provider-neutral events (package providers). It knows Stripe and nothing else.
//
// Every event is read by the api_version it carries. stripe-go v76 (API 2023-10-16)
// decodes what did not change; what moved in 2025-03-31.basil is read from the
// payload itself, from both places: the invoice's subscription and its metadata
// (subscription_details at the top before, parent.subscription_details since),
// line items' products (price / plan before, pricing.price_details since) and the
// invoice's payment (payment_intent and charge before, the payments list and
// invoice_payment.paid events since).
//
// One payment is one sale, whichever of its events arrive:
//
//   - invoice.paid and invoice.payment_succeeded: a Payment of amount_paid keyed by
//     the invoice (none for 0, a trial: a 0 invoice carrying a key is a
//     CustomerSeen), with its PaymentIntent and charge as Aliases when the payload
//     names them.
//   - invoice_payment.paid (basil on): a Link from the invoice to the PaymentIntent
//     or charge that paid it.
//   - charge.succeeded and payment_intent.succeeded: with an invoice (API versions
//     before basil), a Link, since the invoice counts the payment. Without one, a
//     Payment keyed by the PaymentIntent (else the charge): a one-off payment. From
//     basil on a charge no longer names its invoice, so such a Payment carries
//     Hold = ChargeHold: it is recorded only if no Link claims it by then.
//   - checkout.session.completed, mode payment, payment_status paid: a Payment keyed
//     by its PaymentIntent, or by its invoice (with the PaymentIntent as an alias)
//     when the session created one. In subscription mode it is no payment (the
//     invoice.paid that follows is), only a CustomerSeen linking client_reference_id
//     / metadata key to the customer.
//   - charge.refunded: a Refund whose Amount is the cumulative amount_refunded, keyed
//     by the invoice when the charge names it, else by the PaymentIntent or charge
//     (which a Link leads to the invoice).
//   - customer.created and customer.updated: a CustomerSeen.
//   - customer.discount.created: a DiscountSeen, the promotion code a discount id
//     applies (see discounts.go for where payments name their codes).
package stripe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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

// ChargeHold is how long a charge or PaymentIntent that names no invoice waits, on
// API versions whose charges never name one (2025-03-31.basil on), for the Link
// (invoice_payment.paid) that would make it an invoice's payment, before it is
// recorded as a one-off sale. Stripe sends a payment's events within a second or
// two of each other; a Link that comes later still (an endpoint down for hours)
// folds the one-off sale into the invoice's.
const ChargeHold = time.Minute

// basil is the first API version whose charges and PaymentIntents no longer name
// their invoice, and whose invoices moved their subscription under parent.
const basil = "2025-03-31"

// current says whether an event of API version v has basil's shapes. Versions are
// dates, with a release name after a dot since 2024-09-30.acacia; an event without
// a version is older still.
func current(v string) bool {
	if len(v) < len(basil) {
		return false
	}
	return v[:len(basil)] >= basil
}

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
	case "invoice_payment.paid":
		parse = (*parser).invoicePayment
	case "charge.succeeded":
		parse = (*parser).chargeSucceeded
	case "payment_intent.succeeded":
		parse = (*parser).paymentIntentSucceeded
	case "charge.refunded":
		parse = (*parser).chargeRefunded
	case "customer.created", "customer.updated":
		parse = (*parser).customer
	case "customer.discount.created":
		parse = (*parser).discountCreated
	default:
		return p, nil
	}
	if env.Data == nil || len(bytes.TrimSpace(env.Data.Object)) == 0 || bytes.Equal(bytes.TrimSpace(env.Data.Object), []byte("null")) {
		return providers.Parsed{}, malformed("%s without data.object", env.Type)
	}
	ps := parser{
		keyField: opt.KeyField(),
		current:  current(env.APIVersion),
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
	current  bool // the event has the shapes of 2025-03-31.basil or later
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
		objectID, pi := s.ID, ""
		if s.PaymentIntent != nil && s.PaymentIntent.ID != "" {
			objectID, pi = s.PaymentIntent.ID, s.PaymentIntent.ID
		}
		discounts, err := discountsOf(raw, &sessionDiscounts{})
		if err != nil {
			return malformed("checkout.session %s discounts: %v", s.ID, err)
		}
		var aliases []string
		if s.Invoice != nil && s.Invoice.ID != "" {
			// A session with invoice_creation: its invoice's invoice.paid is the
			// same payment, keyed by the invoice.
			objectID, aliases = s.Invoice.ID, nonEmpty(pi)
		}
		ps.emit(providers.Event{
			Kind:               providers.Payment,
			ObjectID:           objectID,
			Aliases:            aliases,
			ProviderCustomerID: cust,
			Email:              email,
			CustomerKey:        key,
			ReferralKey:        ref,
			Amount:             s.AmountTotal,
			Currency:           cur,
			Discounts:          discounts,
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

// expandable is a Stripe field that is an id, or the object with its id when
// expanded.
type expandable string

func (e *expandable) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*e = expandable(s)
	case len(b) > 0 && b[0] == '{':
		var o struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*e = expandable(o.ID)
	default:
		*e = "" // null
	}
	return nil
}

// paymentRef is what an InvoicePayment's payment names (2025-03-31.basil on).
type paymentRef struct {
	PaymentIntent expandable `json:"payment_intent"`
	Charge        expandable `json:"charge"`
}

// ids are the ids the payment goes by.
func (r *paymentRef) ids() []string {
	if r == nil {
		return nil
	}
	return nonEmpty(string(r.PaymentIntent), string(r.Charge))
}

// invoiceMoved holds the invoice fields of 2025-03-31.basil on that stripe-go v76
// does not know: the subscription under parent, the products under pricing, and
// the payments (present when the payload includes them).
type invoiceMoved struct {
	Parent *struct {
		SubscriptionDetails *struct {
			Metadata     map[string]string `json:"metadata"`
			Subscription expandable        `json:"subscription"`
		} `json:"subscription_details"`
	} `json:"parent"`
	Lines *struct {
		Data []struct {
			Pricing *struct {
				PriceDetails *struct {
					Product expandable `json:"product"`
				} `json:"price_details"`
			} `json:"pricing"`
		} `json:"data"`
	} `json:"lines"`
	Payments *struct {
		Data []struct {
			Status  string      `json:"status"`
			Payment *paymentRef `json:"payment"`
		} `json:"data"`
	} `json:"payments"`
}

func (ps *parser) invoice(raw json.RawMessage) error {
	var in stripe.Invoice
	if err := decode(raw, &in, "invoice"); err != nil {
		return err
	}
	if in.ID == "" {
		return malformed("invoice without id")
	}
	var moved invoiceMoved
	if err := json.Unmarshal(raw, &moved); err != nil {
		return malformed("invoice %s: %v", in.ID, err)
	}
	// The subscription's metadata: where 2023-10-16 put it, expanded, and where
	// 2025-03-31.basil on put it.
	var subMeta, expandedSubMeta, parentSubMeta map[string]string
	if in.SubscriptionDetails != nil {
		subMeta = in.SubscriptionDetails.Metadata
	}
	subscription := ""
	if in.Subscription != nil {
		expandedSubMeta, subscription = in.Subscription.Metadata, in.Subscription.ID
	}
	if moved.Parent != nil && moved.Parent.SubscriptionDetails != nil {
		sd := moved.Parent.SubscriptionDetails
		parentSubMeta, subscription = sd.Metadata, first(subscription, string(sd.Subscription))
	}
	key := first(meta(in.Metadata, ps.keyField), meta(subMeta, ps.keyField), meta(parentSubMeta, ps.keyField),
		meta(expandedSubMeta, ps.keyField), custMeta(in.Customer, ps.keyField))
	ref := first(meta(in.Metadata, ReferralKeyField), meta(subMeta, ReferralKeyField), meta(parentSubMeta, ReferralKeyField),
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
	discounts, err := discountsOf(raw, &invoiceDiscounts{})
	if err != nil {
		return malformed("invoice %s discounts: %v", in.ID, err)
	}
	var aliases []string
	if in.PaymentIntent != nil {
		aliases = append(aliases, in.PaymentIntent.ID)
	}
	if in.Charge != nil {
		aliases = append(aliases, in.Charge.ID)
	}
	if moved.Payments != nil {
		for _, p := range moved.Payments.Data {
			if p.Status == "" || p.Status == "paid" {
				aliases = append(aliases, p.Payment.ids()...)
			}
		}
	}
	ps.emit(providers.Event{
		Kind:               providers.Payment,
		ObjectID:           in.ID,
		Aliases:            nonEmpty(aliases...),
		ProviderCustomerID: cust,
		Email:              email,
		CustomerKey:        key,
		ReferralKey:        ref,
		Amount:             in.AmountPaid,
		Currency:           cur,
		Subscription:       subscription != "",
		ProductID:          first(invoiceProduct(&in), movedProduct(&moved)),
		Discounts:          discounts,
	})
	return nil
}

// invoiceProduct is the product of the invoice's first line, when the payload has it
// where 2023-10-16 puts it.
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

// movedProduct is the product of the invoice's first line where 2025-03-31.basil on
// puts it.
func movedProduct(m *invoiceMoved) string {
	if m.Lines == nil {
		return ""
	}
	for _, l := range m.Lines.Data {
		if l.Pricing != nil && l.Pricing.PriceDetails != nil && l.Pricing.PriceDetails.Product != "" {
			return string(l.Pricing.PriceDetails.Product)
		}
	}
	return ""
}

// invoicePayment reads an invoice_payment.paid (2025-03-31.basil on): the invoice and
// the PaymentIntent or charge that paid it, which charge.succeeded,
// payment_intent.succeeded and charge.refunded are keyed by.
func (ps *parser) invoicePayment(raw json.RawMessage) error {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return malformed("data.object is not an invoice_payment object")
	}
	var ip struct {
		ID      string      `json:"id"`
		Invoice expandable  `json:"invoice"`
		Status  string      `json:"status"`
		Payment *paymentRef `json:"payment"`
	}
	if err := json.Unmarshal(raw, &ip); err != nil {
		return malformed("invoice_payment: %v", err)
	}
	if ip.ID == "" || ip.Invoice == "" {
		return malformed("invoice_payment without id or invoice")
	}
	if ids := ip.Payment.ids(); len(ids) > 0 {
		ps.emit(providers.Event{Kind: providers.Link, ObjectID: string(ip.Invoice), Aliases: ids})
	}
	return nil
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

// oneOff emits a Payment that names no invoice: held on API versions whose charges
// never name one (ChargeHold).
func (ps *parser) oneOff(e providers.Event) {
	e.Kind = providers.Payment
	if ps.current {
		e.Hold = ChargeHold
	}
	ps.emit(e)
}

func (ps *parser) chargeSucceeded(raw json.RawMessage) error {
	ch, err := decodeCharge(raw)
	if err != nil {
		return err
	}
	if in := chargeInvoice(ch); in != "" {
		// Counted by the invoice's invoice.paid; its refunds may be keyed by either.
		ps.emit(providers.Event{Kind: providers.Link, ObjectID: in, Aliases: nonEmpty(chargeObjectID(ch), ch.ID)})
		return nil
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
	ps.oneOff(providers.Event{
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

func (ps *parser) paymentIntentSucceeded(raw json.RawMessage) error {
	var pi stripe.PaymentIntent
	if err := decode(raw, &pi, "payment_intent"); err != nil {
		return err
	}
	if pi.ID == "" {
		return malformed("payment_intent without id")
	}
	if pi.Invoice != nil && pi.Invoice.ID != "" {
		ps.emit(providers.Event{Kind: providers.Link, ObjectID: pi.Invoice.ID, Aliases: []string{pi.ID}})
		return nil
	}
	if pi.AmountReceived < 0 {
		return malformed("payment_intent %s: negative amount_received", pi.ID)
	}
	if pi.AmountReceived == 0 {
		return nil
	}
	cur, err := currency(pi.Currency)
	if err != nil {
		return err
	}
	ps.oneOff(providers.Event{
		ObjectID:           pi.ID,
		ProviderCustomerID: custID(pi.Customer),
		Email:              first(pi.ReceiptEmail, custEmail(pi.Customer)),
		CustomerKey:        first(meta(pi.Metadata, ps.keyField), custMeta(pi.Customer, ps.keyField)),
		ReferralKey:        first(meta(pi.Metadata, ReferralKeyField), custMeta(pi.Customer, ReferralKeyField)),
		Amount:             pi.AmountReceived,
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

// nonEmpty is ids without the empty ones and repeats.
func nonEmpty(ids ...string) []string {
	var out []string
	for _, id := range ids {
		if id != "" && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
