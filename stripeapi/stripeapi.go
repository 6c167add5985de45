// Package stripeapi is what referd asks Stripe's API, with a business's own API key
// (PUT /v1/integrations/stripe {"api_key": ...}): it creates promotion codes for
// referrers and learns which promotion code a payment used (DESIGN §8).
//
// Every call pins the API version stripe-go v76 speaks, APIVersion, whatever the
// account's default version is, so the shapes referd reads never change under it.
// Calls go to Stripe, or to Options.URL (REFERD_STRIPE_API_URL): stripe-mock in tests.
package stripeapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"time"

	stripe "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/referd/referd/cache"
)

// Provider is the integration whose API key this package uses.
const Provider = "stripe"

// APIVersion is the Stripe-Version of every call: the version of stripe-go v76's
// types, and of stripe-mock v0.162.0's spec.
const APIVersion = "2023-10-16"

// DefaultURL is Stripe's API.
const DefaultURL = stripe.APIURL

// Options configure a Client. The zero value calls Stripe.
type Options struct {
	// URL is the API's base URL (REFERD_STRIPE_API_URL); empty: Stripe's.
	URL string
	// HTTPClient makes the calls; nil: one with a 30 s timeout.
	HTTPClient *http.Client
	// Retries is how many times a call that failed on the network, or that Stripe
	// answered with 409, 429 or 5xx, is tried again (with the same idempotency key)
	// before its error is returned; 0: 2, negative: none.
	Retries int
	// CodeTTL is how long a promotion code id's code is kept; 0: a day. Stripe never
	// changes the code of a promotion code.
	CodeTTL time.Duration
	// MissTTL is how long "no such promotion code" is kept; 0: a minute.
	MissTTL time.Duration
}

// Client calls Stripe's API. It is safe for concurrent use; keep one per process.
type Client struct {
	backends *stripe.Backends
	codes    *cache.Cache[cacheKey, string]
	misses   *cache.Cache[cacheKey, *Error]
}

// cacheKey is a promotion code id in one Stripe account. The account is known by a
// hash of the API key, so that the key itself is not kept around.
type cacheKey struct {
	account [16]byte
	id      string
}

func keyOf(apiKey, id string) cacheKey {
	sum := sha256.Sum256([]byte(apiKey))
	k := cacheKey{id: id}
	copy(k.account[:], sum[:16])
	return k
}

// New returns a Client.
func New(o Options) *Client {
	url := o.URL
	if url == "" {
		url = DefaultURL
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	retries := int64(o.Retries)
	switch {
	case o.Retries == 0:
		retries = 2
	case o.Retries < 0:
		retries = 0
	}
	codeTTL, missTTL := o.CodeTTL, o.MissTTL
	if codeTTL == 0 {
		codeTTL = 24 * time.Hour
	}
	if missTTL == 0 {
		missTTL = time.Minute
	}
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(url),
		HTTPClient:        hc,
		MaxNetworkRetries: stripe.Int64(retries),
		// Errors are returned to the caller, who logs them once with their context.
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	return &Client{
		backends: &stripe.Backends{API: backend, Connect: backend, Uploads: backend},
		codes:    &cache.Cache[cacheKey, string]{TTL: codeTTL},
		misses:   &cache.Cache[cacheKey, *Error]{TTL: missTTL},
	}
}

// api is stripe-go's client for one API key: a business's key is only known per
// call, so the client is made per call over the shared backend.
func (c *Client) api(apiKey string) *client.API {
	return client.New(apiKey, c.backends)
}

func params(ctx context.Context, p *stripe.Params, idempotencyKey string) {
	p.Context = ctx
	if idempotencyKey != "" {
		p.IdempotencyKey = stripe.String(idempotencyKey)
	}
}

// errNotCached makes cache.Get a look-up that loads nothing: errors are not cached.
var errNotCached = errors.New("not cached")

// ResolvePromotionCode returns the code (what a customer types) of the promotion
// code with Stripe id id (promo_...). Codes are cached for CodeTTL, and "no such
// promotion code" (an *Error with NotFound) for MissTTL.
func (c *Client) ResolvePromotionCode(ctx context.Context, apiKey, id string) (string, error) {
	if id == "" {
		// stripe-go would read the list of promotion codes instead.
		return "", errors.New("stripeapi.ResolvePromotionCode: empty id")
	}
	k := keyOf(apiKey, id)
	if miss, err := c.misses.Get(ctx, k, func(context.Context) (*Error, error) { return nil, errNotCached }); err == nil {
		return "", miss
	}
	return c.codes.Get(ctx, k, func(ctx context.Context) (string, error) {
		p := &stripe.PromotionCodeParams{}
		params(ctx, &p.Params, "")
		pc, err := c.api(apiKey).PromotionCodes.Get(id, p)
		if err != nil {
			e := wrap("get promotion code "+id, err)
			if e.NotFound() {
				c.misses.Get(ctx, k, func(context.Context) (*Error, error) { return e, nil })
			}
			return "", e
		}
		return pc.Code, nil
	})
}

// remember caches a promotion code's code learned from another answer.
func (c *Client) remember(ctx context.Context, apiKey, id, code string) {
	if id == "" || code == "" {
		return
	}
	c.codes.Get(ctx, keyOf(apiKey, id), func(context.Context) (string, error) { return code, nil })
}

// AppliedDiscount is a discount applied to an invoice: its coupon and, when a
// customer entered one, the promotion code.
type AppliedDiscount struct {
	ID              string // di_...
	CouponID        string
	PromotionCodeID string // promo_..., empty without a promotion code
	Code            string // the promotion code's code, empty without one
}

// InvoiceDiscountCodes returns the discounts of the invoice with Stripe id
// invoiceID, with their promotion codes.
//
// Stripe's API has no way to read a discount by its id (di_...): a Discount is
// only readable inside what it applies to (an invoice, a subscription, a customer).
// Events of current API versions name an invoice's discounts by id only, so the
// invoice is read with its discounts and their promotion codes expanded.
func (c *Client) InvoiceDiscountCodes(ctx context.Context, apiKey, invoiceID string) ([]AppliedDiscount, error) {
	if invoiceID == "" {
		return nil, errors.New("stripeapi.InvoiceDiscountCodes: empty invoice id")
	}
	p := &stripe.InvoiceParams{}
	params(ctx, &p.Params, "")
	p.AddExpand("discounts")
	p.AddExpand("discounts.promotion_code")
	inv, err := c.api(apiKey).Invoices.Get(invoiceID, p)
	if err != nil {
		return nil, wrap("get invoice "+invoiceID, err)
	}
	var out []AppliedDiscount
	for _, d := range inv.Discounts {
		if d == nil {
			continue
		}
		a := AppliedDiscount{ID: d.ID}
		if d.Coupon != nil {
			a.CouponID = d.Coupon.ID
		}
		if d.PromotionCode != nil {
			a.PromotionCodeID, a.Code = d.PromotionCode.ID, d.PromotionCode.Code
			if a.Code == "" && a.PromotionCodeID != "" {
				// Not expanded (a deleted discount is only an id): ask for it.
				if a.Code, err = c.ResolvePromotionCode(ctx, apiKey, a.PromotionCodeID); err != nil {
					return nil, err
				}
			}
			c.remember(ctx, apiKey, a.PromotionCodeID, a.Code)
		}
		out = append(out, a)
	}
	return out, nil
}
