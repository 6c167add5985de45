package referral

import (
	"database/sql"
	"encoding/json"
	"net/url"
	"strings"
	"time"

	"github.com/referd/referd/store"
)

// Time renders as Partnero does: UTC with microseconds, "2025-05-09T17:42:13.000000Z".
type Time time.Time

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format("2006-01-02T15:04:05.000000Z") + `"`), nil
}

// NullTime is a Time that may be null.
func NullTime(t sql.NullTime) *Time {
	if !t.Valid {
		return nil
	}
	v := Time(t.Time)
	return &v
}

// NullString is a string that may be null.
func NullString(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	return &s.String
}

// ProgramView is the program object of GET /v1/program.
type ProgramView struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	WebsiteURL string          `json:"website_url"`
	Currency   string          `json:"currency"`
	Tracking   store.Tracking  `json:"tracking"`
	Rewards    json.RawMessage `json:"rewards"`
	// WidgetSecret keys the referral widget's token (lower-case hex HMAC-SHA256 of a
	// customer's key).
	WidgetSecret string `json:"widget_secret"`
	// Notifications are the emails the program sends (DESIGN §9).
	Notifications store.Notifications `json:"notifications"`
	CreatedAt     Time                `json:"created_at"`
	UpdatedAt     Time                `json:"updated_at"`
}

// ProgramJSON is the API's view of p.
func ProgramJSON(p store.Program) ProgramView {
	rewards := json.RawMessage(p.Rewards)
	// Re-encode through RewardRule: jsonb keeps keys in its own order, not the documented one.
	dec := json.NewDecoder(strings.NewReader(p.Rewards))
	dec.UseNumber()
	var rules []RewardRule
	if dec.Decode(&rules) == nil && rules != nil {
		rewards, _ = json.Marshal(rules)
	}
	return ProgramView{
		ID: p.ID, Name: p.Name, WebsiteURL: p.WebsiteURL, Currency: p.Currency,
		Tracking: p.Tracking, Rewards: rewards, WidgetSecret: p.WidgetSecret, Notifications: p.Notifications,
		CreatedAt: Time(p.CreatedAt), UpdatedAt: Time(p.UpdatedAt),
	}
}

// CustomerRefView is the short customer object used for referrers.
type CustomerRefView struct {
	ID    string  `json:"id"`
	Key   string  `json:"key"`
	Email *string `json:"email"`
	Name  *string `json:"name"`
}

// CustomerView is the customer object of the API and of customer.* webhook events.
type CustomerView struct {
	ID                string           `json:"id"`
	Key               string           `json:"key"`
	Email             *string          `json:"email"`
	Name              *string          `json:"name"`
	Surname           *string          `json:"surname"`
	Status            string           `json:"status"`
	Approved          bool             `json:"approved"`
	ReferringCustomer *CustomerRefView `json:"referring_customer"`
	ReferralsCount    int              `json:"referrals_count"`
	ReferralLink      string           `json:"referral_link"`
	ReferralLinks     []string         `json:"referral_links"`
	Metadata          json.RawMessage  `json:"metadata"`
	Source            string           `json:"source"`
	CreatedAt         Time             `json:"created_at"`
	UpdatedAt         Time             `json:"updated_at"`
	DeletedAt         *Time            `json:"deleted_at"`
}

// CustomerJSON is the API's view of c, with links rendered per p's tracking settings.
func CustomerJSON(p store.Program, c store.Customer) CustomerView {
	v := CustomerView{
		ID: c.ID, Key: c.Key, Email: NullString(c.Email), Name: NullString(c.Name), Surname: NullString(c.Surname),
		Status: c.Status, Approved: c.Approved, ReferralsCount: c.ReferralsCount,
		ReferralLink: LinkURL(p, c.Key, ""), Metadata: json.RawMessage(c.Metadata), Source: c.Source,
		CreatedAt: Time(c.CreatedAt), UpdatedAt: Time(c.UpdatedAt), DeletedAt: NullTime(c.DeletedAt),
		ReferralLinks: make([]string, 0, len(c.Links)+1),
	}
	if c.Referrer != nil {
		v.ReferringCustomer = RefJSON(*c.Referrer)
	}
	for _, l := range c.Links {
		dest := ""
		if l.DestinationURL != nil {
			dest = *l.DestinationURL
		}
		v.ReferralLinks = append(v.ReferralLinks, LinkURL(p, l.Key, dest))
	}
	if len(v.ReferralLinks) == 0 {
		v.ReferralLinks = append(v.ReferralLinks, v.ReferralLink)
	}
	if len(v.Metadata) == 0 {
		v.Metadata = json.RawMessage("{}")
	}
	return v
}

// RefJSON is the short view of a referring customer.
func RefJSON(r store.CustomerRef) *CustomerRefView {
	return &CustomerRefView{ID: r.ID, Key: r.Key, Email: NullString(r.Email), Name: NullString(r.Name)}
}

// LinkView is a referral link object.
type LinkView struct {
	Key            string  `json:"key"`
	URL            string  `json:"url"`
	DestinationURL *string `json:"destination_url"`
	IsDefault      bool    `json:"is_default"`
	IsAdditional   bool    `json:"is_additional"`
	DomainID       *string `json:"domain_id"`
	CreatedAt      Time    `json:"created_at"`
}

// LinkJSON is the API's view of l.
func LinkJSON(p store.Program, l store.Link) LinkView {
	return LinkView{
		Key: l.Key, URL: LinkURL(p, l.Key, l.DestinationURL.String), DestinationURL: NullString(l.DestinationURL),
		IsDefault: l.IsDefault, IsAdditional: l.IsAdditional, DomainID: NullString(l.DomainID), CreatedAt: Time(l.CreatedAt),
	}
}

// LinkURL is the shareable URL for referral key key: the program's site (or
// destination, when the link has one) with ?param=KEY (query format) or /param/KEY
// appended to its path (path format).
func LinkURL(p store.Program, key, destination string) string {
	base := p.WebsiteURL
	if destination != "" {
		base = destination
	}
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	t := p.Tracking
	if t.LinkFormat == "path" {
		u.Path = strings.TrimRight(u.Path, "/") + "/" + t.Param + "/" + key
		u.RawPath = ""
		return u.String()
	}
	q := u.Query()
	q.Set(t.Param, key)
	u.RawQuery = q.Encode()
	return u.String()
}
