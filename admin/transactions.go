package admin

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/referd/referd/ledger"
	"github.com/referd/referd/providers"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

func init() {
	route("GET /admin/transactions", func(c *Console) pageFunc { return c.transactions })
	route("GET /admin/transactions/{key}", func(c *Console) pageFunc { return c.transaction })
	route("POST /admin/transactions/{key}/refund", func(c *Console) pageFunc { return c.refund })
}

// maxFilter bounds a list's text filter; longer is refused by the field.
const maxFilter = 200

// keysetPager is a list's position when it is read a page at a time newest first:
// links to the newer and older pages, each empty when there is none.
type keysetPager struct {
	Newer, Older string
}

// keysetOf reads ?before= and ?after= (the pk the page starts from).
func keysetOf(r *http.Request) store.Keyset {
	k := store.Keyset{Limit: pageSize}
	q := r.URL.Query()
	if n, err := strconv.ParseInt(q.Get("after"), 10, 64); err == nil && n > 0 {
		k.After = n
	} else if n, err := strconv.ParseInt(q.Get("before"), 10, 64); err == nil && n > 0 {
		k.Before = n
	}
	return k
}

// newKeysetPager links the pages beside a page of rows whose pks run from first
// (newest) to last, under base (the list's URL) with its filters (empty ones left out).
func newKeysetPager(base string, filters map[string]string, pg store.KeysetPage, first, last int64) keysetPager {
	var p keysetPager
	link := func(param string, pk int64) string {
		q := url.Values{}
		for k, v := range filters {
			if v != "" {
				q.Set(k, v)
			}
		}
		q.Set(param, strconv.FormatInt(pk, 10))
		return base + "?" + q.Encode()
	}
	if pg.Newer && first > 0 {
		p.Newer = link("after", first)
	}
	if pg.Older && last > 0 {
		p.Older = link("before", last)
	}
	return p
}

// filterValue is a list's filter from the query string, trimmed; one longer than
// maxFilter is refused by the field.
func filterValue(r *http.Request, name string, verr *referral.ValidationError) string {
	v := strings.TrimSpace(r.URL.Query().Get(name))
	if len(v) > maxFilter {
		verr.Add(name, "The "+name+" filter must be at most "+strconv.Itoa(maxFilter)+" characters.")
		return ""
	}
	return v
}

// choiceFilter is filterValue of a filter that must be one of choices.
func choiceFilter[T ~string](r *http.Request, name string, choices []T, verr *referral.ValidationError) string {
	v := filterValue(r, name, verr)
	if v != "" && !slices.Contains(choices, T(v)) {
		names := make([]string, len(choices))
		for i, c := range choices {
			names[i] = string(c)
		}
		verr.Add(name, "The "+name+" must be one of: "+strings.Join(names, ", ")+".")
	}
	return v
}

// transactionSources are the sources a transaction may have: the API or a provider.
func transactionSources() []string { return append([]string{"api"}, providers.Names()...) }

// transactionRow is a transaction as the list shows it.
type transactionRow struct {
	store.Transaction
	Rewards []string // "5.00 USD credit to the referrer (reversed)"
	Left    int64    // the amount not refunded yet
}

func newTransactionRow(t store.Transaction) transactionRow {
	return transactionRow{Transaction: t, Rewards: rewardSummaries(t.Rewards), Left: t.Amount - t.Refunded}
}

// transactionsPage is what the transactions list shows.
type transactionsPage struct {
	Customer, Source, Refunded string
	Sources                    []string
	RefundedStates             []store.RefundedState
	// Buyer is the customer the list is narrowed to; NoCustomer says that the
	// customer filter names nobody.
	Buyer      *store.Customer
	NoCustomer bool
	Rows       []transactionRow
	Pager      keysetPager
	Errors     map[string][]string
	// Detail is the one transaction of GET /admin/transactions/{key}: the same
	// template shows it, so the navigation stays on transactions.
	Detail *transactionRow
}

// transactions lists the program's transactions newest first, 50 a page, narrowed by
// ?customer= (the buyer's id, key or email), ?source=
// and ?refunded= (no, yes, partial, full). Pages are read by position (?before=,
// ?after=), never counted: a page reads 51 rows of an index whatever the program's size.
func (c *Console) transactions(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx, p := r.Context(), s.Program
	verr := &referral.ValidationError{}
	v := transactionsPage{Sources: transactionSources(), RefundedStates: store.RefundedStates()}
	v.Customer = filterValue(r, "customer", verr)
	v.Source = choiceFilter(r, "source", v.Sources, verr)
	v.Refunded = choiceFilter(r, "refunded", v.RefundedStates, verr)
	if verr.Err() != nil {
		v.Errors = verr.Fields
		c.render(w, r, s, http.StatusUnprocessableEntity, "transactions", "Transactions", v)
		return nil
	}
	f := store.TransactionFilter{ProgramPK: p.PK, Source: v.Source, Refunded: store.RefundedState(v.Refunded)}
	if v.Customer != "" {
		cu, err := c.findCustomer(r, p, v.Customer)
		if err != nil {
			return err
		}
		if cu == nil {
			v.NoCustomer = true
			c.render(w, r, s, http.StatusOK, "transactions", "Transactions", v)
			return nil
		}
		v.Buyer, f.CustomerPK = cu, cu.PK
	}
	ts, pg, err := store.TransactionsPage(ctx, c.DB, f, keysetOf(r))
	if err != nil {
		return err
	}
	for _, t := range ts {
		v.Rows = append(v.Rows, newTransactionRow(t))
	}
	if len(ts) > 0 {
		v.Pager = newKeysetPager("/admin/transactions", map[string]string{"customer": v.Customer, "source": v.Source, "refunded": v.Refunded},
			pg, ts[0].PK, ts[len(ts)-1].PK)
	}
	c.render(w, r, s, http.StatusOK, "transactions", "Transactions", v)
	return nil
}

// findCustomer is the customer a filter names by id or key, else by email; nil when
// it names nobody. It does not search names: a search of a program's customers
// (ILIKE over five columns) reads all of them, half a second for 100,000, so the page
// links to the customers' search instead.
func (c *Console) findCustomer(r *http.Request, p store.Program, q string) (*store.Customer, error) {
	ctx := r.Context()
	cu, err := store.GetCustomer(ctx, c.DB, p.PK, q, false)
	if err == nil {
		return &cu, nil
	}
	if !store.IsNotFound(err) {
		return nil, err
	}
	if strings.Contains(q, "@") {
		cu, err = store.CustomerByEmail(ctx, c.DB, p.PK, q)
		if err == nil {
			return &cu, nil
		}
		if !store.IsNotFound(err) {
			return nil, err
		}
	}
	return nil, nil
}

// rewardSummaries says each reward in a line: "5.00 USD credit to the referrer".
func rewardSummaries(rs []store.Reward) []string {
	out := make([]string, 0, len(rs))
	for _, w := range rs {
		line := funcs["money"].(func(int64, string) string)(w.Amount, w.Units) + " " + w.Type + " to the " + w.Recipient
		switch {
		case w.Status == "reversed":
			line += " (reversed)"
		case w.Reversed > 0:
			line += " (" + funcs["money"].(func(int64, string) string)(w.Reversed, w.Units) + " reversed)"
		case w.Status == "pending":
			line += " (pending)"
		}
		out = append(out, line)
	}
	return out
}

// transaction shows one transaction and its rewards (GET /admin/transactions/{key}).
func (c *Console) transaction(w http.ResponseWriter, r *http.Request, s *session) error {
	t, err := ledger.GetTransaction(r.Context(), c.DB, s.Program, r.PathValue("key"))
	if err != nil {
		return err
	}
	row := newTransactionRow(t)
	c.render(w, r, s, http.StatusOK, "transactions", "Transaction "+t.Key, transactionsPage{Detail: &row})
	return nil
}

// refund refunds a transaction in full (POST /admin/transactions/{key}/refund) through
// ledger.RefundTransaction, as DELETE /v1/transactions/{key} does: its rewards are
// reversed and deleted_at is set. The API has no partial refund, so neither has the
// console. A refund posted again changes nothing (the refund's key is the
// transaction's, as the API's).
func (c *Console) refund(w http.ResponseWriter, r *http.Request, s *session) error {
	key := r.PathValue("key")
	if _, _, err := ledger.RefundTransaction(r.Context(), c.DB, s.Program, ledger.Refund{TransactionKey: key}); err != nil {
		return err
	}
	done(w, r, "/admin/transactions/"+url.PathEscape(key), "refunded")
	return nil
}
