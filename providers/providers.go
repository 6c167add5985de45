// Package providers holds what every billing provider's package turns a verified
// webhook into: provider-neutral events (a payment, a refund, a customer seen). Each
// provider lives in a sub-package (stripe, paddle, chargebee) that knows its provider
// and nothing else, and implements Provider; everything after these types is shared,
// so a fourth provider is one new package and one line in package providers/all,
// which registers them (Register). The rest of referd reads the set from the
// registry (Lookup, Names) and lists the providers nowhere else.
package providers

import (
	"errors"
	"time"
)

// Kind is what an event means for referd.
type Kind string

// The kinds of provider-neutral events.
const (
	// Payment is money received from a customer: a sale to record.
	Payment Kind = "payment"
	// Refund is money given back for an earlier payment.
	Refund Kind = "refund"
	// CustomerSeen links a provider's customer to what referd can match it by.
	CustomerSeen Kind = "customer"
	// Link says that the payment of ObjectID also goes by the ids in Aliases (a
	// Stripe invoice paid through a PaymentIntent and its charge), so that events
	// keyed by an alias (the charge's refund) reach the sale of ObjectID.
	Link Kind = "link"
	// DiscountSeen says what a provider's discount (Discounts[0].DiscountID) applies:
	// a promotion code, by its provider id or its text (a Stripe
	// customer.discount.created), so that payments that name only the discount id
	// (Stripe invoices of current API versions) find the code.
	DiscountSeen Kind = "discount"
)

// Discount is a promotion code or discount a payment carries, in as many of its
// provider's names as the payload gives. Any one of them may find the program's
// promotion code (DESIGN §8).
type Discount struct {
	// Code is the code's text, as the customer typed it (Stripe's expanded
	// promotion_code.code, Paddle's discount.code).
	Code string
	// PromotionID is the provider's id of the promotion code, as provider_ids holds
	// it: a Stripe promotion code (promo_...), a Paddle discount (dsc_...), a
	// Chargebee coupon.
	PromotionID string
	// DiscountID is the provider's id of this application of it (a Stripe discount,
	// di_...), which a DiscountSeen may have said the promotion code of.
	DiscountID string
	// CouponID is the coupon behind it (Stripe's, Chargebee's); informative.
	CouponID string
}

// Event is one provider-neutral fact from a webhook. Amounts are integer minor units
// of Currency, as the providers send them.
type Event struct {
	Kind Kind

	// ObjectID is the provider's id of the paid or refunded object (Stripe invoice or
	// charge, Paddle transaction, Chargebee transaction): the sale's key is derived
	// from it, so retries and duplicates map to one transaction.
	ObjectID string
	// Aliases are other ids of the same payment (a Payment's or a Link's): events
	// keyed by one of them are about ObjectID's sale.
	Aliases []string
	// Hold says the payment may yet turn out to be part of another object whose link
	// has not arrived (a Stripe charge on an API version whose charges no longer name
	// their invoice): record it only once Hold has passed since the event was
	// received, and only if no Link has named ObjectID as an alias by then.
	Hold time.Duration
	// ProviderCustomerID is the provider's customer id (cus_..., ctm_..., ...).
	ProviderCustomerID string
	// Email is the paying customer's email, when the payload has it.
	Email string
	// CustomerKey is referd's customer id or key carried by the payload: Stripe
	// client_reference_id or metadata[customer_key_field], Paddle
	// custom_data[customer_key_field], Chargebee customer meta or cf_ field.
	CustomerKey string
	// ReferralKey is a referrer's key carried by the payment (metadata.referral_key /
	// custom_data.referral_key): a payment with it and no known customer creates the
	// referred customer.
	ReferralKey string

	// Amount and Currency: for a Payment, what was paid; for a Refund, what was
	// refunded (see Cumulative). Currency is a lower-case ISO 4217 code.
	Amount   int64
	Currency string
	// RefundID identifies a refund on its own (a Refund's idempotency key).
	RefundID string
	// Cumulative says a Refund's Amount is the total refunded so far on ObjectID
	// (Stripe charge.refunded's amount_refunded), not this refund alone.
	Cumulative bool

	// Discounts are the promotion codes and discounts a Payment was paid with, or
	// for a DiscountSeen, the discount seen.
	Discounts []Discount

	// Subscription says the payment is a subscription's (first or renewal).
	Subscription bool
	ProductID    string
	Livemode     bool
	OccurredAt   time.Time
}

// Parsed is a verified webhook: the provider's event id and type, and the events it
// means (none for types referd stores but does not act on).
type Parsed struct {
	EventID  string
	Type     string
	Livemode bool
	Events   []Event
}

// Options are a program's settings for parsing its webhooks.
type Options struct {
	// CustomerKeyField names the metadata / custom_data field that carries referd's
	// customer key (default "customer_key").
	CustomerKeyField string
}

// KeyField is o.CustomerKeyField or its default.
func (o Options) KeyField() string {
	if o.CustomerKeyField == "" {
		return "customer_key"
	}
	return o.CustomerKeyField
}

// ErrSignature means the webhook's signature (or credentials) did not verify: answer
// 400 (SigningSecrets providers) or 401 (BasicAuth ones), and store nothing.
var ErrSignature = errors.New("providers: signature does not verify")

// ErrMalformed means a verified body is not the provider's webhook JSON.
var ErrMalformed = errors.New("providers: malformed webhook body")
