package ledger

import (
	"testing"
	"time"
)

// A sale without the optional fields has the fingerprint it had before they existed,
// so a retry of a sale recorded before then is still the same transaction; each
// optional field, when given, makes it another.
func TestFingerprintOfOptionalFields(t *testing.T) {
	s := Sale{Action: "sale", Amount: 1000, Units: "usd", ProductID: "p", Source: "api", Livemode: true}
	base := s.fingerprint(7)
	if want := `7|sale|1000|usd|"p"|""|api|true`; base != want {
		t.Errorf("fingerprint = %s, want %s", base, want)
	}
	zero := int64(0)
	for name, change := range map[string]func(*Sale){
		"created_at":      func(s *Sale) { s.CreatedAt = time.Date(2025, 5, 9, 17, 42, 13, 0, time.UTC) },
		"rewardable":      func(s *Sale) { s.NotRewardable = true },
		"discount_code":   func(s *Sale) { s.DiscountCode = "SPRING" },
		"discount_amount": func(s *Sale) { s.DiscountAmount = &zero },
		"gross_amount":    func(s *Sale) { s.GrossAmount = &zero },
	} {
		c := s
		change(&c)
		if c.fingerprint(7) == base {
			t.Errorf("%s does not change the fingerprint", name)
		}
	}
}
