package referral

import (
	"strings"
	"testing"

	"github.com/referd/referd/store"
)

func TestLinkURL(t *testing.T) {
	query := DefaultTracking()
	path := DefaultTracking()
	path.LinkFormat = "path"
	via := DefaultTracking()
	via.Param = "via"
	for _, tc := range []struct {
		site, dest string
		tr         store.Tracking
		key, want  string
	}{
		{"https://yoursite.com", "", query, "customer_123", "https://yoursite.com?ref=customer_123"},
		{"https://yoursite.com/", "", query, "k", "https://yoursite.com/?ref=k"},
		{"https://yoursite.com/app?lang=en", "", query, "k", "https://yoursite.com/app?lang=en&ref=k"},
		{"https://yoursite.com?ref=old", "", query, "k", "https://yoursite.com?ref=k"},
		{"https://yoursite.com", "", via, "k", "https://yoursite.com?via=k"},
		{"https://yoursite.com", "", path, "customer_123", "https://yoursite.com/ref/customer_123"},
		{"https://yoursite.com/", "", path, "k", "https://yoursite.com/ref/k"},
		{"https://yoursite.com/app/", "", path, "k", "https://yoursite.com/app/ref/k"},
		{"https://yoursite.com", "https://yoursite.com/pricing", query, "k", "https://yoursite.com/pricing?ref=k"},
		{"https://yoursite.com", "https://yoursite.com/pricing", path, "k", "https://yoursite.com/pricing/ref/k"},
		{"https://yoursite.com", "", query, "a+b", "https://yoursite.com?ref=a%2Bb"},
	} {
		p := store.Program{WebsiteURL: tc.site, Tracking: tc.tr}
		if got := LinkURL(p, tc.key, tc.dest); got != tc.want {
			t.Errorf("LinkURL(%s, %s, %s, %s) = %s, want %s", tc.site, tc.tr.LinkFormat, tc.key, tc.dest, got, tc.want)
		}
	}
}

func TestCurrencyScale(t *testing.T) {
	for code, want := range map[string]int{"usd": 2, "JPY": 0, "kwd": 3, "eur": 2} {
		got, err := currencyScale(code)
		if err != nil || got != want {
			t.Errorf("currencyScale(%s) = %d, %v; want %d", code, got, err, want)
		}
	}
	for _, bad := range []string{"", "us", "xyz1", "zzz"} {
		if _, err := currencyScale(bad); err == nil {
			t.Errorf("currencyScale(%q) accepted", bad)
		}
	}
}

func TestValidationErrorMessage(t *testing.T) {
	e := &ValidationError{}
	e.Add("name", "The name field is required.")
	if e.Error() != "The name field is required." {
		t.Errorf("one error: %q", e.Error())
	}
	e.Add("email", "The email must be a valid email address.")
	e.Add("email", "The email is too long.")
	if got := e.Error(); got != "The email must be a valid email address. (and 2 more errors)" {
		t.Errorf("three errors: %q", got)
	}
	if (&ValidationError{}).Err() != nil {
		t.Error("empty ValidationError is an error")
	}
}

func TestCheckEmail(t *testing.T) {
	for in, ok := range map[string]bool{
		"alice@example.com": true, " alice@example.com ": true, "a.b+c@sub.example.co": true,
		"[email protected]": false, "alice": false, "alice@": false, "Alice <alice@example.com>": false, "alice@localhost": false,
	} {
		verr := &ValidationError{}
		checkEmail(verr, "email", &in)
		if (verr.Err() == nil) != ok {
			t.Errorf("checkEmail(%q): valid = %v, want %v", in, verr.Err() == nil, ok)
		}
	}
}

func TestNewAPIKey(t *testing.T) {
	k1, h1, p1 := NewAPIKey()
	k2, _, _ := NewAPIKey()
	if k1 == k2 || !strings.HasPrefix(k1, APIKeyPrefix) || len(k1) != len(APIKeyPrefix)+40 {
		t.Errorf("keys %q %q", k1, k2)
	}
	if string(h1) != string(HashAPIKey(k1)) || len(h1) != 32 || !strings.HasPrefix(k1, p1) || strings.Contains(string(h1), k1) {
		t.Errorf("hash/prefix of %q: %x %q", k1, h1, p1)
	}
}

func TestRandomStringAlphabet(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		s := RandomString(10)
		if len(s) != 10 || strings.Trim(s, alphabet) != "" || seen[s] {
			t.Fatalf("RandomString gave %q", s)
		}
		seen[s] = true
	}
}
