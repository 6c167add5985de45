package ledger

import (
	"context"
	"encoding/json"

	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// RewardedView is the data of a customer.rewarded event: the reward entry as the
// customer's rewards list shows it, and the customer it went to.
type RewardedView struct {
	RewardView
	Customer *referral.CustomerRefView `json:"customer"`
}

// rewardedEvent is the customer.rewarded event of r, a reward of a sale of referred
// (or of their sign-up) referred by referrer: the friend's reward went to referred,
// the referrer's to referrer.
func rewardedEvent(r store.Reward, referrer *store.CustomerRef, referred store.CustomerRef) store.Event {
	to := referred
	if r.Recipient != "referred" && referrer != nil {
		to = *referrer
	}
	return event("customer.rewarded", RewardedView{RewardJSON(r), referral.RefJSON(to)})
}

// writeRewarded writes the customer.rewarded event of r, just stored by
// store.InsertReward, in the same transaction.
func writeRewarded(ctx context.Context, q store.Querier, r store.Reward, referrer *store.CustomerRef, referred store.CustomerRef) error {
	ev := rewardedEvent(r, referrer, referred)
	return store.InsertOutbox(ctx, q, r.ProgramPK, ev.Event, string(ev.Payload), r.CreatedAt)
}

// CreditedView is the data of a customer.credited event: a manual credit, or a
// debit with a negative amount, in major units.
type CreditedView struct {
	Customer    *referral.CustomerRefView `json:"customer"`
	Amount      json.Number               `json:"amount"`
	AmountUnits string                    `json:"amount_units"`
	IsCurrency  bool                      `json:"is_currency"`
	Note        *string                   `json:"note"`
}

// CreditedJSON is the customer.credited data of credit c to customer to.
func CreditedJSON(to store.Customer, c store.Credit) CreditedView {
	return CreditedView{
		Customer: referral.RefJSON(store.CustomerRef{PK: to.PK, ID: to.ID, Key: to.Key, Email: to.Email, Name: to.Name}),
		Amount:   Major(c.Amount, c.Units), AmountUnits: c.Units, IsCurrency: c.IsCurrency, Note: referral.NullString(c.Note),
	}
}
