package stripe

import (
	"bytes"
	"encoding/json"

	"github.com/referd/referd/providers"
)

// Where a Stripe payment names its promotion codes, by API version (DESIGN §8):
//
//   - invoices of 2023-10-16 carry discount, a Discount object whose promotion_code
//     is the promotion code's id (or, expanded, the object with its code), and
//     discounts, the ids of every discount (di_...);
//   - invoices of current versions carry only discounts (ids, or expanded objects)
//     and total_discount_amounts[].discount: the ids are learned from
//     customer.discount.created, whose Discount object names the promotion code;
//   - Checkout sessions carry total_details.breakdown.discounts[].discount when that
//     is expanded, and from 2025-01-27.acacia on discounts[].promotion_code.

// stripeDiscount is a Discount object, an id (di_...) where not expanded, or the
// {coupon, promotion_code} pair of a Checkout session's discounts.
type stripeDiscount struct {
	ID            string
	Coupon        expandable
	PromotionCode promotionCode
	Customer      expandable
}

func (d *stripeDiscount) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		return json.Unmarshal(b, &d.ID)
	case len(b) > 0 && b[0] == '{':
		var o struct {
			ID            string        `json:"id"`
			Coupon        expandable    `json:"coupon"`
			PromotionCode promotionCode `json:"promotion_code"`
			Customer      expandable    `json:"customer"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*d = stripeDiscount{ID: o.ID, Coupon: o.Coupon, PromotionCode: o.PromotionCode, Customer: o.Customer}
	}
	return nil
}

// discount is d as a provider-neutral Discount; ok is false when it names nothing.
func (d stripeDiscount) discount() (providers.Discount, bool) {
	out := providers.Discount{Code: d.PromotionCode.Code, PromotionID: d.PromotionCode.ID, DiscountID: d.ID, CouponID: string(d.Coupon)}
	return out, out != providers.Discount{}
}

// promotionCode is a promotion code's id (promo_...), or the object with its id and
// code when expanded.
type promotionCode struct {
	ID, Code string
}

func (p *promotionCode) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		return json.Unmarshal(b, &p.ID)
	case len(b) > 0 && b[0] == '{':
		var o struct {
			ID   string `json:"id"`
			Code string `json:"code"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		p.ID, p.Code = o.ID, o.Code
	}
	return nil
}

// invoiceDiscounts are the fields of an invoice that name its discounts.
type invoiceDiscounts struct {
	Discount             *stripeDiscount  `json:"discount"`
	Discounts            []stripeDiscount `json:"discounts"`
	TotalDiscountAmounts []struct {
		Discount stripeDiscount `json:"discount"`
	} `json:"total_discount_amounts"`
}

// sessionDiscounts are the fields of a Checkout session that name its discounts.
type sessionDiscounts struct {
	Discounts    []stripeDiscount `json:"discounts"`
	TotalDetails *struct {
		Breakdown *struct {
			Discounts []struct {
				Discount stripeDiscount `json:"discount"`
			} `json:"discounts"`
		} `json:"breakdown"`
	} `json:"total_details"`
}

// discountsOf reads the discounts of a payment's object raw into d (an
// *invoiceDiscounts or *sessionDiscounts) and returns them, merged: one Discount per
// discount id (or promotion code), with everything the payload says of it.
func discountsOf(raw json.RawMessage, d any) ([]providers.Discount, error) {
	if err := json.Unmarshal(raw, d); err != nil {
		return nil, err
	}
	var all []stripeDiscount
	switch d := d.(type) {
	case *invoiceDiscounts:
		if d.Discount != nil {
			all = append(all, *d.Discount)
		}
		all = append(all, d.Discounts...)
		for _, t := range d.TotalDiscountAmounts {
			all = append(all, t.Discount)
		}
	case *sessionDiscounts:
		all = append(all, d.Discounts...)
		if d.TotalDetails != nil && d.TotalDetails.Breakdown != nil {
			for _, t := range d.TotalDetails.Breakdown.Discounts {
				all = append(all, t.Discount)
			}
		}
	}
	var out []providers.Discount
	for _, sd := range all {
		nd, ok := sd.discount()
		if !ok {
			continue
		}
		merged := false
		for i := range out {
			o := &out[i]
			if (nd.DiscountID != "" && o.DiscountID == nd.DiscountID) ||
				(nd.DiscountID == "" && nd.PromotionID != "" && o.PromotionID == nd.PromotionID) {
				o.Code, o.PromotionID = first(o.Code, nd.Code), first(o.PromotionID, nd.PromotionID)
				o.DiscountID, o.CouponID = first(o.DiscountID, nd.DiscountID), first(o.CouponID, nd.CouponID)
				merged = true
				break
			}
		}
		if !merged {
			out = append(out, nd)
		}
	}
	return out, nil
}

// discountCreated reads a customer.discount.created: the Discount object says which
// promotion code its id (di_...) applies. A discount of a coupon alone, or of an
// API version whose discounts have no id, teaches nothing.
func (ps *parser) discountCreated(raw json.RawMessage) error {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return malformed("data.object is not a discount object")
	}
	var d stripeDiscount
	if err := json.Unmarshal(raw, &d); err != nil {
		return malformed("discount: %v", err)
	}
	nd, _ := d.discount()
	if nd.DiscountID == "" || (nd.PromotionID == "" && nd.Code == "") {
		return nil
	}
	ps.emit(providers.Event{Kind: providers.DiscountSeen, ProviderCustomerID: string(d.Customer), Discounts: []providers.Discount{nd}})
	return nil
}
