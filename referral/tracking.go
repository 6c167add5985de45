package referral

import (
	"context"

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
}

// TrackingJSON is the public view of p's tracking settings.
func TrackingJSON(p store.Program) TrackingView {
	t := p.Tracking
	return TrackingView{ID: p.ID, LinkFormat: t.LinkFormat, Param: t.Param, CookieName: t.CookieName,
		CookieDays: t.CookieDays, Attribution: t.Attribution, CookieDomain: t.CookieDomain}
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
