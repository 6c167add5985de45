package dispatch

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
	"github.com/referd/referd/webhook"
)

// WebhookEvents are the events a webhook endpoint can subscribe to. The last two
// are Partnero's names, so receivers written for it (its n8n trigger) subscribe
// unchanged: customer.rewarded comes with every reward.created, with the recipient;
// customer.credited with every manual credit or debit.
var WebhookEvents = []string{
	"customer.created", "customer.updated", "customer.deleted",
	"transaction.created", "transaction.deleted",
	"reward.created", "reward.approved", "reward.reversed",
	"customer.rewarded", "customer.credited",
}

// SecretOverlap is how long the previous secret of a rotated endpoint still signs
// deliveries, so receivers can switch to the new one without missing any.
const SecretOverlap = 24 * time.Hour

// WebhookInput is the body of POST /v1/webhooks and PUT /v1/webhooks/{key}. Absent
// or null fields are absent: on create they take their defaults (a generated key,
// active, all events), on update they stay. An empty events list means all events.
type WebhookInput struct {
	Key      *referral.Text `json:"key"`
	Name     *string        `json:"name"`
	URL      *string        `json:"url"`
	IsActive *bool          `json:"is_active"`
	Events   *[]string      `json:"events"`
	// RotateSignature (update only) makes a new signing secret; the old one keeps
	// signing too for SecretOverlap.
	RotateSignature bool `json:"rotate_signature"`
}

func newWebhookKey() string { return "wh_" + referral.RandomString(16) }

// CreateWebhook validates in and stores the program's new endpoint with a new
// signing secret. allowPrivate lets the URL name a loopback or private address
// (REFERD_ALLOW_PRIVATE_TARGETS).
func CreateWebhook(ctx context.Context, db *store.DB, p store.Program, in WebhookInput, allowPrivate bool) (store.WebhookEndpoint, error) {
	verr := &referral.ValidationError{}
	e := store.WebhookEndpoint{ProgramPK: p.PK, IsActive: true, Events: pq.StringArray{}}
	if k := in.Key.String(); k != "" {
		e.Key = checkWebhookKey(verr, k)
	} else {
		e.Key = newWebhookKey()
	}
	if in.Name != nil {
		e.Name = checkWebhookName(verr, *in.Name)
	}
	if in.URL == nil || strings.TrimSpace(*in.URL) == "" {
		verr.Add("url", "The url field is required.")
	} else {
		e.URL = checkWebhookURL(verr, *in.URL, allowPrivate)
	}
	if in.IsActive != nil {
		e.IsActive = *in.IsActive
	}
	if in.Events != nil {
		e.Events = checkWebhookEvents(verr, *in.Events)
	}
	if err := verr.Err(); err != nil {
		return store.WebhookEndpoint{}, err
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return store.WebhookEndpoint{}, err
	}
	e.Secret = secret
	e.CreatedAt = store.Now()
	e.UpdatedAt = e.CreatedAt
	if err := store.InsertWebhookEndpoint(ctx, db, &e); err != nil {
		return store.WebhookEndpoint{}, err
	}
	return e, nil
}

// Webhooks lists a page of the program's endpoints, oldest first, and their total.
func Webhooks(ctx context.Context, db *store.DB, p store.Program, limit, offset int) ([]store.WebhookEndpoint, int, error) {
	return store.ListWebhookEndpoints(ctx, db, p.PK, limit, offset)
}

// GetWebhook returns the program's endpoint with key.
func GetWebhook(ctx context.Context, q store.Querier, p store.Program, key string) (store.WebhookEndpoint, error) {
	e, err := store.GetWebhookEndpoint(ctx, q, p.PK, key)
	if store.IsNotFound(err) {
		return e, &referral.NotFoundError{What: "webhook"}
	}
	return e, err
}

// UpdateWebhook applies in to the program's endpoint key. rotated says whether a
// new secret was made (the reply shows it, once). Activating an endpoint the system
// disabled clears the reason and its failure streak.
func UpdateWebhook(ctx context.Context, db *store.DB, p store.Program, key string, in WebhookInput, allowPrivate bool) (e store.WebhookEndpoint, rotated bool, err error) {
	// The row is locked while it is read and written whole, so concurrent updates
	// (two rotations, say) apply one after the other.
	err = db.InTx(ctx, func(tx *store.Tx) error {
		e, rotated, err = updateWebhook(ctx, tx, p, key, in, allowPrivate)
		return err
	})
	return e, rotated, err
}

func updateWebhook(ctx context.Context, tx *store.Tx, p store.Program, key string, in WebhookInput, allowPrivate bool) (e store.WebhookEndpoint, rotated bool, err error) {
	e, err = store.GetWebhookEndpointForUpdate(ctx, tx, p.PK, key)
	if store.IsNotFound(err) {
		return e, false, &referral.NotFoundError{What: "webhook"}
	}
	if err != nil {
		return e, false, err
	}
	verr := &referral.ValidationError{}
	if in.Key != nil {
		if k := in.Key.String(); k == "" {
			verr.Add("key", "The key must not be empty.")
		} else {
			e.Key = checkWebhookKey(verr, k)
		}
	}
	if in.Name != nil {
		e.Name = checkWebhookName(verr, *in.Name)
	}
	if in.URL != nil {
		if strings.TrimSpace(*in.URL) == "" {
			verr.Add("url", "The url must not be empty.")
		} else {
			e.URL = checkWebhookURL(verr, *in.URL, allowPrivate)
		}
	}
	if in.Events != nil {
		e.Events = checkWebhookEvents(verr, *in.Events)
	}
	if err := verr.Err(); err != nil {
		return store.WebhookEndpoint{}, false, err
	}
	now := store.Now()
	if in.IsActive != nil {
		if *in.IsActive && !e.IsActive {
			e.DisabledReason = sql.NullString{}
			e.FailingSince = sql.NullTime{}
		}
		e.IsActive = *in.IsActive
	}
	if in.RotateSignature {
		secret, err := webhook.NewSecret()
		if err != nil {
			return store.WebhookEndpoint{}, false, err
		}
		e.PreviousSecret = sql.NullString{String: e.Secret, Valid: true}
		e.PreviousSecretUntil = sql.NullTime{Time: now.Add(SecretOverlap), Valid: true}
		e.Secret = secret
		rotated = true
	}
	e.UpdatedAt = now
	if err := store.UpdateWebhookEndpoint(ctx, tx, &e); err != nil {
		return store.WebhookEndpoint{}, false, err
	}
	return e, rotated, nil
}

// DeleteWebhook removes the program's endpoint key and returns it; its deliveries
// stay in the log.
func DeleteWebhook(ctx context.Context, db *store.DB, p store.Program, key string) (store.WebhookEndpoint, error) {
	e, err := GetWebhook(ctx, db, p, key)
	if err != nil {
		return e, err
	}
	if err := store.DeleteWebhookEndpoint(ctx, db, e.PK); err != nil {
		return store.WebhookEndpoint{}, err
	}
	return e, nil
}

// WebhookDeliveries lists a page of the deliveries to the program's endpoint key,
// newest first, and their total.
func WebhookDeliveries(ctx context.Context, db *store.DB, p store.Program, key string, limit, offset int) ([]store.WebhookDelivery, int, error) {
	e, err := GetWebhook(ctx, db, p, key)
	if err != nil {
		return nil, 0, err
	}
	return store.ListDeliveries(ctx, db, e.PK, limit, offset)
}

// RetryDelivery asks for one more attempt, now, of the delivery id to the program's
// endpoint key; the relay makes it with the same webhook-id.
func RetryDelivery(ctx context.Context, db *store.DB, p store.Program, key, id string) (store.WebhookDelivery, error) {
	e, err := GetWebhook(ctx, db, p, key)
	if err != nil {
		return store.WebhookDelivery{}, err
	}
	d, err := store.GetDelivery(ctx, db, e.PK, id)
	if store.IsNotFound(err) {
		return d, &referral.NotFoundError{What: "delivery"}
	}
	if err != nil {
		return d, err
	}
	if err := store.RequestRetry(ctx, db, d.PK, store.Now()); err != nil {
		return store.WebhookDelivery{}, err
	}
	return d, nil
}

// keyRE is the shape of an endpoint's key, the same as that of an integration's
// customer_key_field.
var keyRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func checkWebhookKey(verr *referral.ValidationError, k string) string {
	if !keyRE.MatchString(k) {
		verr.Add("key", "The key must be 1-64 letters, digits, '_', '.' or '-'.")
	}
	return k
}

func checkWebhookName(verr *referral.ValidationError, name string) string {
	s := strings.TrimSpace(name)
	switch {
	case len(s) > 255:
		verr.Add("name", "The name must not be greater than 255 characters.")
	case strings.ContainsRune(s, 0):
		verr.Add("name", "The name must not contain NUL characters.")
	}
	return s
}

func checkWebhookURL(verr *referral.ValidationError, raw string, allowPrivate bool) string {
	u := strings.TrimSpace(raw)
	if len(u) > 2048 {
		verr.Add("url", "The url must not be greater than 2048 characters.")
		return u
	}
	if _, err := webhook.CheckURL(u, allowPrivate); err != nil {
		if errors.Is(err, webhook.ErrForbiddenTarget) {
			verr.Add("url", "The url must not point to a loopback, private, link-local or metadata address.")
		} else {
			verr.Add("url", "The url must be an absolute http or https URL with a host and no user-info.")
		}
	}
	return u
}

// checkWebhookEvents returns events without repeats, each one of WebhookEvents.
func checkWebhookEvents(verr *referral.ValidationError, events []string) pq.StringArray {
	out := pq.StringArray{}
	seen := map[string]bool{}
	for _, ev := range events {
		ev = strings.TrimSpace(ev)
		known := false
		for _, w := range WebhookEvents {
			known = known || ev == w
		}
		if !known {
			verr.Add("events", "The events must be among: "+strings.Join(WebhookEvents, ", ")+".")
			return out
		}
		if !seen[ev] {
			seen[ev] = true
			out = append(out, ev)
		}
	}
	return out
}

// WebhookView is the webhook endpoint object. Signature is the signing secret,
// masked unless it is being shown once (on create and rotation).
type WebhookView struct {
	Key            string        `json:"key"`
	Name           string        `json:"name"`
	URL            string        `json:"url"`
	IsActive       bool          `json:"is_active"`
	Events         []string      `json:"events"`
	Signature      string        `json:"signature"`
	Insecure       bool          `json:"insecure"`
	DisabledReason *string       `json:"disabled_reason"`
	CreatedAt      referral.Time `json:"created_at"`
	UpdatedAt      referral.Time `json:"updated_at"`
}

// WebhookJSON is the API's view of e; showSecret shows its signing secret in full.
func WebhookJSON(e store.WebhookEndpoint, showSecret bool) WebhookView {
	v := WebhookView{
		Key: e.Key, Name: e.Name, URL: e.URL, IsActive: e.IsActive, Events: []string(e.Events),
		Signature: maskSignature(e.Secret), DisabledReason: referral.NullString(e.DisabledReason),
		CreatedAt: referral.Time(e.CreatedAt), UpdatedAt: referral.Time(e.UpdatedAt),
	}
	if v.Events == nil {
		v.Events = []string{}
	}
	if showSecret {
		v.Signature = e.Secret
	}
	if u, err := url.Parse(e.URL); err == nil {
		v.Insecure = u.Scheme == "http"
	}
	return v
}

// maskSignature shows a signing secret the way integration secrets are shown (its
// last four characters), after the whsec_ prefix that says what it is.
func maskSignature(s string) string { return "whsec_" + referral.Mask(strings.TrimPrefix(s, "whsec_")) }

// DeliveryView is one delivery in GET /v1/webhooks/{key}/deliveries. WebhookID is
// the webhook-id header of every attempt.
type DeliveryView struct {
	ID            string         `json:"id"`
	Event         string         `json:"event"`
	WebhookID     string         `json:"webhook_id"`
	Status        string         `json:"status"`
	Attempts      []AttemptView  `json:"attempts"`
	NextAttemptAt *referral.Time `json:"next_attempt_at"`
	CreatedAt     referral.Time  `json:"created_at"`
}

// AttemptView is one delivery attempt: StatusCode is null when no response came,
// Error null when there was a response.
type AttemptView struct {
	At         referral.Time `json:"at"`
	StatusCode *int          `json:"status_code"`
	DurationMS int64         `json:"duration_ms"`
	Error      *string       `json:"error"`
	Response   string        `json:"response"`
}

// DeliveryJSON is the API's view of d.
func DeliveryJSON(d store.WebhookDelivery) DeliveryView {
	v := DeliveryView{
		ID: d.ID, Event: d.Event, WebhookID: d.WebhookID, Status: d.Status, Attempts: []AttemptView{},
		NextAttemptAt: referral.NullTime(d.NextAttemptAt), CreatedAt: referral.Time(d.CreatedAt),
	}
	var as []store.Attempt
	if d.Attempts != "" {
		// The log is written by store.RecordAttempts only; a row that does not decode
		// shows no attempts rather than failing the whole list.
		_ = json.Unmarshal([]byte(d.Attempts), &as)
	}
	for _, a := range as {
		av := AttemptView{At: referral.Time(a.At), DurationMS: a.DurationMS, Response: a.Response}
		if a.StatusCode != 0 {
			code := a.StatusCode
			av.StatusCode = &code
		}
		if a.Error != "" {
			msg := a.Error
			av.Error = &msg
		}
		v.Attempts = append(v.Attempts, av)
	}
	return v
}
