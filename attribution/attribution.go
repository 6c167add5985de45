// Package attribution decides who a billing provider's event is about: which of a
// program's customers paid, by the keys, links and emails docs/design.md §5 lists, and it
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

// Matcher finds whom a billing event names, as store.MatchCustomers does for one
// query (Via empty when nobody). The workers batch the queries of the events they
// process together.
type Matcher func(ctx context.Context, q store.MatchQuery) (store.CustomerMatch, error)

// Direct is the Matcher that asks the database on each call.
func Direct(db *store.DB) Matcher {
	return func(ctx context.Context, q store.MatchQuery) (store.CustomerMatch, error) {
		ms, err := store.MatchCustomers(ctx, db, []store.MatchQuery{q})
		if err != nil {
			return store.CustomerMatch{}, err
		}
		return ms[0], nil
	}
}

// Resolve finds the program's customer an event is about, in this order: the customer
// key the payload carries (a referd id, else key), a provider-customer link already
// known, the email. When create is set, a payment that carries a referrer's key and
// matches nobody creates the referred customer on the spot. Found is false when
// nobody matches.
func Resolve(ctx context.Context, db *store.DB, match Matcher, p store.Program, provider string, ev providers.Event, create bool) (Match, error) {
	q := store.MatchQuery{ProgramPK: p.PK, Key: ev.CustomerKey, Provider: provider, ProviderCustomerID: ev.ProviderCustomerID, Email: ev.Email}
	c, err := match(ctx, q)
	if err != nil || (c.Via == "" && (!create || ev.ReferralKey == "")) {
		return Match{}, err
	}
	if c.Via == "" {
		created, err := createReferred(ctx, db, p, provider, ev)
		var conflict *store.ConflictError
		switch {
		case errors.As(err, &conflict):
			// Created meanwhile by a concurrent delivery: find it.
			if c, err = match(ctx, q); err != nil || c.Via == "" {
				return Match{}, err
			}
		case err != nil:
			return Match{}, err
		default:
			c = store.CustomerMatch{PK: created.PK, ID: created.ID, ReferrerPK: created.ReferrerPK, Via: "created"}
		}
	}
	return Match{Customer: c, Found: true, Link: LinkFor(p, provider, ev, c)}, nil
}

// LinkFor is the provider-customer link that matching ev to c teaches: nil when ev
// names no provider customer or c was found by that very link.
func LinkFor(p store.Program, provider string, ev providers.Event, c store.CustomerMatch) *store.ProviderLink {
	if ev.ProviderCustomerID == "" || c.Via == "link" {
		return nil
	}
	return &store.ProviderLink{ProgramPK: p.PK, Provider: provider, ProviderCustomerID: ev.ProviderCustomerID, CustomerPK: c.PK}
}

// createReferred creates the customer a payment names by its referrer's key.
func createReferred(ctx context.Context, db *store.DB, p store.Program, provider string, ev providers.Event) (store.Customer, error) {
	ref := referral.Text(ev.ReferralKey)
	in := referral.CustomerInput{ReferringCustomer: &referral.CustomerRefInput{Key: &ref}, Source: provider}
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
