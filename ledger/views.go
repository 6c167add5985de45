package ledger

import (
	"database/sql"
	"encoding/json"
	"net/url"

	"github.com/referd/referd/money"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// Major renders minor units of units as the API's major-unit number.
func Major(minor int64, units string) json.Number {
	scale, err := money.Scale(units)
	if err != nil {
		scale = 2
	}
	return money.FormatMajor(minor, scale)
}

// nullMajor is Major of an amount that may be absent (null).
func nullMajor(minor sql.NullInt64, units string) *json.Number {
	if !minor.Valid {
		return nil
	}
	n := Major(minor.Int64, units)
	return &n
}

// TxRewardView is a reward as a transaction lists it.
type TxRewardView struct {
	Key            string      `json:"key"`
	Recipient      string      `json:"recipient"`
	Type           string      `json:"type"`
	Amount         json.Number `json:"amount"`
	AmountUnits    string      `json:"amount_units"`
	IsCurrency     bool        `json:"is_currency"`
	Status         string      `json:"status"`
	ReversedAmount json.Number `json:"reversed_amount"`
}

// TransactionView is the transaction object of the API and of transaction.* events.
type TransactionView struct {
	Key               string                    `json:"key"`
	Action            string                    `json:"action"`
	Amount            json.Number               `json:"amount"`
	AmountUnits       string                    `json:"amount_units"`
	RefundedAmount    json.Number               `json:"refunded_amount"`
	Customer          *referral.CustomerRefView `json:"customer"`
	ReferringCustomer *referral.CustomerRefView `json:"referring_customer"`
	ProductID         *string                   `json:"product_id"`
	ProductType       *string                   `json:"product_type"`
	DiscountCode      *string                   `json:"discount_code"`
	DiscountAmount    *json.Number              `json:"discount_amount"`
	GrossAmount       *json.Number              `json:"gross_amount"`
	Rewardable        bool                      `json:"rewardable"`
	Source            string                    `json:"source"`
	Livemode          bool                      `json:"livemode"`
	Rewards           []TxRewardView            `json:"rewards"`
	CreatedAt         referral.Time             `json:"created_at"`
	DeletedAt         *referral.Time            `json:"deleted_at"`
	// FoldedInto, present only on a folded sale, is the key of the sale this payment
	// turned out to be part of: why this one was reversed (see README, "One payment,
	// one sale").
	FoldedInto *string `json:"folded_into,omitempty"`
}

// TransactionJSON is the API's view of t.
func TransactionJSON(t store.Transaction) TransactionView {
	v := TransactionView{
		Key: t.Key, Action: t.Action, Amount: Major(t.Amount, t.Units), AmountUnits: t.Units,
		RefundedAmount: Major(t.Refunded, t.Units), Customer: referral.RefJSON(t.Buyer),
		ProductID: referral.NullString(t.ProductID), ProductType: referral.NullString(t.ProductType), DiscountCode: referral.NullString(t.DiscountCode),
		DiscountAmount: nullMajor(t.DiscountAmount, t.Units), GrossAmount: nullMajor(t.GrossAmount, t.Units),
		Rewardable: t.Rewardable, Source: t.Source, Livemode: t.Livemode,
		Rewards: make([]TxRewardView, len(t.Rewards)), CreatedAt: referral.Time(t.CreatedAt), DeletedAt: referral.NullTime(t.DeletedAt),
		FoldedInto: referral.NullString(t.FoldedInto),
	}
	if t.Referrer != nil {
		v.ReferringCustomer = referral.RefJSON(*t.Referrer)
	}
	for i, r := range t.Rewards {
		v.Rewards[i] = TxRewardView{Key: r.Key, Recipient: r.Recipient, Type: r.Type, Amount: Major(r.Amount, r.Units),
			AmountUnits: r.Units, IsCurrency: r.IsCurrency, Status: r.Status, ReversedAmount: Major(r.Reversed, r.Units)}
	}
	return v
}

// RewardView is a reward entry of GET /v1/customers/{id}/rewards and of reward.* events.
type RewardView struct {
	Key            string        `json:"key"`
	Recipient      string        `json:"recipient"`
	Type           string        `json:"type"`
	Trigger        string        `json:"trigger"`
	Amount         json.Number   `json:"amount"`
	AmountUnits    string        `json:"amount_units"`
	IsCurrency     bool          `json:"is_currency"`
	Status         string        `json:"status"`
	ReversedAmount json.Number   `json:"reversed_amount"`
	TransactionKey *string       `json:"transaction_key"`
	AvailableAt    referral.Time `json:"available_at"`
	CreatedAt      referral.Time `json:"created_at"`
}

// RewardJSON is the API's view of r.
func RewardJSON(r store.Reward) RewardView {
	return RewardView{
		Key: r.Key, Recipient: r.Recipient, Type: r.Type, Trigger: r.Trigger, Amount: Major(r.Amount, r.Units),
		AmountUnits: r.Units, IsCurrency: r.IsCurrency, Status: r.Status, ReversedAmount: Major(r.Reversed, r.Units),
		TransactionKey: referral.NullString(r.TransactionKey), AvailableAt: referral.Time(r.AvailableAt), CreatedAt: referral.Time(r.CreatedAt),
	}
}

// BalanceEntryView is one units of a balance.
type BalanceEntryView struct {
	Amount      json.Number `json:"amount"`
	AmountUnits string      `json:"amount_units"`
	IsCurrency  bool        `json:"is_currency"`
	Pending     json.Number `json:"pending"`
}

// BalanceView is the answer of GET /v1/customers/{id}/balance.
type BalanceView struct {
	Customer referral.CustomerView `json:"customer"`
	Balance  []BalanceEntryView    `json:"balance"`
}

// BalanceJSON is the API's view of a customer's balances.
func BalanceJSON(p store.Program, c store.Customer, bs []store.Balance) BalanceView {
	v := BalanceView{Customer: referral.CustomerJSON(p, c), Balance: make([]BalanceEntryView, len(bs))}
	for i, b := range bs {
		v.Balance[i] = BalanceEntryView{Amount: Major(b.Amount, b.Units), AmountUnits: b.Units, IsCurrency: b.IsCurrency, Pending: Major(b.Pending, b.Units)}
	}
	return v
}

// TotalView is one units of total_rewards.
type TotalView struct {
	Amount      json.Number `json:"amount"`
	AmountUnits string      `json:"amount_units"`
	IsCurrency  bool        `json:"is_currency"`
}

// StatsView is the answer of GET /v1/customers/{id}/stats.
type StatsView struct {
	Clicks              int64             `json:"clicks"`
	UniqueClicks        int64             `json:"unique_clicks"`
	TotalReferrals      int               `json:"total_referrals"`
	SuccessfulReferrals int               `json:"successful_referrals"`
	PendingReferrals    int               `json:"pending_referrals"`
	TotalRewards        []TotalView       `json:"total_rewards"`
	SharingLinks        map[string]string `json:"sharing_links"`
}

// StatsJSON is the API's view of a customer's stats, with share links for its referral link.
func StatsJSON(p store.Program, c store.Customer, s store.Stats) StatsView {
	v := StatsView{
		Clicks: s.Clicks, UniqueClicks: s.UniqueClicks, TotalReferrals: s.Referrals, SuccessfulReferrals: s.Successful,
		PendingReferrals: max(s.Referrals-s.Successful, 0), TotalRewards: make([]TotalView, len(s.Totals)),
	}
	for i, t := range s.Totals {
		v.TotalRewards[i] = TotalView{Amount: Major(t.Total, t.Units), AmountUnits: t.Units, IsCurrency: t.IsCurrency}
	}
	link := url.QueryEscape(referral.LinkURL(p, c.Key, ""))
	text := url.QueryEscape("Join " + p.Name + " with my referral link: " + referral.LinkURL(p, c.Key, ""))
	v.SharingLinks = map[string]string{
		"twitter":  "https://twitter.com/intent/tweet?url=" + link,
		"facebook": "https://www.facebook.com/sharer/sharer.php?u=" + link,
		"linkedin": "https://www.linkedin.com/sharing/share-offsite/?url=" + link,
		"whatsapp": "https://wa.me/?text=" + text,
		"email":    "mailto:?subject=" + url.PathEscape("Join "+p.Name) + "&body=" + url.PathEscape("Join "+p.Name+" with my referral link: "+referral.LinkURL(p, c.Key, "")),
	}
	return v
}
