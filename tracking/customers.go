package tracking

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// maxCustomerBody bounds a po('createCustomer') body: four short fields and a key.
const maxCustomerBody = 8 << 10

// Browser sign-ups per client address: a bucket of 20 that refills at 20 a minute,
// so a page's visitor signs up at once and a script cannot create customers in bulk.
const (
	signupsPerMinute = 20
	maxSignupClients = 100_000 // about 5 MB of buckets
)

// customerBody is po('createCustomer', {key?, email?, name?, surname?}) as
// universal.js sends it, with the program and the referral cookie's value. Fields
// are Text so that a page's numeric ids and names are taken as text.
type customerBody struct {
	Program     referral.Text  `json:"program"`
	Key         *referral.Text `json:"key"`
	Email       *referral.Text `json:"email"`
	Name        *referral.Text `json:"name"`
	Surname     *referral.Text `json:"surname"`
	ReferralKey *referral.Text `json:"referral_key"`
}

// createCustomer creates the customer a site's page names (docs/design.md §7). It
// answers 202 whether or not a customer was created, so that a page cannot learn
// which keys and emails are customers'. The body is read as JSON whatever its
// Content-Type: universal.js sends text/plain, which spares the browser a preflight.
func (h *Handler) createCustomer(w http.ResponseWriter, r *http.Request) {
	allowAnyOrigin(w)
	if !h.signups.allow(ClientIP(r), h.now()) {
		w.Header().Set("Retry-After", strconv.Itoa(60/signupsPerMinute))
		h.fail(w, r, status(http.StatusTooManyRequests, "Too many sign-ups from this address: at most 20 a minute."))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCustomerBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		h.fail(w, r, status(http.StatusBadRequest, "The body must be at most 8 KiB."))
		return
	case err != nil:
		h.fail(w, r, status(http.StatusBadRequest, "Could not read the body."))
		return
	}
	var in customerBody
	if err := json.Unmarshal(body, &in); err != nil {
		h.fail(w, r, status(http.StatusBadRequest, "The body must be a JSON object: {\"program\": ..., \"email\": ...}."))
		return
	}
	p, err := h.program(r.Context(), strings.TrimSpace(string(in.Program)))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !p.Tracking.BrowserSignups {
		h.fail(w, r, status(http.StatusForbidden, "This program does not accept customers from the browser (tracking.browser_signups is false)."))
		return
	}
	_, err = referral.CreateBrowserCustomer(r.Context(), h.db, p, referral.BrowserCustomer{
		Key: raw(in.Key), Email: raw(in.Email), Name: raw(in.Name), Surname: raw(in.Surname),
		ReferralKey: in.ReferralKey.String(),
	})
	var verr *referral.ValidationError
	var conflict *store.ConflictError
	if err != nil && !errors.As(err, &verr) && !errors.As(err, &conflict) {
		h.fail(w, r, err) // the database: a 503, which says nothing about the customer
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// raw is the text as the page sent it (the domain trims what it trims).
func raw(t *referral.Text) *string {
	if t == nil {
		return nil
	}
	s := string(*t)
	return &s
}

// limiter is a token bucket per client address, in memory: with several processes
// behind a load balancer, each allows its own 20 a minute.
type limiter struct {
	mu sync.Mutex
	m  map[netip.Addr]bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func (l *limiter) allow(a netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[netip.Addr]bucket{}
	}
	b, ok := l.m[a]
	if !ok {
		if len(l.m) >= maxSignupClients {
			for k, old := range l.m {
				if now.Sub(old.at) >= time.Minute { // full again: the same as absent
					delete(l.m, k)
				}
			}
			if len(l.m) >= maxSignupClients {
				return false // a flood from many addresses: refuse rather than grow
			}
		}
		b = bucket{signupsPerMinute, now}
	}
	b.tokens = min(signupsPerMinute, b.tokens+now.Sub(b.at).Minutes()*signupsPerMinute)
	b.at = now
	ok = b.tokens >= 1
	if ok {
		b.tokens--
	}
	l.m[a] = b
	return ok
}
