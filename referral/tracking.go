package referral

import (
	"context"
	"errors"
	"strings"

	"github.com/referd/referd/store"
)

// TrackingView is what the tracking script needs of a program: its tracking
// settings and nothing else, because anyone may read it.
type TrackingView struct {
	ID           string  `json:"id"`
	LinkFormat   string  `json:"link_format"`
	Param        string  `json:"param"`
	CookieName   string  `json:"cookie_name"`
	CookieDays   int     `json:"cookie_days"`
	Attribution  string  `json:"attribution"`
	CookieDomain *string `json:"cookie_domain"`
	// BrowserSignups tells the script whether po('createCustomer') may send anything.
	BrowserSignups bool `json:"browser_signups"`
}

// TrackingJSON is the public view of p's tracking settings.
func TrackingJSON(p store.Program) TrackingView {
	t := p.Tracking
	return TrackingView{ID: p.ID, LinkFormat: t.LinkFormat, Param: t.Param, CookieName: t.CookieName,
		CookieDays: t.CookieDays, Attribution: t.Attribution, CookieDomain: t.CookieDomain, BrowserSignups: t.BrowserSignups}
}

// PublicProgram returns the program with public id id, for the endpoints that
// take no API key; a NotFoundError when there is none.
func PublicProgram(ctx context.Context, q store.Querier, id string) (store.Program, error) {
	p, err := store.ProgramByID(ctx, q, id)
	if store.IsNotFound(err) {
		return store.Program{}, &NotFoundError{What: "program"}
	}
	return p, err
}

// Referrer returns the customer behind a referral key of p (a customer key or an
// extra link key), active or not; a NotFoundError when the key is unknown.
func Referrer(ctx context.Context, q store.Querier, p store.Program, key string) (store.ReferralKey, error) {
	k, err := store.ResolveReferralKey(ctx, q, p.PK, key)
	if store.IsNotFound(err) {
		return store.ReferralKey{}, &NotFoundError{What: "referral key"}
	}
	return k, err
}

// BrowserCustomer is a customer that a site's page creates with
// po('createCustomer'): any field may be missing, and ReferralKey is what the
// visitor's referral cookie holds, whatever that is.
type BrowserCustomer struct {
	Key, Email, Name, Surname *string
	ReferralKey               string
}

// CreateBrowserCustomer creates in as a customer of p with source "js", through
// CreateCustomer, referred by the customer whose referral key (own or extra link
// key) in.ReferralKey is; an unknown key, or a deleted referrer's, creates the
// customer without a referrer. It creates nothing when the key or the email is
// already a customer's (a *store.ConflictError) or a field is invalid (a
// *ValidationError): a page may not change a customer, however it names one. A
// customer needs a key or an email: a page may not create nameless customers.
func CreateBrowserCustomer(ctx context.Context, db *store.DB, p store.Program, in BrowserCustomer) (store.Customer, error) {
	if blank(in.Key) && blank(in.Email) {
		return store.Customer{}, Invalid("email", "A customer created in the browser needs a key or an email.")
	}
	c := CustomerInput{Email: in.Email, Name: in.Name, Surname: in.Surname, Source: "js"}
	if in.Key != nil {
		k := Text(*in.Key)
		c.Key = &k
	}
	if ref := Text(strings.TrimSpace(in.ReferralKey)); ref != "" {
		withRef := c
		withRef.ReferringCustomer = &CustomerRefInput{Key: &ref}
		out, err := CreateCustomer(ctx, db, p, withRef)
		var verr *ValidationError
		if !errors.As(err, &verr) || !referrerOnly(verr) {
			return out, err
		}
		// The cookie names nobody who can refer (an unknown key, a deleted
		// customer, the customer themselves): the sign-up still counts.
	}
	return CreateCustomer(ctx, db, p, c)
}

func blank(s *string) bool { return s == nil || strings.TrimSpace(*s) == "" }

// referrerOnly reports whether verr is about the referring customer and nothing else.
func referrerOnly(verr *ValidationError) bool {
	for f := range verr.Fields {
		if !strings.HasPrefix(f, "referring_customer") {
			return false
		}
	}
	return true
}
