// Package mail sends referd's email (DESIGN §9): text and HTML, through the SMTP
// server of REFERD_SMTP_URL, and renders the messages it sends. Every header value
// it writes is one line: CR and LF in subjects and names become spaces, so text from
// an API call can never add a header.
package mail

import (
	"context"
	"errors"
	"fmt"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Message is one email to one recipient.
type Message struct {
	To     string // the address
	ToName string // shown beside it; may be empty
	// Subject, Text and HTML are the rendered message (Render makes them).
	Subject string
	Text    string
	HTML    string
}

// Sender sends messages through one SMTP server.
type Sender struct {
	host     string
	port     int
	ssl      bool
	user     string
	password string
	from     *netmail.Address
	// Timeout bounds one message's connection and conversation (default 30 s).
	Timeout time.Duration
}

// NewSender parses smtpURL (smtp://user:pass@host:587, with STARTTLS when the server
// offers it; smtps://user:pass@host:465, TLS from the start) and from (an address,
// with or without a name: "Acme <rewards@acme.test>").
func NewSender(smtpURL, from string) (*Sender, error) {
	u, err := url.Parse(smtpURL)
	if err != nil {
		return nil, fmt.Errorf("mail.NewSender: REFERD_SMTP_URL is not a URL: %w", err)
	}
	s := &Sender{host: u.Hostname()}
	switch u.Scheme {
	case "smtp":
		s.port = 587
	case "smtps":
		s.port, s.ssl = 465, true
	default:
		return nil, fmt.Errorf("mail.NewSender: REFERD_SMTP_URL must start with smtp:// or smtps://, not %q", u.Scheme+"://")
	}
	if s.host == "" {
		return nil, errors.New("mail.NewSender: REFERD_SMTP_URL has no host")
	}
	if p := u.Port(); p != "" {
		if s.port, err = strconv.Atoi(p); err != nil || s.port < 1 || s.port > 65535 {
			return nil, fmt.Errorf("mail.NewSender: REFERD_SMTP_URL has a bad port %q", p)
		}
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.password, _ = u.User.Password()
	}
	if strings.TrimSpace(from) == "" {
		return nil, errors.New("mail.NewSender: REFERD_MAIL_FROM is required with REFERD_SMTP_URL (the sender's address, e.g. rewards@example.com)")
	}
	if strings.ContainsAny(from, "\r\n") {
		return nil, errors.New("mail.NewSender: REFERD_MAIL_FROM must be one line")
	}
	if s.from, err = netmail.ParseAddress(from); err != nil {
		return nil, fmt.Errorf("mail.NewSender: REFERD_MAIL_FROM %q is not an address: %w", from, err)
	}
	return s, nil
}

// Host is the SMTP server's host:port, for logs.
func (s *Sender) Host() string { return s.host + ":" + strconv.Itoa(s.port) }

// Send delivers m to the SMTP server; it returns nil once the server accepted it.
func (s *Sender) Send(ctx context.Context, m Message) error {
	msg, err := s.build(m)
	if err != nil {
		return err
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	opts := []gomail.Option{gomail.WithPort(s.port), gomail.WithTimeout(timeout)}
	if s.ssl {
		opts = append(opts, gomail.WithSSL())
	} else {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if s.user != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.user), gomail.WithPassword(s.password))
	}
	c, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return fmt.Errorf("mail.Send(%s): %w", m.To, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("mail.Send(%s): %w", m.To, err)
	}
	return nil
}

func (s *Sender) build(m Message) (*gomail.Msg, error) {
	msg := gomail.NewMsg()
	msg.FromMailAddress(s.from)
	if err := msg.AddToFormat(OneLine(m.ToName), m.To); err != nil {
		return nil, fmt.Errorf("mail.Send(%s): %w", m.To, err)
	}
	msg.Subject(OneLine(m.Subject))
	msg.SetMessageID()
	msg.SetDate()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	return msg, nil
}

// OneLine is s fit for a header: each run of CR, LF and the other line breaks
// becomes one space, and surrounding spaces go.
func OneLine(s string) string {
	var b strings.Builder
	inBreak := false
	for _, r := range s {
		switch r {
		case '\r', '\n', '\v', '\f', '\u0085', '\u2028', '\u2029':
			if !inBreak {
				b.WriteByte(' ')
			}
			inBreak = true
			continue
		}
		inBreak = false
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}
