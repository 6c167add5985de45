// Package all parses a stored webhook of any billing provider referd knows.
package all

import (
	"fmt"

	"github.com/referd/referd/providers"
	"github.com/referd/referd/providers/chargebee"
	"github.com/referd/referd/providers/paddle"
	"github.com/referd/referd/providers/stripe"
)

var parsers = map[string]func([]byte, providers.Options) (providers.Parsed, error){
	"stripe":    stripe.Parse,
	"paddle":    paddle.Parse,
	"chargebee": chargebee.Parse,
}

// Parse turns a verified body of provider into provider-neutral events.
func Parse(provider string, body []byte, opt providers.Options) (providers.Parsed, error) {
	parse, ok := parsers[provider]
	if !ok {
		return providers.Parsed{}, fmt.Errorf("providers: unknown provider %q", provider)
	}
	return parse(body, opt)
}
