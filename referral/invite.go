package referral

import (
	"context"
	"errors"
	"strings"

	"github.com/referd/referd/mail"
	"github.com/referd/referd/store"
)

// InviteInput is the body of POST /v1/customers:invite (the Partnero SDK's
// referrals()->invite($customer, $personalization)).
type InviteInput struct {
	Email           *string `json:"email"`
	Name            *string `json:"name"`
	Surname         *string `json:"surname"`
	Key             *Text   `json:"key"`
	ID              *Text   `json:"id"`
	Personalization *struct {
		Subject *string `json:"subject"`
		Message *string `json:"message"`
	} `json:"personalization"`
}

// Invitation is what InviteCustomer did: the customer invited, whether it was
// created for the invitation, and the id of the invitation (its email's cause).
type Invitation struct {
	Customer store.Customer
	Created  bool
	ID       string
}

// InviteCustomer emails the customer with in's email an invitation with their
// referral link, creating the customer (source api) when the program has none with
// that email. The customer and the queued email are written in one transaction, so
// a request that fails sends nothing; each call is an invitation of its own (calling
// again sends again). The relay queues the email's send task once it commits.
func InviteCustomer(ctx context.Context, db *store.DB, p store.Program, in InviteInput) (Invitation, error) {
	verr := &ValidationError{}
	email := checkEmail(verr, "email", in.Email)
	if !email.Valid {
		verr.Add("email", "The email field is required.")
	}
	var subject, message string
	if ps := in.Personalization; ps != nil {
		subject = checkText(verr, "personalization.subject", ps.Subject).String
		if ps.Message != nil {
			message = strings.TrimSpace(*ps.Message)
			if len(message) > 10000 || strings.ContainsRune(message, 0) {
				verr.Add("personalization.message", "The personalization.message must be at most 10000 characters, without NUL characters.")
			}
		}
	}
	if err := verr.Err(); err != nil {
		return Invitation{}, err
	}
	var out Invitation
	err := db.InTx(ctx, func(tx *store.Tx) error {
		out = Invitation{ID: "inv_" + RandomString(16)}
		c, err := store.CustomerByEmail(ctx, tx, p.PK, email.String)
		switch {
		case store.IsNotFound(err):
			c, err = CreateCustomerTx(ctx, tx, p, CustomerInput{ID: in.ID, Key: in.Key, Email: &email.String, Name: in.Name, Surname: in.Surname, Source: "api"})
			var conflict *store.ConflictError
			if errors.As(err, &conflict) && conflict.Field == "email" {
				return store.ErrRetry // a concurrent call created them: invite that customer
			}
			if err != nil {
				return err
			}
			out.Created = true
		case err != nil:
			return err
		case c.Status != "active":
			return Invalid("email", "The customer with this email is deleted; it cannot be invited.")
		}
		out.Customer = c
		name := strings.TrimSpace(c.Name.String + " " + c.Surname.String)
		m, err := mail.Invitation{Program: p.Name, Name: c.Name.String, Link: LinkURL(p, c.Key, ""),
			Subject: subject, Message: message}.Render()
		if err != nil {
			return err
		}
		return store.InsertEmail(ctx, tx, &store.Email{ProgramPK: p.PK, Cause: "invite:" + out.ID,
			ToAddress: c.Email.String, ToName: mail.OneLine(name), Subject: m.Subject, TextBody: m.Text, HTMLBody: m.HTML,
			CreatedAt: store.Now()})
	})
	return out, err
}
