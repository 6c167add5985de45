package api_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/referd/referd/api"
	"github.com/referd/referd/jobs"
	"github.com/referd/referd/mail"
	"github.com/referd/referd/mail/mailtest"
)

// mailEnv is an env whose server has email on, with a mailpit to send to.
type mailEnv struct {
	*env
	mailpit *mailtest.Server
	sender  *mail.Sender
}

func newMailEnv(t *testing.T) *mailEnv {
	t.Helper()
	e := newEnv(t)
	s := api.New(e.db, "http://referd.test", slog.New(slog.NewTextHandler(io.Discard, nil)), 8)
	s.Email = true
	e.srv = e.serve(s)
	m := &mailEnv{env: e, mailpit: mailtest.Start(t)}
	var err error
	if m.sender, err = mail.NewSender(m.mailpit.URL(), "Acme <rewards@acme.test>"); err != nil {
		t.Fatal(err)
	}
	return m
}

// emails returns the pks of the program's queued emails, oldest first.
func (e *env) emails() []int64 {
	e.t.Helper()
	var pks []int64
	if err := e.db.Select(&pks, `SELECT pk FROM emails WHERE program_pk = $1 ORDER BY pk`, e.prog.PK); err != nil {
		e.t.Fatal(err)
	}
	return pks
}

// send runs the send task of each queued email, as the workers do.
func (m *mailEnv) send() {
	m.t.Helper()
	for _, pk := range m.emails() {
		if err := jobs.SendEmail(context.Background(), m.db, m.sender, pk); err != nil {
			m.t.Fatal(err)
		}
	}
}

func TestInviteCustomer(t *testing.T) {
	t.Parallel()
	e := newMailEnv(t)
	c := e.must(201, "POST", "/v1/customers:invite", `{"email": "alice@example.com", "name": "Alice", "surname": "Smith", "key": "alice1"}`).data()
	if c["email"] != "alice@example.com" || c["key"] != "alice1" || c["source"] != "api" || c["referral_link"] != "https://acme.test?ref=alice1" {
		t.Errorf("invited customer = %v", c)
	}
	if inv, _ := c["invite"].(map[string]any); inv["status"] != "queued" {
		t.Errorf("invite = %v, want status queued", c["invite"])
	}
	// The customer is stored as POST /v1/customers would have.
	if got := e.must(200, "GET", "/v1/customers/alice1", nil).data(); got["id"] != c["id"] || got["name"] != "Alice" {
		t.Errorf("stored customer = %v", got)
	}
	e.send()
	e.send() // the task run again (a retry) sends nothing more
	got := e.mailpit.Wait(1)[0]
	if got.Subject != "Your referral link for Acme" {
		t.Errorf("subject = %q", got.Subject)
	}
	if len(got.To) != 1 || got.To[0].Address != "alice@example.com" || got.To[0].Name != "Alice Smith" {
		t.Errorf("to = %+v", got.To)
	}
	if !strings.Contains(got.Text, "https://acme.test?ref=alice1") || !strings.Contains(got.Text, "Hi Alice,") {
		t.Errorf("text part = %s", got.Text)
	}
	if !strings.Contains(got.HTML, `<a href="https://acme.test?ref=alice1" `) {
		t.Errorf("html part = %s", got.HTML)
	}

	// Each call is an invitation of its own: calling again, with the email in another
	// case, uses the customer (200) and sends again.
	again := e.must(200, "POST", "/v1/customers:invite", `{"email": "Alice@Example.com", "name": "Someone Else"}`).data()
	if again["id"] != c["id"] || again["name"] != "Alice" {
		t.Errorf("second invitation's customer = %v, want the first one unchanged", again)
	}
	e.send()
	if msgs := e.mailpit.Wait(2); msgs[1].To[0].Address != "alice@example.com" {
		t.Errorf("second email to %+v", msgs[1].To)
	}
	if n := len(e.must(200, "GET", "/v1/customers", nil).list()); n != 1 {
		t.Errorf("%d customers, want 1", n)
	}
}

// Personalization is used as given: escaped in the HTML part, and never a header.
func TestInviteCustomerPersonalization(t *testing.T) {
	t.Parallel()
	e := newMailEnv(t)
	e.must(201, "POST", "/v1/customers", `{"key": "bob1", "email": "bob@example.com", "name": "<i>Bob</i>\r\nX-Name: injected"}`)
	e.must(200, "POST", "/v1/customers:invite", map[string]any{"email": "bob@example.com", "personalization": map[string]any{
		"subject": "Bob, join us\r\nBcc: victim@example.com", "message": "<script>alert('x')</script>\nGet 20% off & more"}})
	e.send()
	got := e.mailpit.Wait(1)[0]
	if !strings.HasPrefix(got.Subject, "Bob, join us") || strings.ContainsAny(got.Subject, "\r\n") {
		t.Errorf("subject = %q", got.Subject)
	}
	for h := range got.Headers {
		if h == "Bcc" || h == "X-Name" {
			t.Errorf("header %s injected: %v", h, got.Headers)
		}
	}
	if strings.Contains(got.HTML, "<script>") || strings.Contains(got.HTML, "<i>Bob</i>") ||
		!strings.Contains(got.HTML, "&lt;script&gt;") || !strings.Contains(got.HTML, "Get 20% off &amp; more") {
		t.Errorf("html part not escaped: %s", got.HTML)
	}
	if text := strings.ReplaceAll(got.Text, "\r\n", "\n"); !strings.Contains(text, "<script>alert('x')</script>\nGet 20% off & more") || !strings.Contains(text, "Hi <i>Bob</i> X-Name: injected,") {
		t.Errorf("text part = %s", got.Text)
	}
}

func TestInviteCustomerEmailOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // no REFERD_SMTP_URL
	r := e.call("POST", "/v1/customers:invite", `{"email": "carol@example.com"}`)
	wantError(t, r, 422, "email")
	if msg, _ := r.Body["message"].(string); !strings.Contains(msg, "REFERD_SMTP_URL") {
		t.Errorf("message %q does not say how to turn email on", msg)
	}
	if n := len(e.must(200, "GET", "/v1/customers", nil).list()); n != 0 {
		t.Errorf("%d customers stored, want none", n)
	}
	if pks := e.emails(); len(pks) != 0 {
		t.Errorf("emails stored: %v", pks)
	}
}

func TestInviteCustomerErrors(t *testing.T) {
	t.Parallel()
	e := newMailEnv(t)
	e.must(201, "POST", "/v1/customers", `{"key": "taken", "email": "taken@example.com"}`)
	for _, tc := range []struct {
		name    string
		body    string
		status  int
		field   string
		offSpec bool
	}{
		{"invalid email", `{"email": "not-an-email"}`, 422, "email", false},
		{"no email", `{"name": "Dave"}`, 422, "email", true},
		{"key of another customer", `{"email": "new@example.com", "key": "taken"}`, 409, "key", false},
		{"subject too long", `{"email": "new@example.com", "personalization": {"subject": "` + strings.Repeat("x", 300) + `"}}`, 422, "personalization.subject", true},
		{"malformed JSON", `{"email": `, 400, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, e.offSpecIf(tc.offSpec).call("POST", "/v1/customers:invite", tc.body), tc.status, tc.field)
		})
	}
	if n := len(e.must(200, "GET", "/v1/customers", nil).list()); n != 1 {
		t.Errorf("%d customers, want only the first", n)
	}
	if pks := e.emails(); len(pks) != 0 {
		t.Errorf("a failed request queued emails: %v", pks)
	}
}
