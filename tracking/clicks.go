package tracking

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/referd/referd/store"
)

// record counts a click on ref's link by the visitor who sent r. hosted says it
// came through a share link, whose redirect the site's script reports once more.
func (h *Handler) record(ctx context.Context, r *http.Request, p store.Program, ref store.ReferralKey, hosted bool) error {
	now := h.now().UTC()
	salt, err := h.salts.get(ctx, h.db, now)
	if err != nil {
		return err
	}
	visitor := visitorID(salt, ref.CustomerPK, ClientIP(r), r.UserAgent())
	if !hosted && h.echoes.take(visitor, now) {
		return nil
	}
	if _, err := h.clicks.Do(ctx, store.Click{ProgramPK: p.PK, CustomerPK: ref.CustomerPK, Day: now, Visitor: visitor}); err != nil {
		return err
	}
	if hosted {
		h.echoes.add(visitor, now)
	}
	return nil
}

// visitorID is who clicked, for unique_clicks: a keyed hash of the referrer, the
// client's address and User-Agent under the day's salt. It tells the same visitor
// apart from others on that day and for that referrer only, and, once the salt is
// deleted, not even that (store.PruneClickVisitors). The address is never stored.
func visitorID(salt []byte, customerPK int64, ip netip.Addr, userAgent string) []byte {
	m := hmac.New(sha256.New, salt)
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(customerPK))
	a := ip.As16()
	copy(b[8:], a[:])
	m.Write(b[:])
	m.Write([]byte(userAgent))
	return m.Sum(nil)[:16]
}

// ClientIP is the visitor's address. A peer on a private or loopback network is
// a proxy (a load balancer) when it sends X-Forwarded-For: the address that the
// nearest proxy saw connect is then the last public one in the header, which a
// client cannot forge. A public peer is the visitor, whatever it claims.
func ClientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, _ := netip.ParseAddr(host)
	peer = peer.Unmap()
	if !internal(peer) {
		return peer
	}
	var hops []netip.Addr
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, f := range strings.Split(v, ",") {
			if a, err := netip.ParseAddr(strings.TrimSpace(f)); err == nil {
				hops = append(hops, a.Unmap())
			}
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		if !internal(hops[i]) {
			return hops[i]
		}
	}
	if len(hops) > 0 {
		return hops[0] // all inside one private network: the first is the client
	}
	return peer
}

func internal(a netip.Addr) bool {
	return !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast()
}

// salts keeps the salts of the current and the previous day in memory; the
// database holds the one every process agrees on (store.ClickSalt).
type salts struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *salts) get(ctx context.Context, db *store.DB, now time.Time) ([]byte, error) {
	day := now.Format(time.DateOnly)
	s.mu.Lock()
	salt, ok := s.m[day]
	s.mu.Unlock()
	if ok {
		return salt, nil
	}
	fresh := make([]byte, 32)
	rand.Read(fresh)
	salt, err := store.ClickSalt(ctx, db, now, fresh)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	yesterday := now.AddDate(0, 0, -1).Format(time.DateOnly)
	for d := range s.m {
		if d != yesterday {
			delete(s.m, d) // a salt leaves memory a day after its day ended
		}
	}
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[day] = salt
	return salt, nil
}

// echoes remembers the visitors who came through a share link in the last
// minute. The share link sends them to the site with ?ref=KEY, and the site's
// universal.js then reports the same click again: that report is taken as the echo
// and not counted. It is kept in memory: with several API processes behind a load
// balancer, an echo that reaches another process counts twice (rarely: the browser
// reuses its connection to referd).
type echoes struct {
	mu sync.Mutex
	m  map[[16]byte]time.Time // visitor → until when its echo is expected
}

const (
	echoWindow = time.Minute
	maxEchoes  = 100_000 // about 5 MB; past it, echoes count as clicks
)

func (e *echoes) add(visitor []byte, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[[16]byte]time.Time{}
	}
	if len(e.m) >= maxEchoes {
		for k, until := range e.m {
			if now.After(until) {
				delete(e.m, k)
			}
		}
		if len(e.m) >= maxEchoes {
			return
		}
	}
	e.m[[16]byte(visitor)] = now.Add(echoWindow)
}

// take reports whether a beacon of visitor is the echo of a share link click, and
// forgets it: only one beacon per share link click is an echo.
func (e *echoes) take(visitor []byte, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	until, ok := e.m[[16]byte(visitor)]
	if ok {
		delete(e.m, [16]byte(visitor))
	}
	return ok && !now.After(until)
}
