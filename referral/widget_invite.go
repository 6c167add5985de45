package referral

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/referd/referd/mail"
	"github.com/referd/referd/store"
)

// Limits of the referral widget's invitations (DESIGN §7).
const (
	// WidgetInviteMax is the most addresses one request may invite.
	WidgetInviteMax = 10
	// WidgetInvitesPerDay is the most invitations one customer may send in 24 hours.
	WidgetInvitesPerDay = 50
)

// ErrTooManyInvitations is the error of a widget invitation past
// WidgetInvitesPerDay.
var ErrTooManyInvitations = fmt.Errorf("at most %d invitations a day per customer", WidgetInvitesPerDay)

// WidgetInvite is the body of POST /widget/invite, without its program and token.
type WidgetInvite struct {
	CustomerKey string
	Emails      []string
	Message     string
}

// InviteFriends queues the widget's invitations from the customer with key in.
// CustomerKey to each address in in.Emails, with their referral link, as one cause:
// all are queued in one transaction, or none (an invalid address is a
// ValidationError naming it; past WidgetInvitesPerDay in 24 hours,
// ErrTooManyInvitations). The same address twice in one request is invited once.
func InviteFriends(ctx context.Context, db *store.DB, p store.Program, in WidgetInvite, now time.Time) (int, error) {
	verr := &ValidationError{}
	var to []string
	seen := map[string]bool{}
	switch {
	case len(in.Emails) == 0:
		verr.Add("emails", "Give at least one email address.")
	case len(in.Emails) > WidgetInviteMax:
		verr.Add("emails", fmt.Sprintf("At most %d email addresses a request.", WidgetInviteMax))
	default:
		var bad []string
		for _, e := range in.Emails {
			addr := strings.TrimSpace(e)
			check := &ValidationError{}
			if v := checkEmail(check, "email", &addr); !v.Valid || check.Err() != nil {
				bad = append(bad, e)
				continue
			}
			if k := strings.ToLower(addr); !seen[k] {
				seen[k] = true
				to = append(to, addr)
			}
		}
		if len(bad) > 0 {
			verr.Add("emails", "Not email addresses: "+mail.OneLine(strings.Join(bad, ", ")))
		}
	}
	message := strings.TrimSpace(in.Message)
	if len(message) > 1000 || strings.ContainsRune(message, 0) {
		verr.Add("message", "The message must be at most 1000 characters.")
	}
	if err := verr.Err(); err != nil {
		return 0, err
	}
	err := db.InTx(ctx, func(tx *store.Tx) error {
		c, err := GetCustomer(ctx, tx, p, in.CustomerKey)
		if err != nil {
			return err
		}
		if c.Status != "active" || c.Key != in.CustomerKey {
			return &NotFoundError{What: "customer"}
		}
		// One customer's invitations are counted and queued one request at a time.
		if err := store.LockKey(ctx, tx, p.PK, "widget-invite:"+c.ID); err != nil {
			return err
		}
		prefix := "widget:" + c.ID + ":"
		sent, err := store.CountEmailsSince(ctx, tx, p.PK, prefix, now.Add(-24*time.Hour))
		if err != nil {
			return err
		}
		if sent+len(to) > WidgetInvitesPerDay {
			return ErrTooManyInvitations
		}
		m, err := mail.FriendInvitation{Program: p.Name, From: strings.TrimSpace(c.Name.String + " " + c.Surname.String),
			Link: LinkURL(p, c.Key, ""), Message: message}.Render()
		if err != nil {
			return err
		}
		cause := prefix + RandomString(16)
		for _, addr := range to {
			if err := store.InsertEmail(ctx, tx, &store.Email{ProgramPK: p.PK, Cause: cause, ToAddress: addr,
				Subject: m.Subject, TextBody: m.Text, HTMLBody: m.HTML, CreatedAt: now}); err != nil {
				return err
			}
		}
		return nil
	})
	return len(to), err
}
