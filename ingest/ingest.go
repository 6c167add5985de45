package ingest

import (
	"bytes"
	"context"
	"database/sql"
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
	"github.com/referd/referd/logging"
	"github.com/referd/referd/metrics"
	"github.com/referd/referd/providers"
	_ "github.com/referd/referd/providers/all" // the providers referd ships
	"github.com/referd/referd/store"
)

// MaxBody is the largest webhook body read (413 above).
const MaxBody = 1 << 20

// Handler serves POST /ingest/{provider}/{program_id}.
type Handler struct {
	DB  *store.DB
	Log *slog.Logger

	// events group-commits stored events: events that arrive while a commit is under
	// way share the next one (one multi-row INSERT, one WAL flush), and each request
	// is answered once its own row is durable.
	events *batch.Group[store.ProviderEvent, storedEvent]
	cache  *cache.Cache[string, cachedConfig]
	// Stored is called after an event is durable, with whether it was new: the hook
	// that hands new events to the workers. A failure there never fails the request:
	// the event is stored and a sweep picks it up.
	Stored func(ctx context.Context, ev store.ProviderEvent, isNew bool)
}

// New returns a Handler whose stores group-commit on workers connections.
func New(db *store.DB, log *slog.Logger, workers int) *Handler {
	if log == nil {
		log = slog.Default()
	}
	return &Handler{DB: db, Log: log, events: batch.New(max(workers, 1), 64, func(ctx context.Context, evs []store.ProviderEvent) ([]storedEvent, error) {
		return insertEvents(ctx, db, evs)
	}),
		cache: &cache.Cache[string, cachedConfig]{TTL: configTTL}}
}

// Register mounts the receiver on mux. Every answer under /ingest/ is JSON, a wrong
// method or path included (the mux's own are plain text).
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /ingest/{provider}/{program_id}", h.receive)
	mux.HandleFunc("/ingest/{provider}/{program_id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		fail(w, http.StatusMethodNotAllowed, "Method not allowed: webhooks are delivered with POST.", nil)
	})
	mux.HandleFunc("/ingest/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, "Not found: webhooks go to POST /ingest/{provider}/{program_id}.", nil)
	})
}

func (h *Handler) receive(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("provider")
	prov, ok := providers.Lookup(name)
	if !ok {
		metrics.IngestEvent("unknown", "not_found")
		fail(w, http.StatusNotFound, "Unknown provider: referd ingests "+inWords(providers.Names())+".", nil)
		return
	}
	cfg, err := h.config(r.Context(), r.PathValue("program_id"), name)
	switch {
	case store.IsNotFound(err):
		metrics.IngestEvent(name, "not_found")
		fail(w, http.StatusNotFound, "Unknown program, or "+name+" is not configured for it.", nil)
		return
	case err != nil:
		h.Log.ErrorContext(r.Context(), "ingest: reading configuration", "err", err)
		metrics.IngestEvent(name, "unavailable")
		fail(w, http.StatusServiceUnavailable, "Could not read the program's configuration; deliver the event again.", nil)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			metrics.IngestEvent(name, "too_large")
			fail(w, http.StatusRequestEntityTooLarge, "The body is larger than 1 MiB.", nil)
			return
		}
		fail(w, http.StatusBadRequest, "Could not read the body.", nil)
		return
	}
	now := time.Now()
	if err := prov.Verify(r.Header, body, credentials(cfg.integration), now); err != nil {
		metrics.IngestEvent(name, "bad_signature")
		fail(w, badSignatureStatus(prov), "The signature does not verify.", nil)
		return
	}
	parsed, err := prov.Parse(body, providers.Options{CustomerKeyField: cfg.integration.CustomerKeyField})
	if err != nil {
		metrics.IngestEvent(name, "malformed")
		fail(w, http.StatusBadRequest, "Not a "+name+" webhook.", map[string][]string{"body": {err.Error()}})
		return
	}
	if why := unstorable(body, parsed); why != nil {
		metrics.IngestEvent(name, "unstorable")
		fail(w, http.StatusBadRequest, "The event cannot be stored.", why)
		return
	}
	ev := store.ProviderEvent{ProgramPK: cfg.program.PK, Provider: name, EventID: parsed.EventID, Type: parsed.Type,
		Payload: body, ReceivedAt: store.Now()}
	if id := logging.RequestID(r.Context()); id != "" {
		ev.RequestID = sql.NullString{String: id, Valid: true}
	}
	stored, err := h.events.Do(r.Context(), ev)
	if err == nil {
		err = stored.err
	}
	var rejected *store.RejectedError
	if errors.As(err, &rejected) {
		// The database refused this event for its data, which unstorable missed:
		// delivering it again would fail again. The events grouped with it are stored.
		h.Log.WarnContext(r.Context(), "ingest: event refused by the database", "provider", name, "err", err)
		metrics.IngestEvent(name, "unstorable")
		fail(w, http.StatusBadRequest, "The event cannot be stored.", map[string][]string{"event": {rejected.Reason()}})
		return
	}
	if err != nil {
		// Not stored: the provider must deliver it again.
		h.Log.ErrorContext(r.Context(), "ingest: storing event", "provider", name, "event", parsed.EventID, "err", err)
		metrics.IngestEvent(name, "unavailable")
		fail(w, http.StatusServiceUnavailable, "Could not store the event; deliver it again.", nil)
		return
	}
	if stored.isNew {
		metrics.IngestEvent(name, "stored")
	} else {
		metrics.IngestEvent(name, "duplicate")
	}
	if h.Stored != nil {
		ev.PK = stored.pk
		h.Stored(r.Context(), ev, stored.isNew)
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"ok":true,"message":"stored"}`)
}

// credentials are what in holds to verify its provider's webhooks.
func credentials(in store.Integration) providers.Credentials {
	return providers.Credentials{WebhookSecrets: in.WebhookSecrets, Username: in.Username.String, Password: in.Password.String}
}

// badSignatureStatus answers a webhook that does not verify: a bad signature is a
// malformed request (400, as Stripe and Paddle expect), bad basic-auth credentials
// an unauthorized one (401).
func badSignatureStatus(p providers.Provider) int {
	if p.Auth() == providers.BasicAuth {
		return http.StatusUnauthorized
	}
	return http.StatusBadRequest
}

// inWords lists names as a sentence does: "a, b and c".
func inWords(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// fail answers an error in the REST API's envelope (api/respond.go): {"status": 0, "message",
// "errors": {field: [...]}}.
func fail(w http.ResponseWriter, status int, msg string, fields map[string][]string) {
	if fields == nil {
		fields = map[string][]string{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(struct {
		Status  int                 `json:"status"`
		Message string              `json:"message"`
		Errors  map[string][]string `json:"errors"`
	}{0, msg, fields})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// configTTL bounds how long the receiver reuses a program and its integration
// without reading them: its hot path should not read them on every webhook. A changed
// secret applies within configTTL.
const configTTL = 2 * time.Second

type cachedConfig struct {
	program     store.Program
	integration store.Integration
}

func (h *Handler) config(ctx context.Context, programID, provider string) (cachedConfig, error) {
	return h.cache.Get(ctx, programID+"|"+provider, func(ctx context.Context) (cachedConfig, error) {
		p, err := store.ProgramByID(ctx, h.DB, programID)
		if err != nil {
			return cachedConfig{}, err
		}
		in, err := store.GetIntegration(ctx, h.DB, p.PK, provider)
		return cachedConfig{program: p, integration: in}, err
	})
}

// storedEvent says whether an event was new (false: a redelivery) and, if so, its PK,
// or why it was not stored.
type storedEvent struct {
	isNew bool
	pk    int64
	err   error
}

// insertEvents stores a group's events; each has its own outcome, so one the database
// refuses does not fail the others.
func insertEvents(ctx context.Context, db *store.DB, events []store.ProviderEvent) ([]storedEvent, error) {
	news, errs := store.InsertProviderEventsEach(ctx, db, events)
	out := make([]storedEvent, len(events))
	for i := range events {
		out[i] = storedEvent{news[i], events[i].PK, errs[i]}
	}
	return out, nil
}
