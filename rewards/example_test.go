package rewards_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/referd/referd/money"
	"github.com/referd/referd/rewards"
)

// ExampleForPurchase evaluates a double-sided program: the referrer earns a 10%
// credit on every purchase of the friend they referred, and the friend gets a
// 5 USD discount on their first purchase.
func ExampleForPurchase() {
	rules := []rewards.Rule{
		{Recipient: "referrer", Trigger: "purchase", Type: "credit",
			Amount: json.Number("10"), AmountType: "percent"},
		{Recipient: "referred", Trigger: "first_purchase", Type: "discount",
			Amount: json.Number("5"), AmountType: "fixed", Currency: "usd"},
	}
	referredAt := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	purchases := []rewards.Purchase{
		{Amount: 4550, Units: "usd", Number: 1, At: referredAt.AddDate(0, 0, 2), ReferredAt: referredAt}, // 45.50 USD
		{Amount: 999, Units: "usd", Number: 2, At: referredAt.AddDate(0, 1, 0), ReferredAt: referredAt},  // 9.99 USD
	}
	for _, p := range purchases {
		earned, err := rewards.ForPurchase(rules, p)
		if err != nil {
			panic(err)
		}
		scale, _ := money.Scale(p.Units)
		fmt.Printf("purchase %d of %s %s:\n", p.Number, money.FormatMajor(p.Amount, scale), p.Units)
		for _, e := range earned {
			scale, _ := money.Scale(e.Units)
			fmt.Printf("  rule %d: %s %s %s %s (proportional: %t)\n",
				e.Rule, e.Recipient, e.Type, money.FormatMajor(e.Amount, scale), e.Units, e.Proportional)
		}
	}
	// Output:
	// purchase 1 of 45.5 usd:
	//   rule 0: referrer credit 4.55 usd (proportional: true)
	//   rule 1: referred discount 5 usd (proportional: false)
	// purchase 2 of 9.99 usd:
	//   rule 0: referrer credit 1 usd (proportional: true)
}
