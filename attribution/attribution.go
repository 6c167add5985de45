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
	// with the event's outcome (store.FinishProviderEventsTx); nil when the event named
	// no provider customer or the match came from that very link.
	Link *store.ProviderLink
}

// Query is the question an event asks to find its customer: its customer key (a
// referd id, else key), the provider customer it names, its email.
func Query(p store.Program, provider string, ev providers.Event) store.MatchQuery {
	return store.MatchQuery{ProgramPK: p.PK, Key: ev.CustomerKey, Provider: provider, ProviderCustomerID: ev.ProviderCustomerID, Email: ev.Email}
}

// Resolve finds the program's customer an event is about, given c, the answer to its
// Query (store.MatchCustomers: the customer key, a provider-customer link already
// known, the email, in that order). The workers ask the queries of a batch of events
// in one statement, then resolve each event in the batch's transaction tx. When
// create is set, a payment that carries a referrer's key and matches nobody creates
// the referred customer on the spot. Found is false when nobody matches.
func Resolve(ctx context.Context, tx *store.Tx, c store.CustomerMatch, p store.Program, provider string, ev providers.Event, create bool) (Match, error) {
	if c.Via == "" && (!create || ev.ReferralKey == "") {
		return Match{}, nil
	}
	if c.Via == "" {
		var created store.Customer
		err := tx.Savepoint(ctx, func() error {
			var err error
			created, err = createReferred(ctx, tx, p, provider, ev)
			return err
		})
		var conflict *store.ConflictError
		switch {
		case errors.As(err, &conflict):
			// Created meanwhile, by a concurrent delivery or an event before this one
			// in the batch: find it.
			ms, err := store.MatchCustomers(ctx, tx, []store.MatchQuery{Query(p, provider, ev)})
			if err != nil || ms[0].Via == "" {
				return Match{}, err
			}
			c = ms[0]
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
func createReferred(ctx context.Context, tx *store.Tx, p store.Program, provider string, ev providers.Event) (store.Customer, error) {
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
	return referral.CreateCustomerTx(ctx, tx, p, in)
}
