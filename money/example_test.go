package money_test

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/referd/referd/money"
)

// ExampleParseMajor reads an amount from a JSON request body exactly, in minor
// units of its currency, and writes it back.
func ExampleParseMajor() {
	var req struct {
		Amount   json.Number `json:"amount"`
		Currency string      `json:"currency"`
	}
	dec := json.NewDecoder(strings.NewReader(`{"amount": 10.50, "currency": "USD"}`))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		panic(err)
	}
	units, _ := money.Normalize(req.Currency)
	scale, _ := money.Scale(units)
	cents, err := money.ParseMajor(string(req.Amount), scale)
	fmt.Println(units, cents, err)

	_, err = money.ParseMajor("0.015", scale)
	fmt.Println(err)

	yen, _ := money.ParseMajor("5e3", 0)
	fmt.Println(yen)
	// Output:
	// usd 1050 <nil>
	// amount "0.015" has too many decimals: at most 2 decimals
	// 5000
}

func ExampleFormatMajor() {
	fmt.Println(money.FormatMajor(1050, 2)) // 10.50 USD
	fmt.Println(money.FormatMajor(1000, 2))
	fmt.Println(money.FormatMajor(-5, 2))
	fmt.Println(money.FormatMajor(5000, 0)) // 5000 JPY
	fmt.Println(money.FormatMajor(1234, 3)) // 1.234 KWD

	out, _ := json.Marshal(map[string]json.Number{"amount": money.FormatMajor(1050, 2)})
	fmt.Println(string(out))
	// Output:
	// 10.5
	// 10
	// -0.05
	// 5000
	// 1.234
	// {"amount":10.5}
}

// ExampleProrate reverses a 12.5% reward over two partial refunds of a
// 10.00 USD purchase. Each reversal is the cumulative share less what was
// already reversed, so the two add up to exactly the reward.
func ExampleProrate() {
	const purchase = 1000 // 10.00 USD
	reward, _ := money.PercentOf(purchase, "12.5")

	var refunded, reversed int64
	for _, refund := range []int64{500, 500} {
		refunded += refund
		reversal := money.Prorate(reward, refunded, purchase) - reversed
		reversed += reversal
		fmt.Println("refund", refund, "reverses", reversal)
	}
	fmt.Println("reward", reward, "reversed", reversed)
	// Output:
	// refund 500 reverses 63
	// refund 500 reverses 62
	// reward 125 reversed 125
}
