package referral

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/referd/referd/store"
)

// FuzzCustomerInput decodes arbitrary request bodies as POST /v1/customers does and
// validates them: nothing panics, and whatever passes is safe to store and to put in
// a link.
func FuzzCustomerInput(f *testing.F) {
	for _, seed := range []string{
		`{"key": "customer_123", "email": "alice@example.com", "name": "Alice"}`,
		`{"referring_customer": {"key": "k"}, "key": "k2", "metadata": {"a": [1, {"b": null}]}}`,
		`{"id": 12345, "key": 1e3, "referring_customer": {"id": "x"}}`,
		`{"key": {"a": 1}}`, `{"key": true}`, `{"name": "a\u0000", "metadata": {"\u0000": 1e999}}`, `[]`, `{"email": "[email protected] "}`,
	} {
		f.Add(seed)
	}
	p := store.Program{PK: 1, WebsiteURL: "https://acme.test/app", Tracking: DefaultTracking()}
	f.Fuzz(func(t *testing.T, body string) {
		var in CustomerInput
		if err := json.Unmarshal([]byte(body), &in); err != nil {
			_ = err.Error() // the message must be printable
			return
		}
		c, refID, refKey, err := in.validate(p)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("validation error without a message")
			}
			return
		}
		if c.ID == "" || c.Key == "" || strings.ContainsAny(c.Key, "/?#&% \t\n") {
			t.Fatalf("accepted id %q key %q", c.ID, c.Key)
		}
		for _, v := range []string{c.ID, c.Key, c.Email.String, c.Name.String, c.Surname.String, c.Metadata} {
			if strings.ContainsRune(v, 0) || strings.Contains(v, `\u0000`) {
				t.Fatalf("accepted a NUL, which PostgreSQL cannot store: %q", v)
			}
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(c.Metadata), &m); err != nil || m == nil {
			t.Fatalf("metadata %q is not an object", c.Metadata)
		}
		if refID == c.ID && refID != "" || refID == "" && refKey != "" && refKey == c.Key {
			t.Fatalf("self-referral accepted: %q %q", refID, refKey)
		}
		for _, format := range []string{"query", "path"} {
			p.Tracking.LinkFormat = format
			u, err := url.Parse(LinkURL(p, c.Key, ""))
			if err != nil {
				t.Fatal(err)
			}
			got := u.Query().Get("ref")
			if format == "path" {
				got = strings.TrimPrefix(u.Path, "/app/ref/")
			}
			if got != c.Key {
				t.Fatalf("%s link %s does not carry key %q", format, u, c.Key)
			}
		}
		if _, err := json.Marshal(CustomerJSON(p, c)); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzProgramPatch validates arbitrary PATCH /v1/program bodies: nothing panics and
// whatever passes reads back as valid settings.
func FuzzProgramPatch(f *testing.F) {
	for _, seed := range []string{
		`{"tracking": {"link_format": "path", "cookie_domain": ".acme.test"}}`,
		`{"rewards": [{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10.5, "amount_type": "fixed", "currency": "KWD"}]}`,
		`{"rewards": [{"amount": 1e400}]}`, `{"rewards": [{"amount": 1e999999999, "amount_type": "fixed"}]}`, `{"currency": "jpy", "tracking": null}`, `{"rewards": [{"min_purchase": -0}]}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var patch ProgramPatch
		if json.Unmarshal([]byte(body), &patch) != nil {
			return
		}
		p := store.Program{Name: "A", WebsiteURL: "https://a.test", Currency: "usd", Tracking: DefaultTracking(), Rewards: "[]"}
		out, err := applyPatch(p, patch)
		if err != nil {
			return
		}
		if out.Tracking.LinkFormat != "query" && out.Tracking.LinkFormat != "path" || out.Tracking.CookieDays < 0 {
			t.Fatalf("accepted tracking %+v", out.Tracking)
		}
		var rules []RewardRule
		if err := json.Unmarshal([]byte(out.Rewards), &rules); err != nil {
			t.Fatalf("stored rewards %q do not read back: %v", out.Rewards, err)
		}
		for _, r := range rules {
			if _, err := currencyScale(r.Currency); err != nil {
				t.Fatalf("accepted currency %q", r.Currency)
			}
		}
		_ = ProgramJSON(out)
	})
}
