package rewards_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/referd/referd/rewards"
)

// referredAt is when the buyer of the test purchases was referred; the default
// purchase is a day later.
var referredAt = time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)

func minPurchase(s string) *json.Number {
	n := json.Number(s)
	return &n
}

// buy is a purchase of amount minor units of units, the buyer's number-th, one day
// after the referral.
func buy(amount int64, units string, number int) rewards.Purchase {
	return rewards.Purchase{Amount: amount, Units: units, Number: number,
		At: referredAt.AddDate(0, 0, 1), ReferredAt: referredAt}
}

func sub(p rewards.Purchase) rewards.Purchase {
	p.Subscription = true
	return p
}

func at(p rewards.Purchase, t time.Time) rewards.Purchase {
	p.At = t
	return p
}

// rule is a referrer credit on every purchase; the options below change it.
func rule(amount, amountType, currency string, opts ...func(*rewards.Rule)) rewards.Rule {
	r := rewards.Rule{Recipient: "referrer", Trigger: "purchase", Type: "credit",
		Amount: json.Number(amount), AmountType: amountType, Currency: currency}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func fixedRule(amount, currency string, opts ...func(*rewards.Rule)) rewards.Rule {
	return rule(amount, "fixed", currency, opts...)
}

func percentRule(amount string, opts ...func(*rewards.Rule)) rewards.Rule {
	return rule(amount, "percent", "usd", opts...)
}

func trigger(t string) func(*rewards.Rule)   { return func(r *rewards.Rule) { r.Trigger = t } }
func typ(t string) func(*rewards.Rule)       { return func(r *rewards.Rule) { r.Type = t } }
func referred(r *rewards.Rule)               { r.Recipient = "referred" }
func hold(days int) func(*rewards.Rule)      { return func(r *rewards.Rule) { r.HoldDays = days } }
func maxPurchases(n int) func(*rewards.Rule) { return func(r *rewards.Rule) { r.MaxPurchases = n } }
func maxMonths(n int) func(*rewards.Rule)    { return func(r *rewards.Rule) { r.MaxMonths = n } }
func minimum(s string) func(*rewards.Rule) {
	return func(r *rewards.Rule) { r.MinPurchase = minPurchase(s) }
}

// earn is what a fixed rule or a percent credit/cash rule earns: an amount of a
// currency from the referrer's credit rule at index 0 on every purchase; the
// options below change it.
func earn(amount int64, units string, opts ...func(*rewards.Earned)) rewards.Earned {
	e := rewards.Earned{Rule: 0, Recipient: "referrer", Trigger: "purchase", Type: "credit",
		Amount: amount, Units: units, IsCurrency: true}
	for _, o := range opts {
		o(&e)
	}
	return e
}

func share(e *rewards.Earned) { e.Proportional = true }

// percentOff is what a percent discount earns: a rate in hundredths of a percent.
func percentOff(hundredths int64, opts ...func(*rewards.Earned)) rewards.Earned {
	e := rewards.Earned{Rule: 0, Recipient: "referrer", Trigger: "purchase", Type: "discount",
		Amount: hundredths, Units: "percent"}
	for _, o := range opts {
		o(&e)
	}
	return e
}

func index(i int) func(*rewards.Earned) { return func(e *rewards.Earned) { e.Rule = i } }
func to(recipient string) func(*rewards.Earned) {
	return func(e *rewards.Earned) { e.Recipient = recipient }
}
func on(t string) func(*rewards.Earned)   { return func(e *rewards.Earned) { e.Trigger = t } }
func kind(t string) func(*rewards.Earned) { return func(e *rewards.Earned) { e.Type = t } }
func held(days int) func(*rewards.Earned) { return func(e *rewards.Earned) { e.HoldDays = days } }

func TestForPurchase(t *testing.T) {
	tests := []struct {
		name  string
		rules []rewards.Rule
		p     rewards.Purchase
		want  []rewards.Earned
	}{
		// No rules.
		{"nil rules", nil, buy(1000, "usd", 1), nil},
		{"empty rules", []rewards.Rule{}, buy(1000, "usd", 1), nil},

		// Each type with a fixed amount: minor units of the rule's currency.
		{"fixed credit", []rewards.Rule{fixedRule("10", "usd")}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(1000, "usd")}},
		{"fixed cash", []rewards.Rule{fixedRule("10", "usd", typ("cash"))}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(1000, "usd", kind("cash"))}},
		{"fixed discount is money", []rewards.Rule{fixedRule("5", "usd", typ("discount"))}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(500, "usd", kind("discount"))}},
		{"fixed with decimals", []rewards.Rule{fixedRule("10.5", "usd")}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(1050, "usd")}},
		{"fixed with exponent", []rewards.Rule{fixedRule("1e1", "usd")}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(1000, "usd")}},
		{"fixed does not depend on the purchase amount", []rewards.Rule{fixedRule("10", "usd")}, buy(1, "usd", 1),
			[]rewards.Earned{earn(1000, "usd")}},
		{"fixed on a zero purchase", []rewards.Rule{fixedRule("10", "usd")}, buy(0, "usd", 1),
			[]rewards.Earned{earn(1000, "usd")}},
		{"fixed in the rule's currency, whatever the purchase's", []rewards.Rule{fixedRule("10", "eur")}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(1000, "eur")}},
		{"fixed jpy", []rewards.Rule{fixedRule("500", "jpy")}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(500, "jpy")}},
		{"fixed kwd", []rewards.Rule{fixedRule("1.234", "kwd")}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(1234, "kwd")}},
		{"fixed kwd with trailing zeros", []rewards.Rule{fixedRule("2.500", "kwd")}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(2500, "kwd")}},

		// Each type with a percent amount.
		{"percent credit", []rewards.Rule{percentRule("10")}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(250, "usd", share)}},
		{"percent cash", []rewards.Rule{percentRule("10", typ("cash"))}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(250, "usd", kind("cash"), share)}},
		{"percent discount is a rate", []rewards.Rule{percentRule("12.5", typ("discount"))}, buy(2500, "usd", 1),
			[]rewards.Earned{percentOff(1250)}},
		{"percent discount does not depend on the purchase", []rewards.Rule{percentRule("20", typ("discount"))}, buy(1, "jpy", 1),
			[]rewards.Earned{percentOff(2000)}},
		{"percent discount of 100", []rewards.Rule{percentRule("100", typ("discount"))}, buy(2500, "usd", 1),
			[]rewards.Earned{percentOff(10000)}},
		{"percent discount on a zero purchase", []rewards.Rule{percentRule("15", typ("discount"))}, buy(0, "usd", 1),
			[]rewards.Earned{percentOff(1500)}},
		{"percent is in the purchase's units, not the rule's", []rewards.Rule{percentRule("10")}, buy(2500, "eur", 1),
			[]rewards.Earned{earn(250, "eur", share)}},
		{"percent with four decimals", []rewards.Rule{percentRule("12.3456")}, buy(1000000, "usd", 1),
			[]rewards.Earned{earn(123456, "usd", share)}},
		{"percent of 100", []rewards.Rule{percentRule("100")}, buy(999, "usd", 1),
			[]rewards.Earned{earn(999, "usd", share)}},

		// Rounding, half away from zero to the minor unit.
		{"12.5% of 9.99 usd is 124.875 cents: 125", []rewards.Rule{percentRule("12.5")}, buy(999, "usd", 1),
			[]rewards.Earned{earn(125, "usd", share)}},
		{"12.5% of 0.99 usd is 12.375 cents: 12", []rewards.Rule{percentRule("12.5")}, buy(99, "usd", 1),
			[]rewards.Earned{earn(12, "usd", share)}},
		{"50% of 0.01 usd is half a cent: 1", []rewards.Rule{percentRule("50")}, buy(1, "usd", 1),
			[]rewards.Earned{earn(1, "usd", share)}},
		{"50% of 9.99 usd is 499.5 cents: 500", []rewards.Rule{percentRule("50")}, buy(999, "usd", 1),
			[]rewards.Earned{earn(500, "usd", share)}},
		{"33.3333% of 1.00 usd is 33.3333 cents: 33", []rewards.Rule{percentRule("33.3333")}, buy(100, "usd", 1),
			[]rewards.Earned{earn(33, "usd", share)}},
		{"1% of 0.49 usd rounds to nothing", []rewards.Rule{percentRule("1")}, buy(49, "usd", 1), nil},
		{"1% of 0.50 usd is half a cent: 1", []rewards.Rule{percentRule("1")}, buy(50, "usd", 1),
			[]rewards.Earned{earn(1, "usd", share)}},
		{"percent of a zero purchase is nothing", []rewards.Rule{percentRule("10", typ("cash"))}, buy(0, "usd", 1), nil},
		{"a zero percent reward is dropped, the others stay",
			[]rewards.Rule{percentRule("1"), fixedRule("2", "usd", referred)}, buy(49, "usd", 1),
			[]rewards.Earned{earn(200, "usd", index(1), to("referred"))}},

		// JPY (no decimals) and KWD (three).
		{"10% of 1234 jpy is 123.4: 123", []rewards.Rule{percentRule("10")}, buy(1234, "jpy", 1),
			[]rewards.Earned{earn(123, "jpy", share)}},
		{"12.5% of 1004 jpy is 125.5: 126", []rewards.Rule{percentRule("12.5")}, buy(1004, "jpy", 1),
			[]rewards.Earned{earn(126, "jpy", share)}},
		{"1% of 49 jpy rounds to nothing", []rewards.Rule{percentRule("1")}, buy(49, "jpy", 1), nil},
		{"10% of 1.235 kwd is 123.5 fils: 124", []rewards.Rule{percentRule("10")}, buy(1235, "kwd", 1),
			[]rewards.Earned{earn(124, "kwd", share)}},
		{"12.5% of 0.999 kwd is 124.875 fils: 125", []rewards.Rule{percentRule("12.5", typ("cash"))}, buy(999, "kwd", 1),
			[]rewards.Earned{earn(125, "kwd", kind("cash"), share)}},

		// Triggers.
		{"first_purchase on the first", []rewards.Rule{fixedRule("10", "usd", trigger("first_purchase"))}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(1000, "usd", on("first_purchase"))}},
		{"first_purchase not on the second", []rewards.Rule{fixedRule("10", "usd", trigger("first_purchase"))}, buy(2500, "usd", 2), nil},
		{"first_purchase, a subscription, on the first",
			[]rewards.Rule{percentRule("10", trigger("first_purchase"))}, sub(buy(2500, "usd", 1)),
			[]rewards.Earned{earn(250, "usd", on("first_purchase"), share)}},
		{"purchase on the first", []rewards.Rule{fixedRule("10", "usd")}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(1000, "usd")}},
		{"purchase on the seventh", []rewards.Rule{fixedRule("10", "usd")}, buy(2500, "usd", 7),
			[]rewards.Earned{earn(1000, "usd")}},
		{"purchase on a subscription payment", []rewards.Rule{fixedRule("10", "usd")}, sub(buy(2500, "usd", 3)),
			[]rewards.Earned{earn(1000, "usd")}},
		{"subscription on a subscription payment",
			[]rewards.Rule{percentRule("20", trigger("subscription"), typ("cash"))}, sub(buy(2500, "usd", 3)),
			[]rewards.Earned{earn(500, "usd", on("subscription"), kind("cash"), share)}},
		{"subscription on the first payment",
			[]rewards.Rule{fixedRule("10", "usd", trigger("subscription"))}, sub(buy(2500, "usd", 1)),
			[]rewards.Earned{earn(1000, "usd", on("subscription"))}},
		{"subscription not on a one-off sale", []rewards.Rule{fixedRule("10", "usd", trigger("subscription"))}, buy(2500, "usd", 1), nil},
		{"signup is not a purchase rule", []rewards.Rule{fixedRule("10", "usd", trigger("signup"))}, buy(2500, "usd", 1), nil},
		{"signup is not a purchase rule, even on a subscription",
			[]rewards.Rule{fixedRule("10", "usd", trigger("signup"), referred)}, sub(buy(2500, "usd", 1)), nil},
		{"an unknown trigger earns nothing", []rewards.Rule{fixedRule("10", "usd", trigger("refund"))}, buy(2500, "usd", 1), nil},

		// max_purchases: the rule stops after the buyer's max_purchases-th sale.
		{"max_purchases 3, first sale", []rewards.Rule{fixedRule("10", "usd", maxPurchases(3))}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(1000, "usd")}},
		{"max_purchases 3, third sale", []rewards.Rule{fixedRule("10", "usd", maxPurchases(3))}, buy(2500, "usd", 3),
			[]rewards.Earned{earn(1000, "usd")}},
		{"max_purchases 3, fourth sale", []rewards.Rule{fixedRule("10", "usd", maxPurchases(3))}, buy(2500, "usd", 4), nil},
		{"max_purchases 1, second sale", []rewards.Rule{percentRule("10", maxPurchases(1))}, buy(2500, "usd", 2), nil},
		{"max_purchases 0 is unlimited", []rewards.Rule{fixedRule("10", "usd")}, buy(2500, "usd", 1000),
			[]rewards.Earned{earn(1000, "usd")}},
		{"max_purchases counts subscription payments too",
			[]rewards.Rule{fixedRule("10", "usd", trigger("subscription"), maxPurchases(2))}, sub(buy(2500, "usd", 3)), nil},
		{"max_purchases of one rule does not stop another",
			[]rewards.Rule{fixedRule("10", "usd", maxPurchases(2)), fixedRule("1", "usd", referred)}, buy(2500, "usd", 3),
			[]rewards.Earned{earn(100, "usd", index(1), to("referred"))}},

		// max_months: purchases strictly before the referral + max_months months.
		{"max_months 1, a day after the referral", []rewards.Rule{fixedRule("10", "usd", maxMonths(1))}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(1000, "usd")}},
		{"max_months 1, at the referral", []rewards.Rule{fixedRule("10", "usd", maxMonths(1))},
			at(buy(2500, "usd", 1), referredAt), []rewards.Earned{earn(1000, "usd")}},
		{"max_months 1, a nanosecond before the month edge", []rewards.Rule{fixedRule("10", "usd", maxMonths(1))},
			at(buy(2500, "usd", 1), time.Date(2024, 2, 15, 9, 59, 59, 999999999, time.UTC)),
			[]rewards.Earned{earn(1000, "usd")}},
		{"max_months 1, exactly at the month edge", []rewards.Rule{fixedRule("10", "usd", maxMonths(1))},
			at(buy(2500, "usd", 1), time.Date(2024, 2, 15, 10, 0, 0, 0, time.UTC)), nil},
		{"max_months 1, after the month edge", []rewards.Rule{fixedRule("10", "usd", maxMonths(1))},
			at(buy(2500, "usd", 1), time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)), nil},
		{"max_months 12, a nanosecond before the year edge", []rewards.Rule{percentRule("10", maxMonths(12))},
			at(buy(2500, "usd", 5), time.Date(2025, 1, 15, 9, 59, 59, 999999999, time.UTC)),
			[]rewards.Earned{earn(250, "usd", share)}},
		{"max_months 12, exactly at the year edge", []rewards.Rule{percentRule("10", maxMonths(12))},
			at(buy(2500, "usd", 5), time.Date(2025, 1, 15, 10, 0, 0, 0, time.UTC)), nil},
		{"max_months edge is an instant, whatever the zone", []rewards.Rule{fixedRule("10", "usd", maxMonths(1))},
			at(buy(2500, "usd", 1), time.Date(2024, 2, 15, 11, 0, 0, 0, time.FixedZone("CET", 3600))), nil},
		{"max_months edge in the zone, a nanosecond before", []rewards.Rule{fixedRule("10", "usd", maxMonths(1))},
			at(buy(2500, "usd", 1), time.Date(2024, 2, 15, 10, 59, 59, 999999999, time.FixedZone("CET", 3600))),
			[]rewards.Earned{earn(1000, "usd")}},
		// Months are calendar months as time.AddDate counts them: January 31 + 1
		// month is "February 31", which normalizes to March 2 in 2024.
		{"max_months from January 31, on March 1", []rewards.Rule{fixedRule("10", "usd", maxMonths(1))},
			rewards.Purchase{Amount: 2500, Units: "usd", Number: 1,
				At:         time.Date(2024, 3, 1, 23, 59, 59, 0, time.UTC),
				ReferredAt: time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC)},
			[]rewards.Earned{earn(1000, "usd")}},
		{"max_months from January 31, on March 2", []rewards.Rule{fixedRule("10", "usd", maxMonths(1))},
			rewards.Purchase{Amount: 2500, Units: "usd", Number: 1,
				At:         time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC),
				ReferredAt: time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC)},
			nil},
		{"max_months 0 is unlimited", []rewards.Rule{fixedRule("10", "usd")},
			at(buy(2500, "usd", 1), referredAt.AddDate(50, 0, 0)), []rewards.Earned{earn(1000, "usd")}},
		{"max_months and max_purchases both bound",
			[]rewards.Rule{fixedRule("10", "usd", maxMonths(6), maxPurchases(2))},
			at(buy(2500, "usd", 3), referredAt.AddDate(0, 1, 0)), nil},

		// min_purchase, in the rule's currency.
		{"min_purchase met exactly", []rewards.Rule{fixedRule("10", "usd", minimum("25"))}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(1000, "usd")}},
		{"min_purchase exceeded", []rewards.Rule{fixedRule("10", "usd", minimum("25"))}, buy(2501, "usd", 1),
			[]rewards.Earned{earn(1000, "usd")}},
		{"min_purchase missed by a cent", []rewards.Rule{fixedRule("10", "usd", minimum("25"))}, buy(2499, "usd", 1), nil},
		{"min_purchase with decimals, met", []rewards.Rule{percentRule("10", minimum("24.99"))}, buy(2499, "usd", 1),
			[]rewards.Earned{earn(250, "usd", share)}},
		{"min_purchase with decimals, missed", []rewards.Rule{percentRule("10", minimum("24.99"))}, buy(2498, "usd", 1), nil},
		{"min_purchase 0 is met by a zero purchase", []rewards.Rule{fixedRule("10", "usd", minimum("0"))}, buy(0, "usd", 1),
			[]rewards.Earned{earn(1000, "usd")}},
		{"min_purchase never met in another currency", []rewards.Rule{fixedRule("10", "usd", minimum("25"))},
			buy(1_000_000, "eur", 1), nil},
		{"min_purchase 0 is not met in another currency", []rewards.Rule{fixedRule("10", "usd", minimum("0"))},
			buy(1_000_000, "eur", 1), nil},
		{"min_purchase of a percent rule, other currency", []rewards.Rule{percentRule("10", minimum("1"))},
			buy(1_000_000, "jpy", 1), nil},
		{"min_purchase of a percent discount, missed", []rewards.Rule{percentRule("10", typ("discount"), minimum("25"))},
			buy(2499, "usd", 1), nil},
		{"min_purchase of a percent discount, met", []rewards.Rule{percentRule("10", typ("discount"), minimum("25"))},
			buy(2500, "usd", 1), []rewards.Earned{percentOff(1000)}},
		{"min_purchase in jpy, met", []rewards.Rule{fixedRule("500", "jpy", minimum("1000"))}, buy(1000, "jpy", 1),
			[]rewards.Earned{earn(500, "jpy")}},
		{"min_purchase in jpy, missed", []rewards.Rule{fixedRule("500", "jpy", minimum("1000"))}, buy(999, "jpy", 1), nil},
		{"min_purchase in kwd, met", []rewards.Rule{fixedRule("1.5", "kwd", minimum("10.005"))}, buy(10005, "kwd", 1),
			[]rewards.Earned{earn(1500, "kwd")}},
		{"min_purchase in kwd, missed", []rewards.Rule{fixedRule("1.5", "kwd", minimum("10.005"))}, buy(10004, "kwd", 1), nil},
		{"min_purchase of one rule does not stop another",
			[]rewards.Rule{fixedRule("10", "usd", minimum("100")), percentRule("10", referred, typ("cash"))}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(250, "usd", index(1), to("referred"), kind("cash"), share)}},

		// hold_days is carried.
		{"hold_days of a fixed rule", []rewards.Rule{fixedRule("10", "usd", hold(30))}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(1000, "usd", held(30))}},
		{"hold_days of a percent rule", []rewards.Rule{percentRule("10", hold(14))}, buy(2500, "usd", 1),
			[]rewards.Earned{earn(250, "usd", share, held(14))}},
		{"hold_days of a percent discount", []rewards.Rule{percentRule("10", typ("discount"), hold(7))}, buy(2500, "usd", 1),
			[]rewards.Earned{percentOff(1000, held(7))}},

		// Double-sided programs: a rule for each recipient.
		{"double-sided, first purchase",
			[]rewards.Rule{
				percentRule("10"),
				fixedRule("5", "usd", referred, trigger("first_purchase"), typ("discount")),
			},
			buy(4550, "usd", 1),
			[]rewards.Earned{
				earn(455, "usd", share),
				earn(500, "usd", index(1), to("referred"), on("first_purchase"), kind("discount")),
			}},
		{"double-sided, second purchase",
			[]rewards.Rule{
				percentRule("10"),
				fixedRule("5", "usd", referred, trigger("first_purchase"), typ("discount")),
			},
			buy(3000, "usd", 2),
			[]rewards.Earned{earn(300, "usd", share)}},
		{"double-sided, the same rule for each",
			[]rewards.Rule{fixedRule("10", "usd", hold(30)), fixedRule("10", "usd", referred)},
			buy(2500, "usd", 1),
			[]rewards.Earned{earn(1000, "usd", held(30)), earn(1000, "usd", index(1), to("referred"))}},

		// Order and indexes follow the rules list, whatever the rules that do not fire.
		{"order and indexes",
			[]rewards.Rule{
				{Name: "welcome", Recipient: "referred", Trigger: "signup", Type: "credit", Amount: "5", AmountType: "fixed", Currency: "usd"},
				fixedRule("5", "usd", referred, trigger("first_purchase"), typ("discount")),
				percentRule("15", typ("cash"), hold(30)),
				fixedRule("3", "usd", trigger("subscription"), referred),
				percentRule("10", typ("discount"), referred, trigger("subscription")),
				fixedRule("2", "usd", maxPurchases(1)),
				fixedRule("1", "usd", trigger("purchase")),
			},
			sub(buy(2000, "usd", 2)),
			[]rewards.Earned{
				earn(300, "usd", index(2), kind("cash"), share, held(30)),
				earn(300, "usd", index(3), to("referred"), on("subscription")),
				percentOff(1000, index(4), to("referred"), on("subscription")),
				earn(100, "usd", index(6)),
			}},
		{"order is the list's, not by recipient or amount",
			[]rewards.Rule{
				fixedRule("1", "usd", referred),
				fixedRule("100", "usd"),
				fixedRule("50", "usd", referred),
			},
			buy(2500, "usd", 1),
			[]rewards.Earned{
				earn(100, "usd", to("referred")),
				earn(10000, "usd", index(1)),
				earn(5000, "usd", index(2), to("referred")),
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rewards.ForPurchase(tt.rules, tt.p)
			if err != nil {
				t.Fatalf("ForPurchase: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ForPurchase =\n%s\nwant\n%s", show(got), show(tt.want))
			}
		})
	}
}

func TestForPurchaseErrors(t *testing.T) {
	tests := []struct {
		name    string
		rules   []rewards.Rule
		p       rewards.Purchase
		wantErr string // a part of the error
	}{
		{"fixed amount not a number", []rewards.Rule{fixedRule("abc", "usd")}, buy(2500, "usd", 1), "rule 0"},
		{"fixed amount empty", []rewards.Rule{fixedRule("", "usd")}, buy(2500, "usd", 1), "rule 0"},
		{"fixed amount below the cent", []rewards.Rule{fixedRule("0.001", "usd")}, buy(2500, "usd", 1), "too many decimals"},
		{"fixed amount below the yen", []rewards.Rule{fixedRule("1.5", "jpy")}, buy(2500, "usd", 1), "too many decimals"},
		{"fixed amount below the fils", []rewards.Rule{fixedRule("1.2345", "kwd")}, buy(2500, "usd", 1), "too many decimals"},
		{"fixed amount out of range", []rewards.Rule{fixedRule("1e14", "usd")}, buy(2500, "usd", 1), "out of range"},
		{"fixed amount without a currency", []rewards.Rule{fixedRule("10", "")}, buy(2500, "usd", 1), "rule 0"},
		{"fixed amount in an unknown currency", []rewards.Rule{fixedRule("10", "zzz")}, buy(2500, "usd", 1), "unknown currency"},
		{"fixed discount not a number", []rewards.Rule{fixedRule("ten", "usd", typ("discount"))}, buy(2500, "usd", 1), "rule 0"},
		{"percent not a number", []rewards.Rule{percentRule("abc")}, buy(2500, "usd", 1), "rule 0"},
		{"percent cash not a number", []rewards.Rule{percentRule("abc", typ("cash"))}, buy(2500, "usd", 1), "rule 0"},
		{"percent over 100", []rewards.Rule{percentRule("100.01")}, buy(2500, "usd", 1), "at most 100"},
		{"percent of 0", []rewards.Rule{percentRule("0")}, buy(2500, "usd", 1), "greater than 0"},
		{"negative percent", []rewards.Rule{percentRule("-5")}, buy(2500, "usd", 1), "greater than 0"},
		{"percent with five decimals", []rewards.Rule{percentRule("12.34567")}, buy(2500, "usd", 1), "too many decimals"},
		{"percent discount not a number", []rewards.Rule{percentRule("abc", typ("discount"))}, buy(2500, "usd", 1), "rule 0"},
		// A percent discount is kept in hundredths of a percent.
		{"percent discount below a hundredth", []rewards.Rule{percentRule("12.345", typ("discount"))}, buy(2500, "usd", 1), "too many decimals"},
		{"min_purchase not a number", []rewards.Rule{fixedRule("10", "usd", minimum("abc"))}, buy(2500, "usd", 1), "not a JSON number"},
		{"min_purchase below the cent", []rewards.Rule{fixedRule("10", "usd", minimum("0.001"))}, buy(2500, "usd", 1), "too many decimals"},
		{"min_purchase below the yen", []rewards.Rule{fixedRule("10", "jpy", minimum("0.5"))}, buy(2500, "jpy", 1), "too many decimals"},
		{"a bad rule after a good one", []rewards.Rule{fixedRule("10", "usd"), percentRule("abc", referred)}, buy(2500, "usd", 1), "rule 1"},
		{"a bad rule after one that does not fire",
			[]rewards.Rule{fixedRule("10", "usd", trigger("signup")), fixedRule("0.001", "usd")}, buy(2500, "usd", 1), "rule 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rewards.ForPurchase(tt.rules, tt.p)
			if err == nil {
				t.Fatalf("ForPurchase = %s, nil; want an error", show(got))
			}
			if got != nil {
				t.Errorf("ForPurchase = %s with the error; want nil", show(got))
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ForPurchase error = %q; want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestForSignup(t *testing.T) {
	signup := func(opts ...func(*rewards.Rule)) func(*rewards.Rule) {
		return func(r *rewards.Rule) {
			r.Trigger = "signup"
			for _, o := range opts {
				o(r)
			}
		}
	}
	tests := []struct {
		name  string
		rules []rewards.Rule
		want  []rewards.Earned
	}{
		{"nil rules", nil, nil},
		{"no signup rules", []rewards.Rule{fixedRule("10", "usd"), fixedRule("10", "usd", trigger("first_purchase"))}, nil},
		{"fixed credit", []rewards.Rule{fixedRule("10", "usd", signup())},
			[]rewards.Earned{earn(1000, "usd", on("signup"))}},
		{"fixed cash", []rewards.Rule{fixedRule("10.25", "usd", signup(typ("cash")))},
			[]rewards.Earned{earn(1025, "usd", on("signup"), kind("cash"))}},
		{"fixed discount", []rewards.Rule{fixedRule("5", "usd", signup(typ("discount"), referred))},
			[]rewards.Earned{earn(500, "usd", on("signup"), kind("discount"), to("referred"))}},
		{"fixed jpy", []rewards.Rule{fixedRule("500", "jpy", signup())},
			[]rewards.Earned{earn(500, "jpy", on("signup"))}},
		{"fixed kwd", []rewards.Rule{fixedRule("1.234", "kwd", signup())},
			[]rewards.Earned{earn(1234, "kwd", on("signup"))}},
		{"hold_days", []rewards.Rule{fixedRule("10", "usd", signup(hold(30)))},
			[]rewards.Earned{earn(1000, "usd", on("signup"), held(30))}},
		{"percent credit has no purchase to take a share of", []rewards.Rule{percentRule("10", signup())}, nil},
		{"percent cash has no purchase to take a share of", []rewards.Rule{percentRule("10", signup(typ("cash")))}, nil},
		{"percent discount is a rate", []rewards.Rule{percentRule("20", signup(typ("discount"), referred))},
			[]rewards.Earned{percentOff(2000, on("signup"), to("referred"))}},
		{"percent discount for the referrer, held", []rewards.Rule{percentRule("12.5", signup(typ("discount"), hold(7)))},
			[]rewards.Earned{percentOff(1250, on("signup"), held(7))}},
		{"purchase rules are not signup rules",
			[]rewards.Rule{
				fixedRule("1", "usd", trigger("first_purchase")),
				fixedRule("2", "usd"),
				fixedRule("3", "usd", trigger("subscription")),
			}, nil},
		{"double-sided, with order and indexes",
			[]rewards.Rule{
				percentRule("10"),
				fixedRule("5", "usd", signup(hold(14))),
				fixedRule("5", "usd", trigger("first_purchase"), referred),
				percentRule("10", signup(referred)),
				fixedRule("3", "eur", signup(referred, typ("discount"))),
				fixedRule("1", "usd", signup(typ("cash"))),
				percentRule("20", signup(referred, typ("discount"))),
			},
			[]rewards.Earned{
				earn(500, "usd", index(1), on("signup"), held(14)),
				earn(300, "eur", index(4), on("signup"), to("referred"), kind("discount")),
				earn(100, "usd", index(5), on("signup"), kind("cash")),
				percentOff(2000, index(6), on("signup"), to("referred")),
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rewards.ForSignup(tt.rules)
			if err != nil {
				t.Fatalf("ForSignup: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ForSignup =\n%s\nwant\n%s", show(got), show(tt.want))
			}
		})
	}
}

func TestForSignupErrors(t *testing.T) {
	signup := trigger("signup")
	tests := []struct {
		name    string
		rules   []rewards.Rule
		wantErr string
	}{
		{"amount not a number", []rewards.Rule{fixedRule("abc", "usd", signup)}, "rule 0"},
		{"amount below the cent", []rewards.Rule{fixedRule("0.001", "usd", signup)}, "too many decimals"},
		{"amount below the yen", []rewards.Rule{fixedRule("0.5", "jpy", signup)}, "too many decimals"},
		{"no currency", []rewards.Rule{fixedRule("10", "", signup)}, "rule 0"},
		{"unknown currency", []rewards.Rule{fixedRule("10", "zzz", signup)}, "unknown currency"},
		{"a bad rule after a good one", []rewards.Rule{fixedRule("10", "usd", signup), fixedRule("abc", "usd", signup, referred)}, "rule 1"},
		{"percent discount not a number", []rewards.Rule{percentRule("abc", signup, typ("discount"))}, "rule 0"},
		{"percent discount in thousandths", []rewards.Rule{percentRule("12.345", signup, typ("discount"))}, "too many decimals"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rewards.ForSignup(tt.rules)
			if err == nil {
				t.Fatalf("ForSignup = %s, nil; want an error", show(got))
			}
			if got != nil {
				t.Errorf("ForSignup = %s with the error; want nil", show(got))
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ForSignup error = %q; want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestMatrix runs one rule of every type × amount_type × trigger against a sign-up
// and three purchases: a first one-off sale, a second one-off sale and a second
// sale that is a subscription payment.
func TestMatrix(t *testing.T) {
	type event struct {
		name   string
		signup bool
		p      rewards.Purchase
	}
	events := []event{
		{"signup", true, rewards.Purchase{}},
		{"first sale", false, buy(2500, "usd", 1)},
		{"second sale", false, buy(2500, "usd", 2)},
		{"second sale, subscription", false, sub(buy(2500, "usd", 2))},
	}
	// fires tells whether a rule with trigger fires on ev.
	fires := func(trigger, rewardType, amountType string, ev event) bool {
		switch trigger {
		case "signup": // a fixed amount, or a percent discount (a rate)
			return ev.signup && (amountType == "fixed" || rewardType == "discount")
		case "first_purchase":
			return !ev.signup && ev.p.Number == 1
		case "purchase":
			return !ev.signup
		case "subscription":
			return !ev.signup && ev.p.Subscription
		}
		panic(trigger)
	}
	n := 0
	for _, typ := range []string{"credit", "discount", "cash"} {
		for _, amountType := range []string{"fixed", "percent"} {
			for _, trig := range []string{"signup", "first_purchase", "purchase", "subscription"} {
				r := rewards.Rule{Recipient: "referred", Trigger: trig, Type: typ, Amount: "10",
					AmountType: amountType, Currency: "usd", HoldDays: 3}
				var want rewards.Earned
				switch {
				case amountType == "fixed": // 10 usd
					want = rewards.Earned{Amount: 1000, Units: "usd", IsCurrency: true}
				case typ == "discount": // 10% off
					want = rewards.Earned{Amount: 1000, Units: "percent"}
				default: // 10% of 25.00 usd
					want = rewards.Earned{Amount: 250, Units: "usd", IsCurrency: true, Proportional: true}
				}
				want.Recipient, want.Trigger, want.Type, want.HoldDays = "referred", trig, typ, 3
				// The rule is at index 1, after one that never fires.
				rules := []rewards.Rule{fixedRule("99", "usd", trigger("never")), r}
				want.Rule = 1

				for _, ev := range events {
					n++
					name := fmt.Sprintf("%s %s %s on %s", amountType, typ, trig, ev.name)
					var got []rewards.Earned
					var err error
					if ev.signup {
						got, err = rewards.ForSignup(rules)
					} else {
						got, err = rewards.ForPurchase(rules, ev.p)
					}
					if err != nil {
						t.Errorf("%s: %v", name, err)
						continue
					}
					var wantList []rewards.Earned
					if fires(trig, typ, amountType, ev) {
						wantList = []rewards.Earned{want}
					}
					if !slices.Equal(got, wantList) {
						t.Errorf("%s =\n%s\nwant\n%s", name, show(got), show(wantList))
					}
				}
			}
		}
	}
	if n != 3*2*4*len(events) {
		t.Errorf("ran %d cases", n)
	}
}

// TestForPurchaseDoesNotChangeRules checks that the rules are only read.
func TestForPurchaseDoesNotChangeRules(t *testing.T) {
	rules := []rewards.Rule{
		fixedRule("10", "usd", minimum("25"), maxMonths(3), maxPurchases(2), hold(5)),
		percentRule("12.5", typ("discount"), referred),
	}
	before := fmt.Sprintf("%+v %s", rules, *rules[0].MinPurchase)
	if _, err := rewards.ForSignup(rules); err != nil {
		t.Fatal(err)
	}
	if _, err := rewards.ForPurchase(rules, buy(2500, "usd", 1)); err != nil {
		t.Fatal(err)
	}
	if after := fmt.Sprintf("%+v %s", rules, *rules[0].MinPurchase); after != before {
		t.Errorf("rules changed:\n%s\nwas\n%s", after, before)
	}
}

// TestRulesFromJSON evaluates rules decoded from a program's stored JSON, as
// package referral reads them (json.Decoder.UseNumber).
func TestRulesFromJSON(t *testing.T) {
	const stored = `[
		{"name": "friend gets 5", "recipient": "referred", "trigger": "first_purchase", "type": "discount",
		 "amount": 5, "amount_type": "fixed", "currency": "usd", "min_purchase": 20.00},
		{"recipient": "referrer", "trigger": "purchase", "type": "cash", "amount": 12.5,
		 "amount_type": "percent", "max_purchases": 3, "max_months": 12, "hold_days": 30}
	]`
	dec := json.NewDecoder(strings.NewReader(stored))
	dec.UseNumber()
	var rules []rewards.Rule
	if err := dec.Decode(&rules); err != nil {
		t.Fatal(err)
	}
	got, err := rewards.ForPurchase(rules, buy(2000, "usd", 1))
	if err != nil {
		t.Fatal(err)
	}
	want := []rewards.Earned{
		earn(500, "usd", to("referred"), on("first_purchase"), kind("discount")),
		earn(250, "usd", index(1), kind("cash"), share, held(30)),
	}
	if !slices.Equal(got, want) {
		t.Errorf("ForPurchase =\n%s\nwant\n%s", show(got), show(want))
	}
	// 19.99 misses the friend's minimum; the fourth sale is past max_purchases.
	for _, tt := range []struct {
		p    rewards.Purchase
		want []rewards.Earned
	}{
		{buy(1999, "usd", 1), []rewards.Earned{earn(250, "usd", index(1), kind("cash"), share, held(30))}},
		{buy(2000, "usd", 4), nil},
	} {
		got, err := rewards.ForPurchase(rules, tt.p)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("ForPurchase(%+v) =\n%s\nwant\n%s", tt.p, show(got), show(tt.want))
		}
	}
}

func show(es []rewards.Earned) string {
	if es == nil {
		return "  (nothing)"
	}
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "  %+v\n", e)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
