package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/referd/referd/ledger"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// withRules gives the program a 10% credit to the referrer on every purchase.
func (e *env) withRules() {
	e.t.Helper()
	var patch referral.ProgramPatch
	if err := json.Unmarshal([]byte(`{"rewards": [{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "percent"}]}`), &patch); err != nil {
		e.t.Fatal(err)
	}
	p, err := referral.UpdateProgram(context.Background(), e.db, e.p.PK, patch)
	if err != nil {
		e.t.Fatal(err)
	}
	e.p = p
}

// customer creates a customer of p with key (and name when not ""), referred by
// referrerKey unless it is "".
func (e *env) customer(p store.Program, key, name, referrerKey string) store.Customer {
	e.t.Helper()
	in := referral.CustomerInput{Key: ptr(referral.Text(key)), Email: ptr(key + "@example.com")}
	if name != "" {
		in.Name = &name
	}
	if referrerKey != "" {
		in.ReferringCustomer = &referral.CustomerRefInput{Key: ptr(referral.Text(referrerKey))}
	}
	c, err := referral.CreateCustomer(context.Background(), e.db, p, in)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// sale records a sale of amount cents (USD) by buyerKey with key, from source.
func (e *env) sale(p store.Program, key, buyerKey string, amount int64, source string) store.Transaction {
	e.t.Helper()
	t, _, err := ledger.RecordTransaction(context.Background(), e.db, p, ledger.Sale{
		Key: key, CustomerKey: buyerKey, Amount: amount, Units: "usd", Source: source, Livemode: true})
	if err != nil {
		e.t.Fatal(err)
	}
	return t
}

// txKeysRE finds the transactions a list shows: each row's link to its page.
var txKeysRE = regexp.MustCompile(`<td><a href="/admin/transactions/[^"]+"><code>([^<]+)</code></a>`)

func shown(body string) []string {
	var keys []string
	for _, m := range txKeysRE.FindAllStringSubmatch(body, -1) {
		keys = append(keys, m[1])
	}
	return keys
}

func TestTransactionsListAndFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.withRules()
	e.customer(e.p, "ref", `<script>alert("ref")</script>`, "")
	e.customer(e.p, "bob", "Bob Buyer", "ref")
	e.customer(e.p, "cat", "", "")
	e.customer(e.p, "bobby", "Bobby", "")
	e.sale(e.p, "t-api", "bob", 10000, "api")
	e.sale(e.p, "t-stripe", "bob", 5000, "stripe")
	e.sale(e.p, "t-cat", "cat", 2000, "paddle")
	e.sale(e.p, "t-partial", "bob", 3000, "api")
	e.sale(e.p, "t-full", "cat", 4000, "api")
	ctx := context.Background()
	if _, _, err := ledger.RefundTransaction(ctx, e.db, e.p, ledger.Refund{TransactionKey: "t-partial", Key: "r1", Amount: 1000}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ledger.RefundTransaction(ctx, e.db, e.p, ledger.Refund{TransactionKey: "t-full"}); err != nil {
		t.Fatal(err)
	}
	other, otherKey, _ := referral.CreateProgram(ctx, e.db, "Other", "https://other.test")
	e.customer(other, "stranger", "", "")
	e.sale(other, "t-other", "stranger", 999, "api")

	c := e.client()
	c.signin(e.key)
	code, body, _ := c.get("/admin/transactions")
	if code != 200 {
		t.Fatalf("list: %d\n%s", code, body)
	}
	if got, want := strings.Join(shown(body), " "), "t-full t-partial t-cat t-stripe t-api"; got != want {
		t.Errorf("list shows %q, want %q (newest first, none of another program's)", got, want)
	}
	// What a row says: the buyer, the referrer (its name escaped), amounts, rewards.
	for _, want := range []string{"Bob Buyer", "&lt;script&gt;alert(&#34;ref&#34;)&lt;/script&gt;", "100.00 USD", "10.00 USD credit to the referrer",
		"3.00 USD credit to the referrer (1.00 USD reversed)", `<span class="badge bad">refunded</span>`, "partly refunded", "paddle"} {
		if !strings.Contains(body, want) {
			t.Errorf("the list does not show %q", want)
		}
	}
	if strings.Contains(body, `<script>alert`) {
		t.Errorf("a customer's name is not escaped")
	}
	for _, c2 := range []struct{ query, want string }{
		{"source=stripe", "t-stripe"},
		{"source=api", "t-full t-partial t-api"},
		{"refunded=partial", "t-partial"},
		{"refunded=full", "t-full"},
		{"refunded=yes", "t-full t-partial"},
		{"refunded=no", "t-cat t-stripe t-api"},
		{"customer=bob", "t-partial t-stripe t-api"},
		{"customer=cat%40example.com", "t-full t-cat"},
		{"customer=bob&source=api&refunded=no", "t-api"},
		{"customer=stranger", ""}, // another program's customer is nobody here
	} {
		code, body, _ := c.get("/admin/transactions?" + c2.query)
		if got := strings.Join(shown(body), " "); code != 200 || got != c2.want {
			t.Errorf("?%s: %d %q, want %q", c2.query, code, got, c2.want)
		}
	}
	// A customer filter that names nobody lists nothing and links to the customers' search.
	_, body, _ = c.get("/admin/transactions?customer=Bob+%3Cb%3E")
	if len(shown(body)) != 0 || !strings.Contains(body, `href="/admin/customers?q=Bob&#43;%3Cb%3E"`) || !strings.Contains(body, "“Bob &lt;b&gt;”") {
		t.Errorf("?customer=Bob <b>: want no transactions and a link to the customers' search\n%s", body)
	}
	// Bad and over-long filters are refused by their fields, and nothing is listed.
	for _, q := range []string{"source=bitcoin", "refunded=maybe", "customer=" + strings.Repeat("x", 201)} {
		code, body, _ := c.get("/admin/transactions?" + q)
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, `class="field-error"`) || len(shown(body)) != 0 {
			t.Errorf("?%.40s: %d, want 422 with the field's error", q, code)
		}
	}

	// One transaction's page shows its rewards; another program's is a 404 page.
	code, body, _ = c.get("/admin/transactions/t-partial")
	if code != 200 || !strings.Contains(body, "Rewards <span class=\"muted\">(1)</span>") || !strings.Contains(body, "Refund 20.00 USD") ||
		!strings.Contains(body, `aria-current="page">Transactions`) {
		t.Errorf("transaction page: %d\n%s", code, body)
	}
	for _, path := range []string{"/admin/transactions/t-other", "/admin/transactions/nope"} {
		if code, _, _ := c.get(path); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, code)
		}
	}
	o := e.client()
	o.signin(otherKey)
	if _, body, _ := o.get("/admin/transactions"); strings.Join(shown(body), " ") != "t-other" {
		t.Errorf("another program's console lists %q", shown(body))
	}
}

func TestTransactionsPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.customer(e.p, "bob", "", "")
	sales := make([]ledger.Sale, 0, 120)
	for i := range 120 {
		sales = append(sales, ledger.Sale{Key: fmt.Sprintf("t%03d", i), CustomerKey: "bob", Amount: 100, Units: "usd"})
	}
	for i := 0; i < len(sales); i += 100 {
		if _, _, err := ledger.RecordTransactions(context.Background(), e.db, e.p, sales[i:min(i+100, len(sales))]); err != nil {
			t.Fatal(err)
		}
	}
	c := e.client()
	c.signin(e.key)
	olderRE := regexp.MustCompile(`<a href="([^"]+)" rel="next">`)
	newerRE := regexp.MustCompile(`<a href="([^"]+)" rel="prev">`)
	path := "/admin/transactions?source=api"
	var pages [][]string
	var bodies []string
	for path != "" {
		code, body, _ := c.get(path)
		if code != 200 {
			t.Fatalf("%s: %d", path, code)
		}
		pages, bodies = append(pages, shown(body)), append(bodies, body)
		path = ""
		if m := olderRE.FindStringSubmatch(body); m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
		}
		if len(pages) > 5 {
			t.Fatal("the pages do not end")
		}
	}
	if len(pages) != 3 || len(pages[0]) != 50 || len(pages[1]) != 50 || len(pages[2]) != 20 {
		t.Fatalf("pages of %v rows, want 50, 50, 20", lens(pages))
	}
	if pages[0][0] != "t119" || pages[1][0] != "t069" || pages[2][19] != "t000" {
		t.Errorf("pages start at %s, %s and end at %s", pages[0][0], pages[1][0], pages[2][19])
	}
	if newerRE.MatchString(bodies[0]) {
		t.Errorf("the first page links a newer one")
	}
	if !strings.Contains(bodies[1], "source=api") {
		t.Errorf("the pages do not keep the filter")
	}
	// Newer from the last page is the middle one again.
	m := newerRE.FindStringSubmatch(bodies[2])
	if m == nil {
		t.Fatal("the last page links no newer page")
	}
	_, body, _ := c.get(strings.ReplaceAll(m[1], "&amp;", "&"))
	if got := shown(body); strings.Join(got, " ") != strings.Join(pages[1], " ") {
		t.Errorf("newer than the last page: %v, want the middle page %v", got, pages[1])
	}
}

func lens(pages [][]string) []int {
	var n []int
	for _, p := range pages {
		n = append(n, len(p))
	}
	return n
}

func TestRefundThroughTheConsole(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.withRules()
	ctx := context.Background()
	e.customer(e.p, "ref", "", "")
	e.customer(e.p, "bob", "", "ref")
	e.sale(e.p, "order/1", "bob", 10000, "api") // a key with a slash
	other, _, _ := referral.CreateProgram(ctx, e.db, "Other", "https://other.test")
	e.customer(other, "stranger", "", "")
	e.sale(other, "t-other", "stranger", 999, "api")

	c := e.client()
	c.signin(e.key)
	path := "/admin/transactions/" + url.PathEscape("order/1")
	if code, body, _ := c.get(path); code != 200 || !strings.Contains(body, "Refund 100.00 USD") {
		t.Fatalf("transaction page: %d\n%s", code, body)
	}
	apiView := func(key string) ledger.TransactionView {
		t.Helper()
		tx, err := ledger.GetTransaction(ctx, e.db, e.p, key)
		if err != nil {
			t.Fatal(err)
		}
		return ledger.TransactionJSON(tx)
	}
	balance := func() int64 {
		t.Helper()
		_, bs, err := ledger.CustomerBalance(ctx, e.db, e.p, "ref")
		if err != nil || len(bs) != 1 {
			t.Fatalf("balance %+v %v", bs, err)
		}
		return bs[0].Amount
	}
	if b := balance(); b != 1000 {
		t.Fatalf("the referrer's balance is %d before the refund, want 1000", b)
	}
	// Without the session's CSRF token: 403, and nothing refunded.
	if code, _, _ := c.post(path+"/refund", url.Values{"csrf": {""}}); code != http.StatusForbidden {
		t.Errorf("refund without CSRF: %d, want 403", code)
	}
	if v := apiView("order/1"); v.DeletedAt != nil || v.RefundedAmount != "0" {
		t.Fatalf("a refund without CSRF changed the transaction: %+v", v)
	}
	// Posted twice: refunded once, as DELETE /v1/transactions/{key} would.
	for range 2 {
		if code, body, h := c.post(path+"/refund", url.Values{}); code != http.StatusSeeOther || h.Get("Location") != path+"?done=refunded" {
			t.Fatalf("refund: %d %s\n%s", code, h.Get("Location"), body)
		}
	}
	v := apiView("order/1")
	if v.DeletedAt == nil || v.RefundedAmount != "100" || len(v.Rewards) != 1 || v.Rewards[0].Status != "reversed" {
		t.Errorf("after the console's refund the API says %+v", v)
	}
	if b := balance(); b != 0 {
		t.Errorf("the referrer's balance is %d after the refund, want 0", b)
	}
	var reversals int
	if err := e.db.Get(&reversals, `SELECT count(*) FROM ledger WHERE kind = 'reversal'`); err != nil || reversals != 1 {
		t.Errorf("%d reversals in the ledger (%v), want 1", reversals, err)
	}
	if _, body, _ := c.get(path + "?done=refunded"); !strings.Contains(body, "The transaction was refunded.") || strings.Contains(body, "/refund\"") {
		t.Errorf("after the refund the page shows no notice, or still a refund form\n%s", body)
	}
	// Another program's transaction, and an unknown one: 404, and nothing refunded.
	for _, key := range []string{"t-other", "nope"} {
		if code, _, _ := c.post("/admin/transactions/"+key+"/refund", url.Values{}); code != http.StatusNotFound {
			t.Errorf("refund of %s: %d, want 404", key, code)
		}
	}
	if tx, err := ledger.GetTransaction(ctx, e.db, other, "t-other"); err != nil || tx.DeletedAt.Valid || tx.Refunded != 0 {
		t.Errorf("another program's transaction after a refund from this console: %+v %v", tx, err)
	}
}
