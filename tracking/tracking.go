// Package tracking is referd's public, keyless side (docs/design.md §4, §7): the
// universal.js script that sites load with Partnero's loader snippet, the click beacon
// it sends, the customers it creates, the program settings it reads, and the hosted
// share links /r/{program_id}/{key}.
// Clicks become customer_stats.clicks and unique_clicks through batched writes.
package tracking

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/referd/referd/batch"
	"github.com/referd/referd/cache"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

//go:embed universal.js
var script []byte

// ScriptVersion identifies the content of universal.js: /js/universal.js?v=ScriptVersion
// may be cached for good, and the ETag of /js/universal.js is this value, quoted.
var ScriptVersion = func() string {
	h := sha256.Sum256(script)
	return hex.EncodeToString(h[:6])
}()

// Cache lifetimes. The unversioned script is revalidated (ETag) every few minutes so
// that an upgrade reaches sites quickly; a program's settings likewise.
const (
	scriptMaxAge   = "public, max-age=300"
	versionedAge   = "public, max-age=31536000, immutable"
	settingsMaxAge = "public, max-age=60"
)

// maxClickBody bounds a click beacon's body: it carries two short strings.
const maxClickBody = 4 << 10

// Handler serves the tracking routes. Make one with New.
type Handler struct {
	// Email says that outgoing email is configured (REFERD_SMTP_URL): off, the
	// widget's invitations are refused (422) and its invite form is not shown.
	Email bool

	db  *store.DB
	log *slog.Logger
	// now is the clock of the click's day (tests move it).
	now func() time.Time

	programs *cache.Cache[string, found[store.Program]]
	keys     *cache.Cache[keyRef, found[store.ReferralKey]]
	// clicks group-commits clicks: those that arrive while a batch is at the
	// database share the next transaction.
	clicks *batch.Group[store.Click, struct{}]
	salts  salts
	echoes echoes
	// signups limits po('createCustomer') per client address.
	signups limiter
}

// found is a cached lookup, kept whether or not it found something, so that a flood
// of beacons for an unknown program or key does not reach the database each time.
type found[T any] struct {
	v  T
	ok bool
}

type keyRef struct {
	programPK int64
	key       string
}

// lookupTTL bounds how long a program's settings and a key's referrer are reused:
// a change made in another process reaches this one within it (one made in this
// process is applied at once: see ProgramChanged).
const lookupTTL = 5 * time.Second

// Click batches: two at the database at once, of up to 256 clicks each. Each
// batch is one transaction of one statement, so two connections keep up with a
// click rate well beyond what the HTTP side of two cores can take in.
const (
	clickWorkers = 2
	clickBatch   = 256
)

// New returns a Handler on db. A nil log is slog.Default().
func New(db *store.DB, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	h := &Handler{db: db, log: log, now: time.Now,
		programs: &cache.Cache[string, found[store.Program]]{TTL: lookupTTL},
		keys:     &cache.Cache[keyRef, found[store.ReferralKey]]{TTL: lookupTTL},
	}
	h.clicks = batch.New(clickWorkers, clickBatch, func(ctx context.Context, in []store.Click) ([]struct{}, error) {
		return make([]struct{}, len(in)), store.RecordClicks(ctx, db, in)
	})
	return h
}

// Register mounts the routes on mux:
//
//	GET     /js/universal.js               the script
//	GET     /track/program/{program_id}    the program's tracking settings (CORS)
//	POST    /track/click                   a click beacon (CORS)
//	OPTIONS /track/click                   its CORS preflight
//	POST    /track/customer                po('createCustomer') (CORS)
//	OPTIONS /track/customer                its CORS preflight
//	GET     /r/{program_id}/{key}          a hosted share link
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /js/universal.js", h.serveScript)
	mux.HandleFunc("GET /track/program/{program_id}", h.settings)
	mux.HandleFunc("POST /track/click", h.click)
	mux.HandleFunc("OPTIONS /track/click", h.preflight)
	mux.HandleFunc("POST /track/customer", h.createCustomer)
	mux.HandleFunc("OPTIONS /track/customer", h.preflight)
	mux.HandleFunc("GET /r/{program_id}/{key}", h.shareLink)
	mux.HandleFunc("GET /widget/customer", h.widgetCustomer)
	mux.HandleFunc("POST /widget/invite", h.widgetInvite)
	mux.HandleFunc("OPTIONS /widget/invite", h.preflight)
}

func (h *Handler) serveScript(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Type", "text/javascript; charset=utf-8")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Access-Control-Allow-Origin", "*")
	hd.Set("ETag", `"`+ScriptVersion+`"`)
	// Only the current version may be kept for good: a page that still names an
	// older one gets today's script, revalidated like the unversioned URL.
	if r.URL.Query().Get("v") == ScriptVersion {
		hd.Set("Cache-Control", versionedAge)
	} else {
		hd.Set("Cache-Control", scriptMaxAge)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(script)) // answers If-None-Match with 304
}

// settings answers the program's tracking settings, or null when there is no such
// program. Not a 404: browsers print every failed request in the console as an
// error, and a site with a mistyped program id must load without one; the script
// then does nothing.
func (h *Handler) settings(w http.ResponseWriter, r *http.Request) {
	allowAnyOrigin(w)
	p, err := h.program(r.Context(), r.PathValue("program_id"))
	var data *referral.TrackingView
	var nf *referral.NotFoundError
	switch {
	case err == nil:
		v := referral.TrackingJSON(p)
		data = &v
	case !errors.As(err, &nf):
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", settingsMaxAge)
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "status": 1})
}

// clickBody is a beacon: {program, key, url?, referrer?}. url and referrer are
// accepted for Partnero's clients and not kept.
type clickBody struct {
	Program  referral.Text `json:"program"`
	Key      referral.Text `json:"key"`
	URL      string        `json:"url"`
	Referrer string        `json:"referrer"`
}

// click counts a beacon. The body is read as JSON whatever its Content-Type:
// sendBeacon sends text/plain, which spares the browser a preflight.
func (h *Handler) click(w http.ResponseWriter, r *http.Request) {
	allowAnyOrigin(w)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxClickBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		h.fail(w, r, status(http.StatusRequestEntityTooLarge, "The body must be at most 4 KiB."))
		return
	case err != nil:
		h.fail(w, r, status(http.StatusBadRequest, "Could not read the body."))
		return
	}
	var in clickBody
	if err := json.Unmarshal(body, &in); err != nil {
		h.fail(w, r, status(http.StatusBadRequest, "The body must be a JSON object: {\"program\": ..., \"key\": ...}."))
		return
	}
	program, key := strings.TrimSpace(string(in.Program)), strings.TrimSpace(string(in.Key))
	verr := &referral.ValidationError{}
	if program == "" {
		verr.Add("program", "The program field is required.")
	}
	if key == "" {
		verr.Add("key", "The key field is required.")
	}
	if err := verr.Err(); err != nil {
		h.fail(w, r, err)
		return
	}
	p, ref, err := h.referrer(r.Context(), program, key)
	if err == nil && !ref.Active {
		err = &referral.NotFoundError{What: "referral key"} // a deleted customer refers nobody new
	}
	if err == nil {
		err = h.record(r.Context(), r, p, ref, false)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) preflight(w http.ResponseWriter, r *http.Request) {
	allowAnyOrigin(w)
	hd := w.Header()
	hd.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	hd.Set("Access-Control-Allow-Headers", "Content-Type")
	hd.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

// shareLink counts a click on a hosted link and sends the visitor on to the link's
// destination, or the program's site, with the referral parameter, where the
// site's own universal.js sets the cookie (and does not count the click again: see
// echoes). A failure to count never strands the visitor.
func (h *Handler) shareLink(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	p, ref, err := h.referrer(r.Context(), r.PathValue("program_id"), key)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	target := referral.LinkURL(p, key, ref.DestinationURL.String)
	switch {
	case !ref.Active:
		// A deleted customer refers nobody new: the visitor still reaches the site.
		target = p.WebsiteURL
		if ref.DestinationURL.Valid {
			target = ref.DestinationURL.String
		}
	case r.Method == http.MethodHead:
		// Link checkers and unfurlers ask with HEAD; that is not a visit.
	default:
		if err := h.record(r.Context(), r, p, ref, true); err != nil {
			h.log.WarnContext(r.Context(), "tracking: a share link's click was not counted", "program", p.ID, "err", err)
		}
	}
	w.Header().Set("Cache-Control", "no-store") // every visit must reach referd to count
	http.Redirect(w, r, target, http.StatusFound)
}

// program returns the program with public id id, from the cache when it can.
func (h *Handler) program(ctx context.Context, id string) (store.Program, error) {
	f, err := h.programs.Get(ctx, id, func(ctx context.Context) (found[store.Program], error) {
		p, err := referral.PublicProgram(ctx, h.db, id)
		var nf *referral.NotFoundError
		if errors.As(err, &nf) {
			return found[store.Program]{}, nil
		}
		return found[store.Program]{p, err == nil}, err
	})
	if err == nil && !f.ok {
		err = &referral.NotFoundError{What: "program"}
	}
	return f.v, err
}

// ProgramChanged replaces the cached copy of p after a change (a PATCH /v1/program in
// this process), so the next settings request and share link follow it at once;
// other processes see it within lookupTTL.
func (h *Handler) ProgramChanged(p store.Program) {
	h.programs.Update(func(old found[store.Program]) (found[store.Program], bool) {
		return found[store.Program]{p, true}, old.ok && old.v.PK == p.PK
	})
}

// referrer resolves a program's public id and a referral key, from the cache when it can.
func (h *Handler) referrer(ctx context.Context, programID, key string) (store.Program, store.ReferralKey, error) {
	p, err := h.program(ctx, programID)
	if err != nil {
		return store.Program{}, store.ReferralKey{}, err
	}
	f, err := h.keys.Get(ctx, keyRef{p.PK, key}, func(ctx context.Context) (found[store.ReferralKey], error) {
		k, err := referral.Referrer(ctx, h.db, p, key)
		var nf *referral.NotFoundError
		if errors.As(err, &nf) {
			return found[store.ReferralKey]{}, nil
		}
		return found[store.ReferralKey]{k, err == nil}, err
	})
	if err == nil && !f.ok {
		err = &referral.NotFoundError{What: "referral key"}
	}
	return p, f.v, err
}

func allowAnyOrigin(w http.ResponseWriter) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
}

// statusError is an error with the HTTP status chosen for it.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

func status(code int, msg string) error { return &statusError{code, msg} }

// fail writes the API's error envelope for err; this is where errors become statuses.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, msg, fields := http.StatusServiceUnavailable, "Try again later.", map[string][]string{}
	var se *statusError
	var nf *referral.NotFoundError
	var ve *referral.ValidationError
	switch {
	case errors.As(err, &se):
		code, msg = se.status, se.msg
	case errors.As(err, &nf):
		code, msg = http.StatusNotFound, nf.Error()
	case errors.As(err, &ve):
		code, msg, fields = http.StatusUnprocessableEntity, ve.Error(), ve.Fields
	case errors.Is(err, context.Canceled):
		return // the client left
	default:
		h.log.ErrorContext(r.Context(), "tracking", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, code, map[string]any{"status": 0, "message": msg, "errors": fields})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"status":0,"message":"Internal server error.","errors":{}}`)
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}
