package stripeapi

import (
	"regexp"
	"strings"
)

// apiKeyRE is a secret key (sk_) or a restricted key (rk_), test or live. Stripe's
// keys are letters and digits after the prefix, 24 to 99 of them today; Stripe
// allows keys up to 255 characters in all.
var apiKeyRE = regexp.MustCompile(`^(sk|rk)_(test|live)_[0-9A-Za-z]{8,247}$`)

// CheckAPIKey says what is wrong with key as a Stripe API key, or "" when nothing
// is. It cannot say whether Stripe knows the key: only a call can.
func CheckAPIKey(key string) string {
	switch {
	case key == "":
		return "The api_key field is empty."
	case strings.HasPrefix(key, "pk_"):
		return "The api_key must be a secret key (sk_...) or a restricted key (rk_...), not a publishable key (pk_...)."
	case !apiKeyRE.MatchString(key):
		return "The api_key must be a Stripe secret key (sk_test_... or sk_live_...) or restricted key (rk_test_... or rk_live_...), letters and digits after the prefix, at most 255 characters."
	}
	return ""
}

// MaskKey is key as it may be shown: its prefix, which says secret or restricted,
// test or live, and its last four characters ("sk_test_…abcd").
func MaskKey(key string) string {
	m := apiKeyRE.FindStringSubmatch(key)
	if m == nil || len(key) < 16 {
		return "****"
	}
	return m[1] + "_" + m[2] + "_…" + key[len(key)-4:]
}
