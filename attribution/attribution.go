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

// Resolve finds the program's customer an event is about, in this order: the customer
// key the payload carries (a referd id, else key), a provider-customer link already
// known, the email. When create is set, a payment that carries a referrer's key and
// matches nobody creates the referred customer on the spot. Whoever is found is linked
// to the provider's customer id for later events. found is false when nobody matches.
func Resolve(ctx context.Context, db *store.DB, p store.Program, provider string, ev providers.Event, create bool) (c store.Customer, found bool, err error) {
	c, found, err = match(ctx, db, p, provider, ev)
	if err != nil || (!found && (!create || ev.ReferralKey == "")) {
		return c, found, err
	}
	if !found {
		c, err = createReferred(ctx, db, p, ev)
		var conflict *store.ConflictError
		if errors.As(err, &conflict) {
			// Created meanwhile by a concurrent delivery: find it.
			c, found, err = match(ctx, db, p, provider, ev)
			if err != nil || !found {
				return c, found, err
			}
		} else if err != nil {
			return store.Customer{}, false, err
		}
	}
	if ev.ProviderCustomerID != "" {
		if err := store.LinkProviderCustomer(ctx, db, p.PK, provider, ev.ProviderCustomerID, c.PK); err != nil {
			return store.Customer{}, false, err
		}
	}
	return c, true, nil
}

func match(ctx context.Context, db *store.DB, p store.Program, provider string, ev providers.Event) (store.Customer, bool, error) {
	try := func(c store.Customer, err error) (store.Customer, bool, error) {
		if store.IsNotFound(err) {
			return store.Customer{}, false, nil
		}
		return c, err == nil, err
	}
	if ev.CustomerKey != "" {
		if c, ok, err := try(store.GetCustomer(ctx, db, p.PK, ev.CustomerKey, false)); ok || err != nil {
			return c, ok, err
		}
	}
	if ev.ProviderCustomerID != "" {
		if c, ok, err := try(store.LinkedCustomer(ctx, db, p.PK, provider, ev.ProviderCustomerID)); ok || err != nil {
			return c, ok, err
		}
	}
	if ev.Email != "" {
		if c, ok, err := try(store.CustomerByEmail(ctx, db, p.PK, ev.Email)); ok || err != nil {
			return c, ok, err
		}
	}
	return store.Customer{}, false, nil
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
