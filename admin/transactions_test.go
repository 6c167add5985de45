package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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

// TestPagesOnALargeProgram times the transactions and billing events pages on a
// program of 100,000 customers, 1,000,000 transactions (330,000 rewards) and 1,000,000
// billing events: each must answer within 200 ms. It takes a minute or two to fill
// the database, so it runs only with REFERD_ADMIN_PERF=1.
func TestPagesOnALargeProgram(t *testing.T) {
	if os.Getenv("REFERD_ADMIN_PERF") == "" {
		t.Skip("set REFERD_ADMIN_PERF=1 to time the pages on a large program")
	}
	e := newEnv(t)
	start := time.Now()
	for _, q := range []string{
		`INSERT INTO customers (program_pk, id, key, email, name, created_at, updated_at)
			SELECT $1, 'c' || i, 'k' || i, 'c' || i || '@example.com', 'Name ' || i, now(), now() FROM generate_series(1, 100000) i`,
		`UPDATE customers c SET referrer_pk = r.pk FROM customers r
			WHERE c.program_pk = $1 AND r.program_pk = $1 AND substr(c.key, 2)::int > 1000 AND r.key = 'k' || (substr(c.key, 2)::int % 1000 + 1)`,
		// 1 in 1,000 fully refunded, 1 in 997 partly; 1 in 5,000 from paddle, half from stripe.
		`INSERT INTO transactions (program_pk, key, customer_pk, referrer_pk, action, amount, units, refunded, source, purchase_number, fingerprint, created_at, deleted_at)
			SELECT $1, 't' || i, c.pk, c.referrer_pk, 'sale', 1000, 'usd',
				CASE WHEN i % 1000 = 0 THEN 1000 WHEN i % 997 = 0 THEN 500 ELSE 0 END,
				CASE WHEN i % 5000 = 0 THEN 'paddle' WHEN i % 2 = 0 THEN 'stripe' ELSE 'api' END,
				1, 'f', now(), CASE WHEN i % 1000 = 0 THEN now() END
			FROM generate_series(1, 1000000) i JOIN customers c ON c.program_pk = $1 AND c.key = 'k' || (i % 100000 + 1)`,
		`INSERT INTO rewards (program_pk, key, customer_pk, recipient, rule, trigger, type, amount, units, is_currency, proportional, status, transaction_pk, available_at, created_at)
			SELECT t.program_pk, 'rw' || t.pk, t.referrer_pk, 'referrer', 0, 'purchase', 'credit', 100, 'usd', true, true, 'approved', t.pk, now(), now()
			FROM transactions t WHERE t.program_pk = $1 AND t.referrer_pk IS NOT NULL AND t.pk % 3 = 0`,
		// 1 in 10,000 failed, 1 in 500 unattributed; 1 in 7 from paddle.
		`INSERT INTO provider_events (program_pk, provider, event_id, type, status, payload, received_at, processed_at)
			SELECT $1, CASE WHEN i % 7 = 0 THEN 'paddle' ELSE 'stripe' END, 'evt_' || i, 'invoice.paid',
				CASE WHEN i % 10000 = 0 THEN 'failed' WHEN i % 500 = 0 THEN 'unattributed' ELSE 'processed' END,
				'{"id": 1}'::bytea, now(), now()
			FROM generate_series(1, 1000000) i`,
	} {
		if _, err := e.db.Exec(q, e.p.PK); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	for _, table := range []string{"customers", "transactions", "rewards", "provider_events"} {
		if _, err := e.db.Exec(`VACUUM ANALYZE ` + table); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("filled in %s", time.Since(start).Round(time.Second))
	var oldTx, someEvent int64
	if err := e.db.Get(&oldTx, `SELECT pk FROM transactions WHERE program_pk = $1 AND key = 't100'`, e.p.PK); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Get(&someEvent, `SELECT pk FROM provider_events WHERE program_pk = $1 AND event_id = 'evt_500000'`, e.p.PK); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.signin(e.key)
	for _, path := range []string{
		"/admin/transactions",
		"/admin/transactions?before=" + strconv.FormatInt(oldTx, 10), // the last pages
		"/admin/transactions?after=" + strconv.FormatInt(oldTx, 10),
		"/admin/transactions?source=paddle",
		"/admin/transactions?source=api",
		"/admin/transactions?refunded=full",
		"/admin/transactions?refunded=partial",
		"/admin/transactions?refunded=yes",
		"/admin/transactions?refunded=no",
		"/admin/transactions?source=paddle&refunded=partial", // matches nothing
		"/admin/transactions?customer=k500",
		"/admin/transactions?customer=c500%40example.com",
		"/admin/transactions?customer=k500&refunded=full",
		"/admin/transactions?customer=Name+4242", // nobody's id, key or email
		"/admin/transactions?customer=nobody+at+all",
		"/admin/transactions/t500000",
		"/admin/events",
		"/admin/events?before=" + strconv.FormatInt(someEvent, 10),
		"/admin/events?status=failed",
		"/admin/events?status=unattributed&provider=paddle",
		"/admin/events?status=received", // matches nothing
		"/admin/events?provider=paddle",
		"/admin/events/" + strconv.FormatInt(someEvent, 10),
	} {
		var times []time.Duration
		for range 6 {
			t0 := time.Now()
			code, body, _ := c.get(path)
			times = append(times, time.Since(t0))
			if code != 200 {
				t.Fatalf("%s: %d\n%s", path, code, body)
			}
		}
		times = times[1:] // the first one warms the cache and prepares the statements
		slices.Sort(times)
		median := times[len(times)/2]
		t.Logf("%-60s median %6.1f ms, max %6.1f ms", path, float64(median.Microseconds())/1000, float64(times[len(times)-1].Microseconds())/1000)
		if median > 200*time.Millisecond {
			t.Errorf("%s: median %s, want at most 200 ms", path, median)
		}
	}
}
