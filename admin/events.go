package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/referd/referd/ops"
	"github.com/referd/referd/providers"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

func init() {
	route("GET /admin/events", func(c *Console) pageFunc { return c.events })
	route("GET /admin/events/{id}", func(c *Console) pageFunc { return c.event })
	route("POST /admin/events/{id}/replay", func(c *Console) pageFunc { return c.replay })
}

// eventsPage is what the billing events list shows.
type eventsPage struct {
	Provider, Status string
	Providers        []string
	Statuses         []store.EventStatus
	Events           []store.ProviderEvent
	Pager            keysetPager
	Errors           map[string][]string
}

// events lists the program's stored billing events newest first, 50 a page, narrowed
// by ?provider= and ?status=; pages are read by position, as the transactions'.
func (c *Console) events(w http.ResponseWriter, r *http.Request, s *session) error {
	verr := &referral.ValidationError{}
	v := eventsPage{Providers: providers.Names(), Statuses: store.EventStatuses()}
	v.Provider = choiceFilter(r, "provider", v.Providers, verr)
	v.Status = choiceFilter(r, "status", v.Statuses, verr)
	if verr.Err() != nil {
		v.Errors = verr.Fields
		c.render(w, r, s, http.StatusUnprocessableEntity, "events", "Billing events", v)
		return nil
	}
	es, pg, err := store.ProviderEventsPage(r.Context(), c.DB, store.ProviderEventFilter{
		ProgramPK: s.Program.PK, Provider: v.Provider, Status: store.EventStatus(v.Status)}, keysetOf(r))
	if err != nil {
		return err
	}
	v.Events = es
	if len(es) > 0 {
		v.Pager = newKeysetPager("/admin/events", map[string]string{"provider": v.Provider, "status": v.Status}, pg, es[0].PK, es[len(es)-1].PK)
	}
	c.render(w, r, s, http.StatusOK, "events", "Billing events", v)
	return nil
}

// eventOf reads {id} (the event's id in GET /v1/provider_events) and returns the
// program's event; another program's, or none, is a 404 page.
func (c *Console) eventOf(r *http.Request, s *session) (store.ProviderEvent, error) {
	pk, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || pk <= 0 {
		return store.ProviderEvent{}, errNotFound
	}
	return store.ProgramProviderEvent(r.Context(), c.DB, s.Program.PK, pk)
}

// eventPage is what one billing event's page shows.
type eventPage struct {
	Event   store.ProviderEvent
	Payload string // pretty-printed when it is JSON
}

// event shows one stored billing event (GET /admin/events/{id}): its outcome and its
// payload as received.
func (c *Console) event(w http.ResponseWriter, r *http.Request, s *session) error {
	e, err := c.eventOf(r, s)
	if err != nil {
		return err
	}
	c.render(w, r, s, http.StatusOK, "event", "Billing event "+e.EventID, eventPage{Event: e, Payload: prettyPayload(e.Payload)})
	return nil
}

// prettyPayload is a payload indented when it is JSON, else as it is (invalid UTF-8
// shown as U+FFFD); the template escapes it either way.
func prettyPayload(b []byte) string {
	var out bytes.Buffer
	if json.Valid(b) && json.Indent(&out, b, "", "  ") == nil {
		return out.String()
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// replay processes one event again (POST /admin/events/{id}/replay) through
// ops.ReplayEvent, the path of `referd events replay`: every effect of an event is
// keyed by the provider's ids, so replaying a processed one changes nothing.
func (c *Console) replay(w http.ResponseWriter, r *http.Request, s *session) error {
	pk, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || pk <= 0 {
		return errNotFound
	}
	// Another program's event is store.ErrNotFound: a 404 page, nothing replayed.
	if _, err := ops.ReplayEvent(r.Context(), c.DB, s.Program.PK, pk, c.resolver()); err != nil {
		return err
	}
	done(w, r, "/admin/events/"+strconv.FormatInt(pk, 10), "replayed")
	return nil
}
