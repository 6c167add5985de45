// Package attribution decides who a billing provider's event is about: which of a
// program's customers paid, by the keys, links and emails DESIGN.md §5 lists, and it
// remembers provider customers it has matched.
package attribution

import (
	"context"
	"errors"

	"github.com/referd/referd/providers"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// Match is whom an event is about.
type Match struct {
	Customer store.CustomerMatch
	Found    bool
	// Link is the provider-customer link this match teaches, for the caller to store
	// with the event's outcome (store.FinishProviderEvents); nil when the event named
	// no provider customer or the match came from that very link.
	Link *store.ProviderLink
}

// Resolve finds the program's customer an event is about, in this order: the customer
// key the payload carries (a referd id, else key), a provider-customer link already
// known, the email. When create is set, a payment that carries a referrer's key and
// matches nobody creates the referred customer on the spot. Found is false when
// nobody matches.
func Resolve(ctx context.Context, db *store.DB, p store.Program, provider string, ev providers.Event, create bool) (Match, error) {
	c, err := match(ctx, db, p, provider, ev)
	if err != nil || (c.Via == "" && (!create || ev.ReferralKey == "")) {
		return Match{}, err
	}
	if c.Via == "" {
		created, err := createReferred(ctx, db, p, ev)
		var conflict *store.ConflictError
		switch {
		case errors.As(err, &conflict):
			// Created meanwhile by a concurrent delivery: find it.
			if c, err = match(ctx, db, p, provider, ev); err != nil || c.Via == "" {
				return Match{}, err
			}
		case err != nil:
			return Match{}, err
		default:
			c = store.CustomerMatch{PK: created.PK, ID: created.ID, ReferrerPK: created.ReferrerPK, Via: "created"}
		}
	}
	m := Match{Customer: c, Found: true}
	if ev.ProviderCustomerID != "" && c.Via != "link" {
		m.Link = &store.ProviderLink{ProgramPK: p.PK, Provider: provider, ProviderCustomerID: ev.ProviderCustomerID, CustomerPK: c.PK}
	}
	return m, nil
}

// match finds whom the event names; Via is empty when nobody.
func match(ctx context.Context, db *store.DB, p store.Program, provider string, ev providers.Event) (store.CustomerMatch, error) {
	m, err := store.MatchCustomer(ctx, db, p.PK, ev.CustomerKey, provider, ev.ProviderCustomerID, ev.Email)
	if store.IsNotFound(err) {
		return store.CustomerMatch{}, nil
	}
	return m, err
}

// createReferred creates the customer a payment names by its referrer's key.
func createReferred(ctx context.Context, db *store.DB, p store.Program, ev providers.Event) (store.Customer, error) {
	ref := referral.Text(ev.ReferralKey)
	in := referral.CustomerInput{ReferringCustomer: &referral.CustomerRefInput{Key: &ref}}
	if ev.CustomerKey != "" {
		k := referral.Text(ev.CustomerKey)
		in.Key = &k
	}
	if ev.Email != "" {
		email := ev.Email
		in.Email = &email
	}
	return referral.CreateCustomer(ctx, db, p, in)
}
