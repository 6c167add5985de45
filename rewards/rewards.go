// Package rewards decides what a program's reward rules earn: for a referred
// customer's sign-up, and for each of their purchases. It is pure: no storage, no
// clock; package ledger records what it returns.
package rewards

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/referd/referd/money"
)

// Rule is one rule of a program's rewards (docs/design.md §3). Amounts are the exact
// decimals the user sent.
type Rule struct {
	Name         string       `json:"name,omitempty"`
	Recipient    string       `json:"recipient"`   // referrer | referred
	Trigger      string       `json:"trigger"`     // signup | first_purchase | purchase | subscription
	Type         string       `json:"type"`        // credit | discount | cash
	Amount       json.Number  `json:"amount"`      // fixed: major units of Currency; percent: 0-100
	AmountType   string       `json:"amount_type"` // fixed | percent
	Currency     string       `json:"currency,omitempty"`
	MinPurchase  *json.Number `json:"min_purchase,omitempty"` // in Currency
	MaxPurchases int          `json:"max_purchases"`          // 0 = unlimited
	MaxMonths    int          `json:"max_months"`             // 0 = unlimited, counted from the referral
	HoldDays     int          `json:"hold_days"`
}

// Earned is a reward that a rule grants.
type Earned struct {
	Rule       int // index of the rule in the program's list
	Recipient  string
	Trigger    string
	Type       string
	Amount     int64 // minor units of Units
	Units      string
	IsCurrency bool
	// Proportional rewards are a share of the purchase: a partial refund reverses the
	// same share of them. Others are reversed only by a full refund.
	Proportional bool
	HoldDays     int
}

// Purchase is what the rules need to know of a referred customer's sale.
type Purchase struct {
	Amount       int64 // minor units of Units
	Units        string
	Number       int  // the buyer's n-th sale (1 = first)
	Subscription bool // a subscription payment (product_type or action "subscription")
	At           time.Time
	ReferredAt   time.Time // when the buyer was referred (created as a referred customer)
}

// ForSignup is what the signup rules earn when a referred customer is created: fixed
// amounts, and percent discounts, which are a rate for a later purchase. A percent
// credit or cash reward has no purchase to take a share of and earns nothing.
func ForSignup(rules []Rule) ([]Earned, error) {
	var out []Earned
	for i, r := range rules {
		if r.Trigger != "signup" {
			continue
		}
		e, ok, err := flat(i, r)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// ForPurchase is what the purchase rules (first_purchase, purchase, subscription)
// earn for p.
func ForPurchase(rules []Rule, p Purchase) ([]Earned, error) {
	var out []Earned
	for i, r := range rules {
		switch r.Trigger {
		case "first_purchase":
			if p.Number != 1 {
				continue
			}
		case "purchase":
		case "subscription":
			if !p.Subscription {
				continue
			}
		default:
			continue
		}
		if r.MaxPurchases > 0 && p.Number > r.MaxPurchases {
			continue
		}
		if r.MaxMonths > 0 && !p.At.Before(p.ReferredAt.AddDate(0, r.MaxMonths, 0)) {
			continue
		}
		if r.MinPurchase != nil {
			ok, err := meetsMinimum(r, p)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		e, ok, err := flat(i, r)
		if err == nil && !ok {
			var amt int64
			amt, err = money.PercentOf(p.Amount, r.Amount.String())
			e = Earned{Rule: i, Recipient: r.Recipient, Trigger: r.Trigger, Type: r.Type, Amount: amt,
				Units: p.Units, IsCurrency: money.IsCurrency(p.Units), Proportional: true, HoldDays: r.HoldDays}
		}
		if err != nil {
			return nil, fmt.Errorf("rewards: rule %d: %w", i, err)
		}
		if e.Amount > 0 {
			out = append(out, e)
		}
	}
	return out, nil
}

// flat is what rule i earns whatever a purchase's amount: a fixed amount, or a
// percent discount's rate. ok is false for a percent credit or cash reward, which is
// a share of a purchase.
func flat(i int, r Rule) (e Earned, ok bool, err error) {
	switch {
	case r.AmountType == "fixed":
		e, err = fixed(i, r)
	case r.Type == "discount":
		e, err = rate(i, r)
	default:
		return Earned{}, false, nil
	}
	return e, true, err
}

// meetsMinimum compares the purchase with the rule's min_purchase, which is in the
// rule's currency: a purchase in another currency does not meet it.
func meetsMinimum(r Rule, p Purchase) (bool, error) {
	if r.Currency != p.Units {
		return false, nil
	}
	scale, err := money.Scale(r.Currency)
	if err != nil {
		return false, err
	}
	min, err := money.ParseMajor(r.MinPurchase.String(), scale)
	if err != nil {
		return false, err
	}
	return p.Amount >= min, nil
}

// rate is what a percent discount rule earns: the rate itself (units "percent", in
// hundredths of a percent), for the friend's next purchase, not money.
func rate(i int, r Rule) (Earned, error) {
	amt, err := money.ParseMajor(r.Amount.String(), 2)
	if err != nil {
		return Earned{}, fmt.Errorf("rewards: rule %d: %w", i, err)
	}
	return Earned{Rule: i, Recipient: r.Recipient, Trigger: r.Trigger, Type: r.Type, Amount: amt, Units: "percent", HoldDays: r.HoldDays}, nil
}

func fixed(i int, r Rule) (Earned, error) {
	scale, err := money.Scale(r.Currency)
	if err != nil {
		return Earned{}, fmt.Errorf("rewards: rule %d: %w", i, err)
	}
	amt, err := money.ParseMajor(r.Amount.String(), scale)
	if err != nil {
		return Earned{}, fmt.Errorf("rewards: rule %d: %w", i, err)
	}
	return Earned{Rule: i, Recipient: r.Recipient, Trigger: r.Trigger, Type: r.Type, Amount: amt,
		Units: r.Currency, IsCurrency: money.IsCurrency(r.Currency), HoldDays: r.HoldDays}, nil
}
