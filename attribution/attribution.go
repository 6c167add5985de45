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
	return resolve(ctx, tx, c, p, provider, ev, create, "")
}

// ResolveByCode is Resolve with create set, for a payment made with a promotion code
// whose owner has the id ownerID ("" when the payment named no known code): a
// payment that matches nobody creates the customer as the referral of the owner of
// the referrer's key it carries, else of the code's owner.
func ResolveByCode(ctx context.Context, tx *store.Tx, c store.CustomerMatch, p store.Program, provider string, ev providers.Event, ownerID string) (Match, error) {
	return resolve(ctx, tx, c, p, provider, ev, true, ownerID)
}

func resolve(ctx context.Context, tx *store.Tx, c store.CustomerMatch, p store.Program, provider string, ev providers.Event, create bool, ownerID string) (Match, error) {
	if c.Via == "" && (!create || (ev.ReferralKey == "" && ownerID == "")) {
		return Match{}, nil
	}
	if c.Via == "" {
		var created store.Customer
		err := tx.Savepoint(ctx, func() error {
			var err error
			created, err = createReferred(ctx, tx, p, provider, ev, ownerID)
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

// createReferred creates the customer a payment names by its referrer's key, else
// as the referral of the customer with the id ownerID (a promotion code's owner).
func createReferred(ctx context.Context, tx *store.Tx, p store.Program, provider string, ev providers.Event, ownerID string) (store.Customer, error) {
	ref := &referral.CustomerRefInput{}
	if ev.ReferralKey != "" {
		k := referral.Text(ev.ReferralKey)
		ref.Key = &k
	} else {
		id := referral.Text(ownerID)
		ref.ID = &id
	}
	in := referral.CustomerInput{ReferringCustomer: ref, Source: provider}
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
