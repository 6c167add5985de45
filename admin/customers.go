package admin

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/referd/referd/ledger"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// customers lists the program's customers, newest first, or those a search finds
// (GET /admin/customers?q=): a part of their id, key, email or name.
func (c *Console) customers(w http.ResponseWriter, r *http.Request, s *session) error {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > 200 {
		q = q[:200]
	}
	page, offset := pageOf(r)
	f := store.CustomerFilter{ProgramPK: s.Program.PK, Query: q, Limit: pageSize, Offset: offset}
	if q != "" {
		// A search reads one row more than a page instead of counting every match.
		f.NoTotal, f.Limit = true, pageSize+1
	}
	list, total, err := referral.ListCustomers(r.Context(), c.DB, f)
	if err != nil {
		return err
	}
	pg := newPager(page, total, "/admin/customers")
	if q != "" {
		more := len(list) > pageSize
		list = list[:min(len(list), pageSize)]
		pg = probePager(page, more, "/admin/customers?q="+url.QueryEscape(q))
	}
	c.render(w, r, s, http.StatusOK, "customers", "Customers", map[string]any{
		"Query": q, "Customers": list, "Pager": pg})
	return nil
}

// customerPage is what the page of one customer shows.
type customerPage struct {
	Customer   store.Customer
	Link       string
	Stats      store.Stats
	Referrals  []store.Customer
	NReferrals int
	Links      []store.Link
	Rewards    []store.Reward
	NRewards   int
	Balances   []store.Balance
	Ledger     []store.LedgerEntry
	NLedger    int
	Extra      []customerSection
	// The credit form, as posted when it was refused, and why.
	Form   map[string]string
	Errors map[string][]string
}

// customerSection is more of a customer's page, from another part of referd (the
// promotion codes).
type customerSection struct {
	Title string
	Rows  [][]string
	Empty string
}

// customerSections adds sections to a customer's page; set by other files' init.
var customerSections []func(c *Console, r *http.Request, s *session, cu store.Customer) (customerSection, error)

// customer shows one customer (GET /admin/customers/{id}, id or key).
func (c *Console) customer(w http.ResponseWriter, r *http.Request, s *session) error {
	return c.showCustomer(w, r, s, http.StatusOK, nil, nil)
}

func (c *Console) showCustomer(w http.ResponseWriter, r *http.Request, s *session, status int, form map[string]string, errs map[string][]string) error {
	ctx, p := r.Context(), s.Program
	cu, err := referral.GetCustomer(ctx, c.DB, p, r.PathValue("id"))
	if err != nil {
		return err
	}
	v := customerPage{Customer: cu, Link: referral.LinkURL(p, cu.Key, ""), Form: form, Errors: errs}
	if v.Stats, err = store.CustomerStats(ctx, c.DB, cu.PK); err != nil {
		return err
	}
	if v.Referrals, v.NReferrals, err = referral.ListCustomers(ctx, c.DB, store.CustomerFilter{ProgramPK: p.PK, ReferrerPK: cu.PK, Limit: 20}); err != nil {
		return err
	}
	if v.Links, err = referral.Links(ctx, c.DB, p, cu.ID); err != nil {
		return err
	}
	if v.Rewards, v.NRewards, err = store.ListRewards(ctx, c.DB, cu.PK, 20, 0); err != nil {
		return err
	}
	if v.Balances, err = store.Balances(ctx, c.DB, cu.PK); err != nil {
		return err
	}
	if v.Ledger, v.NLedger, err = store.LedgerEntries(ctx, c.DB, cu.PK, 20); err != nil {
		return err
	}
	for _, f := range customerSections {
		sec, err := f(c, r, s, cu)
		if err != nil {
			return err
		}
		v.Extra = append(v.Extra, sec)
	}
	if v.Form == nil {
		v.Form = map[string]string{"units": p.Currency}
	}
	if v.Form["key"] == "" {
		v.Form["key"] = "console_" + randomToken(12) // a form posted twice credits once
	}
	c.render(w, r, s, status, "customer", customerName(cu), v)
	return nil
}

// customerName is how the console titles a customer.
func customerName(cu store.Customer) string {
	if n := strings.TrimSpace(cu.Name.String + " " + cu.Surname.String); n != "" {
		return n
	}
	if cu.Email.Valid {
		return cu.Email.String
	}
	return cu.Key
}

// credit credits or debits the customer's balance (POST /admin/customers/{id}/credit)
// through ledger.CreditBalance, as POST /v1/customers/{id}/balance/credit does; a
// refused one shows the form again with the API's messages by its fields. The form's
// idempotency key makes a resubmitted form change nothing.
func (c *Console) credit(w http.ResponseWriter, r *http.Request, s *session) error {
	form := postedFields(r, "amount", "units", "note", "direction", "key")
	amount := form["amount"]
	if form["direction"] == "debit" && amount != "" && !strings.HasPrefix(amount, "-") {
		amount = "-" + amount
	}
	in := ledger.CreditInput{Amount: referral.Number(amount), AmountUnits: form["units"]}
	if form["note"] != "" {
		note := form["note"]
		in.Note = &note
	}
	if form["key"] != "" {
		k := referral.Text(form["key"])
		in.Key = &k
	}
	_, _, err := ledger.CreditBalance(r.Context(), c.DB, s.Program, r.PathValue("id"), in)
	var verr *referral.ValidationError
	if errors.As(err, &verr) {
		return c.showCustomer(w, r, s, http.StatusUnprocessableEntity, form, verr.Fields)
	}
	if err != nil {
		return err
	}
	done(w, r, "/admin/customers/"+url.PathEscape(r.PathValue("id")), "credited")
	return nil
}
