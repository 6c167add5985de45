package providers_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/referd/referd/providers"
	_ "github.com/referd/referd/providers/all"
	"github.com/referd/referd/providers/stripe"
)

// The shipped providers are registered in providers/all's order (the order messages
// list them in), each under its own name, with the credentials it is verified with.
func TestShippedProviders(t *testing.T) {
	names := providers.Names()
	if want := []string{"stripe", "paddle", "chargebee"}; len(names) < 3 || !slices.Equal(names[:3], want) {
		t.Fatalf("Names() = %v, want %v first", names, want)
	}
	for _, tc := range []struct {
		name  string
		title string
		auth  providers.Auth
	}{
		{"stripe", "Stripe", providers.SigningSecrets},
		{"paddle", "Paddle", providers.SigningSecrets},
		{"chargebee", "Chargebee", providers.BasicAuth},
	} {
		p, ok := providers.Lookup(tc.name)
		if !ok {
			t.Fatalf("Lookup(%q) found nothing", tc.name)
		}
		if p.Name() != tc.name || p.Title() != tc.title || p.Auth() != tc.auth {
			t.Errorf("Lookup(%q) = %s %s %v, want %s %s %v", tc.name, p.Name(), p.Title(), p.Auth(), tc.name, tc.title, tc.auth)
		}
	}
	if p, ok := providers.Lookup("Stripe"); ok {
		t.Errorf("Lookup(Stripe) = %v: names are exact", p.Name())
	}
	names[0] = "changed"
	if providers.Names()[0] != "stripe" {
		t.Error("Names() returned the registry's own slice")
	}
}

// Register refuses names that cannot be a URL segment, a sale key's prefix and a
// value of the database's name check, the sources that are not providers, and a
// second provider under a taken name.
func TestRegisterRefuses(t *testing.T) {
	for _, name := range []string{"", "Stripe", "1pay", "acme-pay", "acme:pay", "acme pay", strings.Repeat("a", 33),
		"api", "js", "stripe", "paddle", "chargebee"} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", name)
				}
			}()
			providers.Register(renamed{name: name})
		})
	}
	if _, ok := providers.Lookup("acme-pay"); ok {
		t.Error("a refused provider was registered")
	}
}

// renamed is Stripe under another name, for Register's checks.
type renamed struct {
	stripe.Provider
	name string
}

func (r renamed) Name() string { return r.name }
