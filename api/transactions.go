package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/referd/referd/ledger"
	"github.com/referd/referd/money"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// transactionBody is one transaction of POST /v1/transactions.
type transactionBody struct {
	Customer    *customerRef    `json:"customer"`
	Key         *referral.Text  `json:"key"`
	Amount      referral.Number `json:"amount"`
	AmountUnits string          `json:"amount_units"`
	Action      string          `json:"action"`
	ProductID   *referral.Text  `json:"product_id"`
	ProductType string          `json:"product_type"`
	// Partnero's optional fields; null is the same as absent.
	CreatedAt      *string          `json:"created_at"`
	Rewardable     *bool            `json:"rewardable"`
	DiscountCode   *referral.Text   `json:"discount_code"`
	DiscountAmount *referral.Number `json:"discount_amount"`
	GrossAmount    *referral.Number `json:"gross_amount"`
}

type customerRef struct {
	ID    *referral.Text `json:"id"`
	Key   *referral.Text `json:"key"`
	Email string         `json:"email"`
}

// sale turns the body into a Sale; amounts (amount, discount_amount, gross_amount) are
// exact major units of amount_units (the program's currency when absent).
func (b transactionBody) sale(p store.Program, customer *customerRef, prefix string, verr *referral.ValidationError) ledger.Sale {
	if b.Customer != nil {
		customer = b.Customer
	}
	s := ledger.Sale{Key: text(b.Key), Action: strings.TrimSpace(b.Action), ProductID: text(b.ProductID),
		ProductType: strings.TrimSpace(b.ProductType), Source: "api", Livemode: true,
		NotRewardable: b.Rewardable != nil && !*b.Rewardable, DiscountCode: text(b.DiscountCode)}
	if b.CreatedAt != nil && strings.TrimSpace(*b.CreatedAt) != "" {
		at, err := parseTime(*b.CreatedAt)
		if err != nil {
			verr.Add(prefix+"created_at", "The created_at must be an ISO 8601 date and time, such as 2025-05-09T17:42:13Z.")
		}
		s.CreatedAt = at
	}
	if customer == nil || (text(customer.ID) == "" && text(customer.Key) == "" && strings.TrimSpace(customer.Email) == "") {
		verr.Add(prefix+"customer", "The customer field is required (customer.id, customer.key or customer.email).")
	} else {
		s.CustomerID, s.CustomerKey, s.CustomerEmail = text(customer.ID), text(customer.Key), strings.TrimSpace(customer.Email)
	}
	s.Units = strings.ToLower(strings.TrimSpace(b.AmountUnits))
	if s.Units == "" {
		s.Units = p.Currency
	}
	scale, err := money.Scale(s.Units)
	switch {
	case err != nil || !money.IsCurrency(s.Units):
		verr.Add(prefix+"amount_units", "The amount_units must be an ISO 4217 currency code.")
	case b.Amount == "":
		verr.Add(prefix+"amount", "The amount field is required.")
	default:
		amt, err := money.ParseMajor(b.Amount.String(), scale)
		if err != nil {
			verr.Add(prefix+"amount", "The amount is not valid: "+err.Error()+".")
		}
		s.Amount = amt
		if err == nil && amt <= 0 {
			verr.Add(prefix+"amount", "The amount must be greater than 0.")
		}
	}
	if err == nil {
		s.DiscountAmount = optionalAmount(b.DiscountAmount, scale, prefix+"discount_amount", verr)
		s.GrossAmount = optionalAmount(b.GrossAmount, scale, prefix+"gross_amount", verr)
	}
	return s
}

// optionalAmount reads an optional amount in major units of a currency with scale
// decimals: nil when absent; zero or more.
func optionalAmount(n *referral.Number, scale int, field string, verr *referral.ValidationError) *int64 {
	if n == nil {
		return nil
	}
	amt, err := money.ParseMajor(n.String(), scale)
	switch {
	case err != nil:
		verr.Add(field, "The "+field+" is not valid: "+err.Error()+".")
		return nil
	case amt < 0:
		verr.Add(field, "The "+field+" must not be negative.")
	}
	return &amt
}

// timeLayouts are the ISO 8601 forms created_at may take; without an offset, UTC.
// Fractional seconds may follow the seconds in each.
var timeLayouts = []string{
	time.RFC3339, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05", "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05",
	"2006-01-02T15:04Z07:00", "2006-01-02T15:04", "2006-01-02",
}

// parseTime reads an ISO 8601 date and time (Partnero sends "2025-05-09T17:42:13.000000Z")
// whose UTC year has four digits.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	var err error
	for _, layout := range timeLayouts {
		var t time.Time
		if t, err = time.Parse(layout, s); err == nil {
			if t = t.UTC(); t.Year() < 1 || t.Year() > 9999 {
				return time.Time{}, fmt.Errorf("%q is out of range", s)
			}
			return t, nil
		}
	}
	return time.Time{}, err
}

func text(t *referral.Text) string {
	if t == nil {
		return ""
	}
	return strings.TrimSpace(string(*t))
}

// createTransactions is POST /v1/transactions: one transaction, or the batch form
// {customer, transactions: [...]} (at most 100, recorded all or none).
func (s *Server) createTransactions(w http.ResponseWriter, r *http.Request, p store.Program) error {
	var body transactionBody
	var batch struct {
		Transactions *[]transactionBody `json:"transactions"`
	}
	if err := decode(w, r, &batch, &body); err != nil {
		return err
	}
	verr := &referral.ValidationError{}
	if batch.Transactions == nil {
		sale := body.sale(p, nil, "", verr)
		if err := verr.Err(); err != nil {
			return err
		}
		t, created, err := s.sales.Record(r.Context(), p, sale)
		if err != nil {
			return err
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		respond(w, status, ledger.TransactionJSON(t))
		return nil
	}
	items := *batch.Transactions
	if len(items) == 0 || len(items) > 100 {
		return referral.Invalid("transactions", "The transactions must hold 1 to 100 transactions.")
	}
	sales := make([]ledger.Sale, len(items))
	for i, it := range items {
		sales[i] = it.sale(p, body.Customer, "transactions."+itoa(i)+".", verr)
	}
	if err := verr.Err(); err != nil {
		return err
	}
	// A batch is one database transaction of its own, admitted like other ledger writes.
	select {
	case s.ledger <- struct{}{}:
	case <-r.Context().Done():
		return r.Context().Err()
	}
	defer func() { <-s.ledger }()
	ts, created, err := ledger.RecordTransactions(r.Context(), s.DB, p, sales)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created > 0 {
		status = http.StatusCreated
	}
	respond(w, status, views(ts, ledger.TransactionJSON))
	return nil
}

func (s *Server) listTransactions(w http.ResponseWriter, r *http.Request, p store.Program) error {
	v, pg, err := listParams(w, r)
	if err != nil {
		return err
	}
	ts, total, err := ledger.ListTransactions(r.Context(), s.DB, p, strings.TrimSpace(v.Get("key")), strings.TrimSpace(v.Get("customer")), pg.Limit, pg.offset())
	if err != nil {
		return err
	}
	s.respondList(w, r, v, views(ts, ledger.TransactionJSON), total, pg)
	return nil
}

func (s *Server) getTransaction(w http.ResponseWriter, r *http.Request, p store.Program) error {
	if _, err := params(w, r); err != nil {
		return err
	}
	t, err := ledger.GetTransaction(r.Context(), s.DB, p, r.PathValue("key"))
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, ledger.TransactionJSON(t))
	return nil
}

// deleteTransaction is DELETE /v1/transactions/{key}: a full refund. Deleting again
// answers the same transaction and changes nothing.
func (s *Server) deleteTransaction(w http.ResponseWriter, r *http.Request, p store.Program) error {
	if _, err := params(w, r); err != nil {
		return err
	}
	t, _, err := ledger.RefundTransaction(r.Context(), s.DB, p, ledger.Refund{TransactionKey: r.PathValue("key")})
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, ledger.TransactionJSON(t))
	return nil
}

func (s *Server) customerStats(w http.ResponseWriter, r *http.Request, p store.Program) error {
	if _, err := params(w, r); err != nil {
		return err
	}
	c, st, err := ledger.CustomerStats(r.Context(), s.DB, p, r.PathValue("id"))
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, ledger.StatsJSON(p, c, st))
	return nil
}

func (s *Server) customerBalance(w http.ResponseWriter, r *http.Request, p store.Program) error {
	if _, err := params(w, r); err != nil {
		return err
	}
	c, bs, err := ledger.CustomerBalance(r.Context(), s.DB, p, r.PathValue("id"))
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, ledger.BalanceJSON(p, c, bs))
	return nil
}

// creditBalance is POST /v1/customers/{id}/balance/credit; it answers the balance.
// An Idempotency-Key header (or a key field) makes a retried credit change nothing.
func (s *Server) creditBalance(w http.ResponseWriter, r *http.Request, p store.Program) error {
	var in ledger.CreditInput
	if err := decode(w, r, &in); err != nil {
		return err
	}
	if k := strings.TrimSpace(r.Header.Get("Idempotency-Key")); k != "" && in.Key == nil {
		t := referral.Text(k)
		in.Key = &t
	}
	c, bs, err := ledger.CreditBalance(r.Context(), s.DB, p, r.PathValue("id"), in)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, ledger.BalanceJSON(p, c, bs))
	return nil
}

func (s *Server) customerRewards(w http.ResponseWriter, r *http.Request, p store.Program) error {
	v, pg, err := listParams(w, r)
	if err != nil {
		return err
	}
	rs, total, err := ledger.CustomerRewards(r.Context(), s.DB, p, r.PathValue("id"), pg.Limit, pg.offset())
	if err != nil {
		return err
	}
	s.respondList(w, r, v, views(rs, ledger.RewardJSON), total, pg)
	return nil
}
