// Package api is referd's Partnero-compatible REST API under /v1: programs, customers
// and their referral links. Handlers decode, call one domain function (package
// referral, ledger or dispatch) and encode; the HTTP status of an error is chosen in
// one place (Server.fail).
package api

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/referd/referd/cache"
	"github.com/referd/referd/ledger"
	"github.com/referd/referd/secrets"
	"github.com/referd/referd/store"
	"github.com/referd/referd/stripeapi"
)

// Server serves the REST API.
type Server struct {
	DB *store.DB
	// PublicURL is the base URL shown in pagination links (REFERD_PUBLIC_URL).
	PublicURL string
	Log       *slog.Logger
	// AllowPrivateTargets lets webhook URLs name loopback, private and link-local
	// addresses (REFERD_ALLOW_PRIVATE_TARGETS); off, they are refused with a 422.
	AllowPrivateTargets bool
	// ProgramChanged, when set, is told of every program this Server changed, so that
	// other caches of it in the process (tracking's) follow at once.
	ProgramChanged func(store.Program)
	// Email says that outgoing email is configured (REFERD_SMTP_URL): off,
	// customers:invite answers 422 saying how to turn it on.
	Email bool
	// SecretKey (REFERD_SECRET_KEY) encrypts the providers' API keys an integration
	// stores; nil, a PUT with an api_key answers 422 saying how to set it.
	SecretKey *secrets.Key
	// Stripe calls Stripe's API (REFERD_STRIPE_API_URL) with a program's API key.
	Stripe *stripeapi.Client

	keys *cache.Cache[[32]byte, store.Program]
	// sales groups concurrent POST /v1/transactions into shared database transactions.
	sales *ledger.Batcher
	// slots admits requests to the database in arrival order (see authed); ledger
	// admits, within those, the requests that write the ledger.
	slots  chan struct{}
	ledger chan struct{}
}

// New returns a Server. At most dbConns requests work at once (the size of the
// database pool; default 16); the rest wait their turn in arrival order.
func New(db *store.DB, publicURL string, log *slog.Logger, dbConns int) *Server {
	if log == nil {
		log = slog.Default()
	}
	if dbConns <= 0 {
		dbConns = 16
	}
	return &Server{DB: db, PublicURL: strings.TrimRight(publicURL, "/"), Log: log, Stripe: stripeapi.New(stripeapi.Options{}),
		keys: &cache.Cache[[32]byte, store.Program]{TTL: keyTTL}, slots: make(chan struct{}, dbConns), ledger: make(chan struct{}, max(dbConns/2, 1)),
		// 2 workers of up to 32 sales each: since a batch's sales are written in one
		// statement, fewer and larger batches do best. On two cores 2 x 32 recorded
		// 3,500-4,470 sales/s at p99 26-35 ms, 2 x 16 3,210-4,490/s at 26-36 ms, and
		// the earlier 4 x 8 2,690-3,500/s at 39-44 ms (BENCHMARKS.md).
		sales: ledger.NewBatcher(db, 2, 32)}
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, p store.Program) error

// Handler is the /v1 API. Paths it does not know answer the JSON error envelope too.
func (s *Server) Handler() http.Handler {
	mux, _ := s.routes()
	return s.recoverer(jsonMux(mux))
}

// routes registers the API's routes on a new mux and returns it with their patterns,
// which the tests hold openapi.json to.
func (s *Server) routes() (*http.ServeMux, []string) {
	mux := &patternMux{ServeMux: http.NewServeMux()}
	route := func(pattern string, h handlerFunc) { mux.Handle(pattern, s.authed(h)) }
	// A ledger write is a transaction of several statements holding row locks (the
	// referrer's balance, counters) until it commits. Beyond about four per core, more
	// of them at once only wait on each other's locks and on the CPU: on two cores, 8
	// at once record as many sales per second as 16, with a p99 of 42-46 ms instead
	// of 51-63 ms (BENCHMARKS.md).
	ledgerRoute := func(pattern string, h handlerFunc) { mux.Handle(pattern, s.authed(s.ledgerWrite(h))) }

	route("GET /v1/program", s.getProgram)
	route("PATCH /v1/program", s.patchProgram)
	route("PUT /v1/program", s.patchProgram)

	route("POST /v1/customers", s.createCustomer)
	route("GET /v1/customers", s.listCustomers)
	route("PUT /v1/customers", s.updateCustomerSDK)
	route("GET /v1/customers:search", s.searchCustomers)
	route("POST /v1/customers:invite", s.inviteCustomer)
	route("GET /v1/customers/{id}", s.getCustomer)
	route("PUT /v1/customers/{id}", s.updateCustomer)
	route("PATCH /v1/customers/{id}", s.updateCustomer)
	route("DELETE /v1/customers/{id}", s.deleteCustomer)
	route("GET /v1/customers/{id}/referrals", s.customerReferrals)
	route("GET /v1/customers/{id}/referral_links", s.customerLinks)
	route("POST /v1/customer_referral_links", s.createLink)
	route("GET /v1/customers/{id}/stats", s.customerStats)
	route("GET /v1/customers/{id}/balance", s.customerBalance)
	ledgerRoute("POST /v1/customers/{id}/balance/credit", s.creditBalance)
	route("GET /v1/customers/{id}/rewards", s.customerRewards)

	// Sales wait for the batcher, whose workers hold the connections: they take no slot.
	mux.Handle("POST /v1/transactions", s.authenticated(s.createTransactions))
	route("GET /v1/transactions", s.listTransactions)

	route("GET /v1/integrations", s.listIntegrations)
	route("GET /v1/integrations/{provider}", s.getIntegration)
	route("PUT /v1/integrations/{provider}", s.putIntegration)
	route("DELETE /v1/integrations/{provider}", s.deleteIntegration)
	route("GET /v1/provider_events", s.listProviderEvents)
	route("GET /v1/transactions/{key}", s.getTransaction)
	ledgerRoute("DELETE /v1/transactions/{key}", s.deleteTransaction)

	route("POST /v1/promotion_codes", s.createPromotionCode)
	route("GET /v1/promotion_codes", s.listPromotionCodes)
	route("GET /v1/promotion_codes/{code}", s.getPromotionCode)
	route("DELETE /v1/promotion_codes/{code}", s.deletePromotionCode)

	route("GET /v1/webhooks", s.listWebhooks)
	route("POST /v1/webhooks", s.createWebhook)
	route("GET /v1/webhooks/{key}", s.getWebhook)
	route("PUT /v1/webhooks/{key}", s.updateWebhook)
	route("DELETE /v1/webhooks/{key}", s.deleteWebhook)
	route("GET /v1/webhooks/{key}/deliveries", s.listDeliveries)
	route("POST /v1/webhooks/{key}/deliveries/{id}/retry", s.retryDelivery)

	mux.Handle("GET /v1/openapi.json", http.HandlerFunc(serveOpenAPI))

	return mux.ServeMux, mux.patterns
}

// patternMux is a ServeMux that remembers the patterns registered on it.
type patternMux struct {
	*http.ServeMux
	patterns []string
}

func (m *patternMux) Handle(pattern string, h http.Handler) {
	m.ServeMux.Handle(pattern, h)
	m.patterns = append(m.patterns, pattern)
}

// jsonMux answers unknown paths (404) and methods (405) with the error envelope
// instead of ServeMux's plain text.
func jsonMux(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r) // sets the path values; Handler alone does not
			return
		}
		// ServeMux's own 404 or 405 handler: keep its status and Allow header, drop its text.
		rec := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		if allow := rec.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		msg := "No such endpoint: " + r.Method + " " + r.URL.Path + "."
		if rec.status == http.StatusMethodNotAllowed {
			msg = "The " + r.Method + " method is not supported for " + r.URL.Path + "."
		}
		writeJSON(w, rec.status, errorEnvelope{Message: msg, Errors: map[string][]string{}})
	})
}

// statusRecorder keeps the status and headers a handler writes, and drops its body.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *statusRecorder) WriteHeader(status int)      { r.status = status }

func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.Log.ErrorContext(r.Context(), "panic", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeJSON(w, http.StatusInternalServerError, errorEnvelope{Message: "Internal server error.", Errors: map[string][]string{}})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// authed takes a slot, then resolves the bearer API key to its program and runs h.
//
// Requests take a slot first. Goroutines blocked on a channel are served first in,
// first out, while database/sql hands a freed connection to a random waiter; with
// no more slots than connections nobody waits inside database/sql, so under load
// every request waits about as long as the others instead of some waiting much longer.
func (s *Server) authed(h handlerFunc) http.Handler {
	inner := s.authenticated(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.slots <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		defer func() { <-s.slots }()
		inner.ServeHTTP(w, r)
	})
}

// authenticated resolves the bearer API key to its program and runs h, or answers 401.
func (s *Server) authenticated(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		key, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok {
			key, ok = strings.CutPrefix(auth, "bearer ")
		}
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			s.fail(w, r, errorf(http.StatusUnauthorized, "Unauthenticated: send Authorization: Bearer <api key>."))
			return
		}
		p, err := s.program(r.Context(), key)
		if store.IsNotFound(err) {
			s.fail(w, r, errorf(http.StatusUnauthorized, "Unauthenticated: the API key is not valid."))
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if err := h(w, r, p); err != nil {
			s.fail(w, r, err)
		}
	})
}

// ledgerWrite runs h once one of the ledger slots is free, in arrival order.
func (s *Server) ledgerWrite(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p store.Program) error {
		select {
		case s.ledger <- struct{}{}:
		case <-r.Context().Done():
			return r.Context().Err()
		}
		defer func() { <-s.ledger }()
		return h(w, r, p)
	}
}

// keyTTL bounds how long a program read through an API key is reused without asking
// the database; a PATCH through this process refreshes it at once, other processes
// see the change within keyTTL.
const keyTTL = 5 * time.Second

func (s *Server) program(ctx context.Context, key string) (store.Program, error) {
	h := sha256.Sum256([]byte(key))
	return s.keys.Get(ctx, h, func(ctx context.Context) (store.Program, error) {
		return store.ProgramByKeyHash(ctx, s.DB, h[:])
	})
}

// RefreshProgram replaces the cached copies of p after it changed (through this
// Server or the console of the same process).
func (s *Server) RefreshProgram(p store.Program) {
	s.keys.Update(func(old store.Program) (store.Program, bool) { return p, old.PK == p.PK })
	if s.ProgramChanged != nil {
		s.ProgramChanged(p)
	}
}
