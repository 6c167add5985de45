// Package admin is referd's web console (DESIGN §10): the business that runs a
// program signs in with one of its API keys and sees and changes the program from a
// browser. Pages are HTML rendered on the server from Go templates and read without
// JavaScript; every asset is served from this package. Every action calls the same
// domain function as the REST API (packages referral, ledger, dispatch, ops): the
// console is another way to call them, not another way to change data.
package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/referd/referd/promo"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/secrets"
	"github.com/referd/referd/store"
	"github.com/referd/referd/stripeapi"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Console serves /admin.
type Console struct {
	DB  *store.DB
	Log *slog.Logger
	// PublicURL is referd's public base URL: ingest URLs shown on the settings page
	// start with it, and an https one makes the session cookie Secure.
	PublicURL string
	// OpsQueues says that /ops/queues (asynqmon) is served: the console links to it.
	OpsQueues bool
	// Email says that outgoing email is configured.
	Email bool
	// AllowPrivateTargets is the API's setting for webhook URLs.
	AllowPrivateTargets bool
	// SecretKey (REFERD_SECRET_KEY) encrypts Stripe's API key, as for the API; nil,
	// the key cannot be stored.
	SecretKey *secrets.Key
	// Stripe calls Stripe's API (REFERD_STRIPE_API_URL): a replayed payment asks it
	// about promotion ids, as the workers do. Nil: it is not asked.
	Stripe *stripeapi.Client
	// ProgramChanged, when set, is told of every program the console changed (as the
	// API's Server.ProgramChanged).
	ProgramChanged func(store.Program)

	pages map[string]*template.Template
}

// resolver is what a replay asks about promotion ids no code names (nil without
// Stripe's client).
func (c *Console) resolver() promo.Resolver {
	if c.Stripe == nil {
		return nil
	}
	return &promo.Stripe{DB: c.DB, Key: c.SecretKey, Client: c.Stripe}
}

// SessionTTL is how long a sign-in lasts.
const SessionTTL = 12 * time.Hour

// cookieName is the session cookie's name.
const cookieName = "referd_admin"

// New returns a Console; its fields may be set until Handler is called.
func New(db *store.DB, publicURL string, log *slog.Logger) *Console {
	if log == nil {
		log = slog.Default()
	}
	return &Console{DB: db, PublicURL: strings.TrimRight(publicURL, "/"), Log: log}
}

// session is a signed-in request's program and the CSRF token its forms carry.
type session struct {
	Program store.Program
	CSRF    string
	idHash  []byte
}

type pageFunc func(w http.ResponseWriter, r *http.Request, s *session) error

// Handler serves /admin and everything under it.
func (c *Console) Handler() http.Handler {
	c.pages = parsePages()
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /admin/static/", http.StripPrefix("/admin/static/", cacheFor(time.Hour, http.FileServerFS(static))))
	mux.HandleFunc("GET /admin/signin", c.signinForm)
	mux.HandleFunc("POST /admin/signin", c.signin)
	page := func(pattern string, h pageFunc) { mux.Handle(pattern, c.authed(h)) }
	page("POST /admin/signout", c.signout)
	page("GET /admin", c.overview)
	page("GET /admin/{$}", c.overview)
	page("GET /admin/customers", c.customers)
	page("GET /admin/customers/{id}", c.customer)
	page("POST /admin/customers/{id}/credit", c.credit)
	for _, r := range extraRoutes {
		page(r.pattern, r.handler(c))
	}
	mux.Handle("/admin/", c.authed(func(w http.ResponseWriter, r *http.Request, s *session) error {
		return errNotFound
	}))
	return c.recoverer(securityHeaders(mux))
}

// extraRoute is a page registered by another file of the package (init), so that
// pages can be added without editing Handler.
type extraRoute struct {
	pattern string
	handler func(c *Console) pageFunc
}

var extraRoutes []extraRoute

// route registers a page of the console; call it from an init function.
func route(pattern string, h func(c *Console) pageFunc) {
	extraRoutes = append(extraRoutes, extraRoute{pattern, h})
}

// authed runs h for a signed-in request, checking the CSRF token of every POST;
// signed out, a GET is sent to the sign-in form and a POST is refused.
func (c *Console) authed(h pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.session(r)
		if err != nil {
			if !store.IsNotFound(err) {
				c.fail(w, r, nil, err)
				return
			}
			clearCookie(w, c.secure())
			if r.Method == http.MethodGet {
				next := r.URL.RequestURI()
				if r.URL.Path == "/admin" || r.URL.Path == "/admin/" {
					next = ""
				}
				target := "/admin/signin"
				if next != "" {
					target += "?next=" + url.QueryEscape(next)
				}
				http.Redirect(w, r, target, http.StatusSeeOther)
				return
			}
			c.fail(w, r, nil, errForbidden("Your session has ended. Sign in again."))
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			token := r.PostFormValue("csrf")
			if subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRF)) != 1 || token == "" {
				c.fail(w, r, s, errForbidden("This form has expired or did not come from this console (its CSRF token is missing or wrong). Nothing was changed; reload the page and try again."))
				return
			}
		}
		if err := h(w, r, s); err != nil {
			c.fail(w, r, s, err)
		}
	})
}

// maxForm bounds a form's body.
const maxForm = 64 << 10

// session reads the session of r's cookie, or ErrNotFound.
func (c *Console) session(r *http.Request) (*session, error) {
	ck, err := r.Cookie(cookieName)
	if err != nil || len(ck.Value) < 20 || len(ck.Value) > 100 {
		return nil, store.ErrNotFound
	}
	h := sha256.Sum256([]byte(ck.Value))
	s, err := store.GetAdminSession(r.Context(), c.DB, h[:], time.Now())
	if err != nil {
		return nil, err
	}
	p, err := store.ProgramByPK(r.Context(), c.DB, s.ProgramPK)
	if err != nil {
		return nil, err
	}
	return &session{Program: p, CSRF: s.CSRF, idHash: h[:]}, nil
}

func (c *Console) secure() bool { return strings.HasPrefix(c.PublicURL, "https://") }

func clearCookie(w http.ResponseWriter, secure bool) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/admin", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode})
}

// randomToken is n random bytes, base64url.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// securityHeaders keeps the console's pages to themselves: no framing, no scripts or
// styles but its own, no referrer leaking ids to other sites, nothing cached.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, "/admin/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

func cacheFor(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age="+itoa(int64(d/time.Second)))
		h.ServeHTTP(w, r)
	})
}

func (c *Console) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				c.Log.ErrorContext(r.Context(), "admin: panic", "method", r.Method, "path", r.URL.Path, "panic", v)
				http.Error(w, "Internal server error.", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// statusError is an error page of its own status.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

var errNotFound = &statusError{http.StatusNotFound, "There is no such page in this program."}

func errForbidden(msg string) error { return &statusError{http.StatusForbidden, msg} }

// fail shows err as an error page in the console's layout (s may be nil, signed out).
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	status, msg := http.StatusInternalServerError, "Something went wrong on our side; it has been logged."
	var se *statusError
	var nf *referral.NotFoundError
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &se):
		status, msg = se.status, se.msg
	case errors.As(err, &nf), store.IsNotFound(err):
		status, msg = errNotFound.status, errNotFound.msg
	case errors.As(err, &mb):
		status, msg = http.StatusRequestEntityTooLarge, "The form is too large."
	default:
		c.Log.ErrorContext(r.Context(), "admin: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	c.render(w, r, s, status, "error", "Error", map[string]any{"Status": status, "StatusText": http.StatusText(status), "Message": msg})
}
