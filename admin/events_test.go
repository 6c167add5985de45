package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/referd/referd/jobs"
	"github.com/referd/referd/ledger"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// invoicePaid stores a Stripe invoice.paid event of p for the customer with key (note
// goes into the invoice's metadata as it is) and processes it once, as the workers
// would. It returns the event's id.
func (e *env) invoicePaid(p store.Program, eventID, invoiceID, customerKey string, amount int, note string) int64 {
	e.t.Helper()
	ctx := context.Background()
	body := fmt.Sprintf(`{"id": %q, "object": "event", "api_version": "2023-10-16", "created": %d, "livemode": true, "type": "invoice.paid",
		"data": {"object": {"id": %q, "object": "invoice", "amount_paid": %d, "currency": "usd", "customer": "cus_%s",
		"subscription": null, "metadata": {"customer_key": %q, "note": %q}}}}`, eventID, time.Now().Unix(), invoiceID, amount, customerKey, customerKey, note)
	evs := []store.ProviderEvent{{ProgramPK: p.PK, Provider: "stripe", EventID: eventID, Type: "invoice.paid", Payload: []byte(body), ReceivedAt: store.Now()}}
	if _, err := store.InsertProviderEvents(ctx, e.db, evs); err != nil {
		e.t.Fatal(err)
	}
	if err := jobs.ProcessEvent(ctx, e.db, evs[0].PK); err != nil {
		e.t.Fatal(err)
	}
	return evs[0].PK
}

func (e *env) eventStatus(pk int64) store.EventStatus {
	e.t.Helper()
	s, err := store.ProviderEventStatus(context.Background(), e.db, pk)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) withStripe(p store.Program) {
	e.t.Helper()
	if _, err := referral.PutIntegration(context.Background(), e.db, p, "stripe", referral.IntegrationInput{WebhookSecrets: []string{"whsec_x"}}, nil); err != nil {
		e.t.Fatal(err)
	}
}

// eventIDsRE finds the events a list shows: each row's link to its page.
var eventIDsRE = regexp.MustCompile(`<td><a href="/admin/events/(\d+)">`)

func shownEvents(body string) []string {
	var ids []string
	for _, m := range eventIDsRE.FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

func TestBillingEventsAndReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.withRules()
	e.withStripe(e.p)
	ctx := context.Background()
	e.customer(e.p, "ref", "", "")
	e.customer(e.p, "buddy", "", "ref")
	// A payment by a customer referd does not know yet: unattributed.
	lost := e.invoicePaid(e.p, "evt_lost", "in_lost", "friend", 5000, `<script>alert("payload")</script>`)
	paid := e.invoicePaid(e.p, "evt_paid", "in_paid", "buddy", 2000, "")
	other, otherKey, _ := referral.CreateProgram(ctx, e.db, "Other", "https://other.test")
	e.withStripe(other)
	e.customer(other, "stranger", "", "")
	foreign := e.invoicePaid(other, "evt_foreign", "in_foreign", "nobody", 700, "")
	if e.eventStatus(lost) != store.EventUnattributed || e.eventStatus(paid) != store.EventProcessed || e.eventStatus(foreign) != store.EventUnattributed {
		t.Fatalf("events before the console: %s %s %s", e.eventStatus(lost), e.eventStatus(paid), e.eventStatus(foreign))
	}
	id := func(pk int64) string { return strconv.FormatInt(pk, 10) }

	c := e.client()
	c.signin(e.key)
	code, body, _ := c.get("/admin/events")
	if got, want := strings.Join(shownEvents(body), " "), id(paid)+" "+id(lost); code != 200 || got != want {
		t.Fatalf("events: %d %q, want %q (newest first, none of another program's)\n%s", code, got, want, body)
	}
	if !strings.Contains(body, "stripe:in_paid") || !strings.Contains(body, "evt_lost") || !strings.Contains(body, `aria-current="page">Billing events`) {
		t.Errorf("the list does not show the events' ids and transaction keys\n%s", body)
	}
	for _, c2 := range []struct{ query, want string }{
		{"status=unattributed", id(lost)},
		{"status=processed", id(paid)},
		{"status=failed", ""},
		{"provider=stripe", id(paid) + " " + id(lost)},
		{"provider=paddle", ""},
		{"provider=stripe&status=processed", id(paid)},
	} {
		code, body, _ := c.get("/admin/events?" + c2.query)
		if got := strings.Join(shownEvents(body), " "); code != 200 || got != c2.want {
			t.Errorf("?%s: %d %q, want %q", c2.query, code, got, c2.want)
		}
	}
	for _, q := range []string{"status=done", "provider=bitcoin", "status=" + strings.Repeat("f", 300)} {
		code, body, _ := c.get("/admin/events?" + q)
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, `class="field-error"`) || len(shownEvents(body)) != 0 {
			t.Errorf("?%.40s: %d, want 422 with the field's error", q, code)
		}
	}

	// One event: its payload pretty-printed and escaped, its outcome.
	code, body, _ = c.get("/admin/events/" + id(lost))
	if code != 200 || !strings.Contains(body, "\n  &#34;id&#34;: &#34;evt_lost&#34;,") || !strings.Contains(body, "unattributed") ||
		!strings.Contains(body, `aria-current="page">Billing events`) {
		t.Fatalf("event page: %d\n%s", code, body)
	}
	if strings.Contains(body, `<script>alert`) || !strings.Contains(body, `\u003cscript\u003ealert`) && !strings.Contains(body, `&lt;script&gt;alert`) {
		t.Errorf("the payload is not escaped\n%s", body)
	}
	// Another program's event, an unknown one and a word: 404 pages.
	for _, path := range []string{"/admin/events/" + id(foreign), "/admin/events/999999999", "/admin/events/evt_lost"} {
		if code, _, _ := c.get(path); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, code)
		}
	}

	// The friend signs up; a replay without the CSRF token changes nothing.
	e.customer(e.p, "friend", "", "ref")
	if code, _, _ := c.post("/admin/events/"+id(lost)+"/replay", url.Values{"csrf": {"forged"}}); code != http.StatusForbidden {
		t.Errorf("replay without CSRF: %d, want 403", code)
	}
	if s := e.eventStatus(lost); s != store.EventUnattributed {
		t.Fatalf("a replay without CSRF processed the event: %s", s)
	}
	if _, err := ledger.GetTransaction(ctx, e.db, e.p, "stripe:in_lost"); err == nil {
		t.Fatal("a replay without CSRF recorded the sale")
	}
	// Replayed through the console: processed, the sale recorded; posted twice,
	// recorded once.
	c.get("/admin/events/" + id(lost))
	for range 2 {
		code, body, h := c.post("/admin/events/"+id(lost)+"/replay", url.Values{})
		if code != http.StatusSeeOther || h.Get("Location") != "/admin/events/"+id(lost)+"?done=replayed" {
			t.Fatalf("replay: %d %s\n%s", code, h.Get("Location"), body)
		}
	}
	if s := e.eventStatus(lost); s != store.EventProcessed {
		t.Errorf("after the replay the event is %s, want processed", s)
	}
	tx, err := ledger.GetTransaction(ctx, e.db, e.p, "stripe:in_lost")
	if err != nil || tx.Amount != 5000 || len(tx.Rewards) != 1 {
		t.Fatalf("the replayed sale: %+v %v", tx, err)
	}
	var n int
	if err := e.db.Get(&n, `SELECT count(*) FROM transactions WHERE program_pk = $1`, e.p.PK); err != nil || n != 2 {
		t.Errorf("%d transactions after two replays (%v), want 2", n, err)
	}
	if _, body, _ := c.get("/admin/events/" + id(lost) + "?done=replayed"); !strings.Contains(body, "The event was processed again.") ||
		!strings.Contains(body, `href="/admin/transactions/stripe:in_lost"`) {
		t.Errorf("after the replay the event's page shows no notice or no transaction\n%s", body)
	}
	// Another program's event cannot be replayed from here: 404, left as it was.
	if code, _, _ := c.post("/admin/events/"+id(foreign)+"/replay", url.Values{}); code != http.StatusNotFound {
		t.Errorf("replay of another program's event: %d, want 404", code)
	}
	if s := e.eventStatus(foreign); s != store.EventUnattributed {
		t.Errorf("another program's event is %s after a replay from this console", s)
	}
	o := e.client()
	o.signin(otherKey)
	if _, body, _ := o.get("/admin/events"); strings.Join(shownEvents(body), " ") != id(foreign) {
		t.Errorf("another program's console lists %q", shownEvents(body))
	}
}

func TestBillingEventsPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.withStripe(e.p)
	evs := make([]store.ProviderEvent, 60)
	for i := range evs {
		evs[i] = store.ProviderEvent{ProgramPK: e.p.PK, Provider: "stripe", EventID: fmt.Sprintf("evt_%02d", i), Type: "customer.updated",
			Payload: []byte(`{}`), ReceivedAt: store.Now()}
	}
	if _, err := store.InsertProviderEvents(context.Background(), e.db, evs); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.signin(e.key)
	_, body, _ := c.get("/admin/events?status=received")
	first := shownEvents(body)
	m := regexp.MustCompile(`<a href="([^"]+)" rel="next">`).FindStringSubmatch(body)
	if len(first) != 50 || m == nil || strings.Contains(body, `rel="prev"`) {
		t.Fatalf("first page: %d events, older link %v", len(first), m)
	}
	_, body, _ = c.get(strings.ReplaceAll(m[1], "&amp;", "&"))
	second := shownEvents(body)
	if len(second) != 10 || strings.Contains(body, `rel="next"`) || !strings.Contains(body, `rel="prev"`) || second[9] != strconv.FormatInt(evs[0].PK, 10) {
		t.Errorf("second page: %v", second)
	}
}
