package admin_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
	"github.com/referd/referd/store/storetest"
)

// seedBig fills a program with 100,000 customers (a third of them referred by the
// first 10,000), 1,000,000 transactions over the last year with a reward for each
// referred one, clicks on every day, and 100,000 billing events: the size issue 17
// asks every console page to stay under 200 ms at.
func seedBig(tb testing.TB, db *store.DB, p store.Program) {
	tb.Helper()
	ctx := context.Background()
	start := time.Now()
	for _, q := range []string{
		`INSERT INTO customers (program_pk, id, key, email, name, source, created_at, updated_at)
		 SELECT $1, 'cus_b' || g, 'k' || g, 'c' || g || '@example.com', 'Customer ' || g, 'api',
		        now() - (g % 365) * interval '1 day' - (g % 1440) * interval '1 minute', now()
		 FROM generate_series(1, 100000) g`,
		`WITH m AS (SELECT min(pk) AS pk FROM customers WHERE program_pk = $1)
		 UPDATE customers c SET referrer_pk = m.pk + (c.pk - m.pk) % 10000
		 FROM m WHERE c.program_pk = $1 AND c.pk - m.pk >= 10000 AND (c.pk - m.pk) % 3 = 0`,
		`INSERT INTO customer_stats (customer_pk, program_pk, referrals, clicks, unique_clicks)
		 SELECT r.referrer_pk, $1, count(*), count(*) * 3, count(*) * 2 FROM customers r
		 WHERE r.program_pk = $1 AND r.referrer_pk IS NOT NULL GROUP BY r.referrer_pk`,
		// 1 in 1,000 fully refunded, 1 in 997 partly.
		`INSERT INTO transactions (program_pk, key, customer_pk, referrer_pk, action, amount, units, refunded, source, purchase_number, fingerprint, created_at, deleted_at)
		 SELECT $1, 'tx_' || g, c.pk, c.referrer_pk, 'sale', 1000 + g % 9000, 'usd',
		        CASE WHEN g % 1000 = 0 THEN 1000 + g % 9000 WHEN g % 997 = 0 THEN 500 ELSE 0 END,
		        (ARRAY['api','stripe','paddle','chargebee'])[1 + g % 4], 1 + g / 100000, 'bench',
		        now() - (g % 365) * interval '1 day' - (g % 1440) * interval '1 minute',
		        CASE WHEN g % 1000 = 0 THEN now() END
		 FROM generate_series(0, 999999) g
		 JOIN customers c ON c.program_pk = $1 AND c.key = 'k' || (1 + g % 100000)`,
		`INSERT INTO rewards (program_pk, key, customer_pk, recipient, rule, trigger, type, amount, units, is_currency, proportional, status, transaction_pk, available_at, created_at)
		 SELECT $1, 'rw_' || t.pk, t.referrer_pk, 'referrer', 0, 'purchase', 'credit', t.amount / 10, 'usd', true, true, 'approved', t.pk, t.created_at, t.created_at
		 FROM transactions t WHERE t.program_pk = $1 AND t.referrer_pk IS NOT NULL`,
		`INSERT INTO click_days (program_pk, day, shard, clicks)
		 SELECT $1, (now() AT TIME ZONE 'UTC')::date - d, s, 20 + (d * 7 + s) % 40
		 FROM generate_series(0, 364) d, generate_series(0, 7) s`,
		`INSERT INTO provider_events (program_pk, provider, event_id, type, status, payload, received_at, processed_at)
		 SELECT $1, (ARRAY['stripe','paddle','chargebee'])[1 + g % 3], 'evt_' || g, 'invoice.paid',
		        (ARRAY['processed','processed','processed','ignored','unattributed','failed'])[1 + g % 6],
		        convert_to('{"id": "evt_' || g || '", "type": "invoice.paid"}', 'UTF8'),
		        now() - (g % 365) * interval '1 day', now() - (g % 365) * interval '1 day'
		 FROM generate_series(1, 100000) g`,
	} {
		if _, err := db.ExecContext(ctx, q, p.PK); err != nil {
			tb.Fatalf("seeding: %v\n%s", err, q)
		}
	}
	for _, t := range []string{"customers", "customer_stats", "transactions", "rewards", "click_days", "provider_events"} {
		if _, err := db.ExecContext(ctx, "VACUUM ANALYZE "+t); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Logf("seeded 100,000 customers and 1,000,000 transactions in %s", time.Since(start).Round(time.Second))
}

// BenchmarkPages loads each console page of the big program (seedBig), signed in as
// a browser is. ms/op is the page's time at the server and back over loopback; the
// ceiling sub-benchmarks are the same machine's floor in the same run: a static asset
// (HTTP and the session check, no page query) and one PostgreSQL round trip.
//
//	go test -run '^$' -bench BenchmarkPages -benchtime 20x ./admin
func BenchmarkPages(b *testing.B) {
	db := storetest.New(b)
	p, key, err := referral.CreateProgram(context.Background(), db, "Big", "https://big.test")
	if err != nil {
		b.Fatal(err)
	}
	seedBig(b, db, p)
	e := newConsole(b, db)
	c := e.client()
	if code, _, _ := c.signin(key); code != http.StatusSeeOther {
		b.Fatalf("sign in: %d", code)
	}
	get := func(b *testing.B, path string) {
		res, err := c.http.Get(e.srv.URL + path)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("%s: %s", path, res.Status)
		}
	}
	b.Run("ceiling/static", func(b *testing.B) {
		for b.Loop() {
			get(b, "/admin/static/admin.css")
		}
	})
	b.Run("ceiling/select1", func(b *testing.B) {
		for b.Loop() {
			var n int
			if err := db.GetContext(context.Background(), &n, "SELECT 1"); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Half way down the transactions and the events: the pages the newer/older links
	// lead to (positions, not page numbers).
	var midTx, midEv int64
	db.GetContext(context.Background(), &midTx, `SELECT pk FROM transactions WHERE program_pk = $1 ORDER BY pk DESC OFFSET 500000 LIMIT 1`, p.PK)
	db.GetContext(context.Background(), &midEv, `SELECT pk FROM provider_events WHERE program_pk = $1 ORDER BY pk DESC OFFSET 50000 LIMIT 1`, p.PK)
	for _, path := range []string{
		"/admin?days=7", "/admin?days=30", "/admin?days=90",
		"/admin/customers", "/admin/customers?page=1000", "/admin/customers?q=c99999%40example.com", "/admin/customers?q=Customer+4242",
		"/admin/customers/k1", "/admin/customers/k50000",
		"/admin/transactions", fmt.Sprintf("/admin/transactions?before=%d", midTx), fmt.Sprintf("/admin/transactions?after=%d", midTx),
		"/admin/transactions?source=paddle", "/admin/transactions?refunded=full", "/admin/transactions?refunded=partial",
		"/admin/transactions?refunded=no", "/admin/transactions?source=paddle&refunded=partial",
		"/admin/transactions?customer=k1", "/admin/transactions?customer=c500%40example.com", "/admin/transactions?customer=nobody",
		"/admin/transactions/tx_500000",
		"/admin/events", fmt.Sprintf("/admin/events?before=%d", midEv), "/admin/events?status=failed", "/admin/events?provider=paddle",
		"/admin/events?status=received", fmt.Sprintf("/admin/events/%d", midEv), "/admin/settings", "/admin/webhooks",
	} {
		b.Run(strings.TrimPrefix(url.PathEscape(path), "%2Fadmin"), func(b *testing.B) {
			for b.Loop() {
				get(b, path)
			}
		})
	}
}
