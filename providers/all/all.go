// Package all registers the billing providers referd ships with package providers.
// Import it for its side effect wherever the set of providers is read:
//
//	import _ "github.com/referd/referd/providers/all"
//
// Adding a provider is a new package implementing providers.Provider and one line
// here. The order of the lines is the order in which messages list the providers.
package all

import (
	"github.com/referd/referd/providers"
	"github.com/referd/referd/providers/chargebee"
	"github.com/referd/referd/providers/paddle"
	"github.com/referd/referd/providers/stripe"
)

func init() {
	providers.Register(stripe.Provider{})
	providers.Register(paddle.Provider{})
	providers.Register(chargebee.Provider{})
}
