package mail_test

import (
	"context"
	"strings"
	"testing"

	"github.com/referd/referd/mail"
	"github.com/referd/referd/mail/mailtest"
)

func TestSendInvitation(t *testing.T) {
	t.Parallel()
	srv := mailtest.Start(t)
	s, err := mail.NewSender(srv.URL(), "Acme Rewards <rewards@acme.test>")
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.Invitation{Program: "Acme", Name: "Alice", Link: "https://acme.test?ref=alice1"}.Render()
	if err != nil {
		t.Fatal(err)
	}
	m.To, m.ToName = "alice@example.com", "Alice Smith"
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := srv.Wait(1)[0]
	if got.Subject != "Your referral link for Acme" {
		t.Errorf("subject = %q", got.Subject)
	}
	if got.From.Address != "rewards@acme.test" || got.From.Name != "Acme Rewards" {
		t.Errorf("from = %+v", got.From)
	}
	if len(got.To) != 1 || got.To[0].Address != "alice@example.com" || got.To[0].Name != "Alice Smith" {
		t.Errorf("to = %+v", got.To)
	}
	for part, body := range map[string]string{"text": got.Text, "html": got.HTML} {
		if !strings.Contains(body, "https://acme.test?ref=alice1") || !strings.Contains(body, "Hi Alice,") {
			t.Errorf("%s part lacks the greeting or the link: %s", part, body)
		}
	}
	if !strings.Contains(got.HTML, `<a href="https://acme.test?ref=alice1" `) {
		t.Errorf("html part has no link to the referral link: %s", got.HTML)
	}
}

// Subjects and names come from API calls: a line break in them must not start a
// header of its own, and HTML in the message is text in the HTML part.
func TestSendKeepsHeadersAndHTMLSafe(t *testing.T) {
	t.Parallel()
	srv := mailtest.Start(t)
	s, err := mail.NewSender(srv.URL(), "rewards@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.Invitation{Program: "Acme", Name: "<b>Eve</b>", Link: "https://acme.test?ref=eve",
		Subject: "Hello\r\nBcc: victim@example.com\r\nX-Injected: yes", Message: "<script>alert(1)</script> & more"}.Render()
	if err != nil {
		t.Fatal(err)
	}
	m.To, m.ToName = "eve@example.com", "Eve\r\nX-Name-Injected: yes"
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := srv.Wait(1)[0]
	if len(got.Headers["Subject"]) != 1 {
		t.Fatalf("headers = %v, want one Subject", got.Headers)
	}
	for h := range got.Headers {
		if h == "Bcc" || h == "X-Injected" || h == "X-Name-Injected" {
			t.Errorf("header %s was injected: %v", h, got.Headers)
		}
	}
	if len(got.To) != 1 || got.To[0].Address != "eve@example.com" {
		t.Errorf("to = %+v", got.To)
	}
	if strings.ContainsAny(got.Subject, "\r\n") || !strings.HasPrefix(got.Subject, "Hello") {
		t.Errorf("subject = %q", got.Subject)
	}
	if strings.Contains(got.HTML, "<script>") || strings.Contains(got.HTML, "<b>Eve</b>") {
		t.Errorf("html part holds unescaped markup: %s", got.HTML)
	}
	if !strings.Contains(got.HTML, "&lt;script&gt;") || !strings.Contains(got.HTML, "&lt;b&gt;Eve&lt;/b&gt;") {
		t.Errorf("html part lacks the escaped text: %s", got.HTML)
	}
	if !strings.Contains(got.Text, "<script>alert(1)</script> & more") {
		t.Errorf("text part does not carry the message as given: %s", got.Text)
	}
}

func TestNewSender(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url, from, host string
		ok              bool
	}{
		{"smtp://user:pass@mail.test", "a@b.test", "mail.test:587", true},
		{"smtp://mail.test:2525", "a@b.test", "mail.test:2525", true},
		{"smtps://user:pass@mail.test", "Acme <a@b.test>", "mail.test:465", true},
		{"http://mail.test", "a@b.test", "", false},
		{"smtp://", "a@b.test", "", false},
		{"smtp://mail.test:99999", "a@b.test", "", false},
		{"smtp://mail.test", "", "", false},
		{"smtp://mail.test", "not an address", "", false},
		{"smtp://mail.test", "a@b.test\r\nBcc: x@y.test", "", false},
	} {
		s, err := mail.NewSender(tc.url, tc.from)
		if (err == nil) != tc.ok {
			t.Errorf("NewSender(%q, %q) error = %v, want ok=%v", tc.url, tc.from, err, tc.ok)
			continue
		}
		if tc.ok && s.Host() != tc.host {
			t.Errorf("NewSender(%q).Host() = %q, want %q", tc.url, s.Host(), tc.host)
		}
	}
}

func TestOneLine(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain":                    "plain",
		"a\r\nBcc: x@y.test":       "a Bcc: x@y.test",
		"a\n\n\nb\rc":              "a b c",
		" \r\nlead and trail\n ":   "lead and trail",
		"unicode\u2028line\u0085x": "unicode line x",
	} {
		if got := mail.OneLine(in); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

// A friend invited from the widget reads who invites them to what, the inviter's
// own words set apart (escaped in HTML), and a link to join; nothing of the
// inviter's rewards, which are not theirs.
func TestFriendInvitation(t *testing.T) {
	m, err := mail.FriendInvitation{Program: "Acme", From: "Ann\r\nBcc: x@example.com", Link: "https://acme.test?ref=ann",
		Message: "Try it! <script>alert(1)</script>"}.Render()
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Ann Bcc: x@example.com invites you to Acme" {
		t.Errorf("subject = %q", m.Subject)
	}
	for part, body := range map[string]string{"text": m.Text, "html": m.HTML} {
		if !strings.Contains(body, "invites you to join Acme.") || !strings.Contains(body, "https://acme.test?ref=ann") ||
			!strings.Contains(body, "Join Acme") || strings.Contains(body, "rewarded") {
			t.Errorf("%s part: %s", part, body)
		}
	}
	if !strings.Contains(m.Text, `"Try it! <script>alert(1)</script>"`) || strings.Contains(m.HTML, "<script>") ||
		!strings.Contains(m.HTML, "Try it! &lt;script&gt;") {
		t.Errorf("the message: text %q, html %q", m.Text, m.HTML)
	}
	if m, _ := (mail.FriendInvitation{Program: "Acme", Link: "https://acme.test?ref=ann"}).Render(); m.Subject != "A friend invites you to Acme" || strings.Contains(m.HTML, "blockquote") {
		t.Errorf("without a name or message: %q\n%s", m.Subject, m.HTML)
	}
}
