package admin

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/referd/referd/dispatch"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// The webhooks pages: the program's endpoints and each one's delivery log, changed
// through the same dispatch functions as /v1/webhooks.
func init() {
	route("GET /admin/webhooks", func(c *Console) pageFunc { return c.webhooks })
	route("POST /admin/webhooks", func(c *Console) pageFunc { return c.createWebhook })
	route("GET /admin/webhooks/{key}", func(c *Console) pageFunc { return c.webhook })
	route("POST /admin/webhooks/{key}", func(c *Console) pageFunc { return c.updateWebhook })
	route("POST /admin/webhooks/{key}/delete", func(c *Console) pageFunc { return c.deleteWebhook })
	route("POST /admin/webhooks/{key}/rotate", func(c *Console) pageFunc { return c.rotateWebhook })
	route("POST /admin/webhooks/{key}/deliveries/{id}/retry", func(c *Console) pageFunc { return c.retryDelivery })
}

// webhooksPage is the list of endpoints with the form to add one; Form and Errors
// are the refused form and the API's messages by its fields.
type webhooksPage struct {
	Endpoints []endpointRow
	Pager     pager
	Events    []string
	Form      webhookForm
	Errors    map[string][]string
}

// endpointRow is an endpoint as the API shows it (the secret masked), with the time
// it was made.
type endpointRow struct {
	dispatch.WebhookView
	Created time.Time
}

func endpointOf(e store.WebhookEndpoint) endpointRow {
	return endpointRow{WebhookView: dispatch.WebhookJSON(e, false), Created: e.CreatedAt}
}

// deliveryRow is a delivery with its attempts, oldest first.
type deliveryRow struct {
	store.WebhookDelivery
	Tries []store.Attempt
}

// excerptLen bounds the response body shown of an attempt.
const excerptLen = 300

func deliveryOf(d store.WebhookDelivery) deliveryRow {
	row := deliveryRow{WebhookDelivery: d}
	// The log is written by store.RecordAttempts only; one that does not decode
	// shows no attempts, as in the API.
	_ = json.Unmarshal([]byte(d.Attempts), &row.Tries)
	for i, a := range row.Tries {
		if len(a.Response) > excerptLen {
			cut := excerptLen
			for cut > 0 && !utf8.RuneStart(a.Response[cut]) {
				cut--
			}
			row.Tries[i].Response = a.Response[:cut] + "…"
		}
	}
	return row
}

// webhookForm is the create and edit form's values.
type webhookForm struct {
	Name, URL, Key string
	Events         []string
	Active         bool
}

// Has says whether the form subscribes to event.
func (f webhookForm) Has(event string) bool { return slices.Contains(f.Events, event) }

// webhookPage is one endpoint with its delivery log. Secret is its signing secret
// in full, shown once: just after it was made.
type webhookPage struct {
	Endpoint   endpointRow
	Secret     string
	Deliveries []deliveryRow
	Pager      pager
	Events     []string
	Form       webhookForm
	Errors     map[string][]string
}

// webhooks lists the program's endpoints, a page at a time (GET /admin/webhooks).
func (c *Console) webhooks(w http.ResponseWriter, r *http.Request, s *session) error {
	return c.showWebhooks(w, r, s, http.StatusOK, webhookForm{Active: true}, nil)
}

func (c *Console) showWebhooks(w http.ResponseWriter, r *http.Request, s *session, status int, form webhookForm, errs map[string][]string) error {
	page, offset := pageOf(r)
	list, total, err := dispatch.Webhooks(r.Context(), c.DB, s.Program, pageSize, offset)
	if err != nil {
		return err
	}
	v := webhooksPage{Pager: newPager(page, total, "/admin/webhooks"), Events: dispatch.WebhookEvents, Form: form, Errors: errs}
	for _, e := range list {
		v.Endpoints = append(v.Endpoints, endpointOf(e))
	}
	if v.Errors == nil {
		v.Errors = map[string][]string{}
	}
	c.render(w, r, s, status, "webhooks", "Webhooks", v)
	return nil
}

// webhookFormOf reads the create or edit form. No event checked is every event, as
// an empty events list in the API.
func webhookFormOf(r *http.Request) webhookForm {
	f := webhookForm{Name: strings.TrimSpace(r.PostFormValue("name")), URL: strings.TrimSpace(r.PostFormValue("url")),
		Key: strings.TrimSpace(r.PostFormValue("key")), Active: r.PostFormValue("is_active") != ""}
	f.Events = r.PostForm["events"]
	if f.Events == nil {
		f.Events = []string{}
	}
	return f
}

// createWebhook adds an endpoint (POST /admin/webhooks) through
// dispatch.CreateWebhook, as POST /v1/webhooks, and shows its page with the
// signing secret, this once.
func (c *Console) createWebhook(w http.ResponseWriter, r *http.Request, s *session) error {
	f := webhookFormOf(r)
	in := dispatch.WebhookInput{Name: &f.Name, URL: &f.URL, IsActive: &f.Active, Events: &f.Events}
	if f.Key != "" {
		k := referral.Text(f.Key)
		in.Key = &k
	}
	e, err := dispatch.CreateWebhook(r.Context(), c.DB, s.Program, in, c.AllowPrivateTargets)
	if fields, status, ok := formProblems(err); ok {
		return c.showWebhooks(w, r, s, status, f, fields)
	}
	if err != nil {
		return err
	}
	return c.showSecretOnce(w, r, s, e, "created")
}

// showSecretOnce redirects to the endpoint's page, which shows its new signing secret
// once: the secret waits in the session (store.SetAdminFlash), so reloading that page
// neither shows it again nor posts the form again.
func (c *Console) showSecretOnce(w http.ResponseWriter, r *http.Request, s *session, e store.WebhookEndpoint, notice string) error {
	if err := store.SetAdminFlash(r.Context(), c.DB, s.idHash, secretFlash(e.Key, e.Secret)); err != nil {
		return err
	}
	done(w, r, "/admin/webhooks/"+url.PathEscape(e.Key), notice)
	return nil
}

// secretFlash is the flash that shows endpoint key's secret.
func secretFlash(key, secret string) string { return "webhook-secret " + key + " " + secret }

// webhook shows one endpoint and its deliveries, newest first, a page at a time
// (GET /admin/webhooks/{key}).
func (c *Console) webhook(w http.ResponseWriter, r *http.Request, s *session) error {
	e, err := dispatch.GetWebhook(r.Context(), c.DB, s.Program, r.PathValue("key"))
	if err != nil {
		return err
	}
	flash, err := store.TakeAdminFlash(r.Context(), c.DB, s.idHash)
	if err != nil {
		return err
	}
	secret := ""
	if rest, ok := strings.CutPrefix(flash, secretFlash(e.Key, "")); ok && rest == e.Secret && rest != "" {
		secret = rest
	}
	return c.showWebhook(w, r, s, http.StatusOK, e, secret, nil, nil)
}

func (c *Console) showWebhook(w http.ResponseWriter, r *http.Request, s *session, status int, e store.WebhookEndpoint, secret string, form *webhookForm, errs map[string][]string) error {
	page, offset := pageOf(r)
	ds, total, err := dispatch.WebhookDeliveries(r.Context(), c.DB, s.Program, e.Key, pageSize, offset)
	if err != nil {
		return err
	}
	v := webhookPage{Endpoint: endpointOf(e), Secret: secret, Events: dispatch.WebhookEvents, Errors: errs,
		Pager: newPager(page, total, "/admin/webhooks/"+url.PathEscape(e.Key))}
	for _, d := range ds {
		v.Deliveries = append(v.Deliveries, deliveryOf(d))
	}
	if form != nil {
		v.Form = *form
	} else {
		v.Form = webhookForm{Name: e.Name, URL: e.URL, Key: e.Key, Events: e.Events, Active: e.IsActive}
	}
	if v.Errors == nil {
		v.Errors = map[string][]string{}
	}
	title := e.Name
	if title == "" {
		title = e.Key
	}
	c.render(w, r, s, status, "webhook", title, v)
	return nil
}

// updateWebhook changes an endpoint's name, URL, events and whether it is active
// (POST /admin/webhooks/{key}) through dispatch.UpdateWebhook, as
// PUT /v1/webhooks/{key}.
func (c *Console) updateWebhook(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx, key := r.Context(), r.PathValue("key")
	f := webhookFormOf(r)
	e, _, err := dispatch.UpdateWebhook(ctx, c.DB, s.Program, key,
		dispatch.WebhookInput{Name: &f.Name, URL: &f.URL, IsActive: &f.Active, Events: &f.Events}, c.AllowPrivateTargets)
	if fields, status, ok := formProblems(err); ok {
		if e, err = dispatch.GetWebhook(ctx, c.DB, s.Program, key); err != nil {
			return err
		}
		return c.showWebhook(w, r, s, status, e, "", &f, fields)
	}
	if err != nil {
		return err
	}
	done(w, r, "/admin/webhooks/"+url.PathEscape(e.Key), "saved")
	return nil
}

// deleteWebhook removes an endpoint (POST /admin/webhooks/{key}/delete), as
// DELETE /v1/webhooks/{key}.
func (c *Console) deleteWebhook(w http.ResponseWriter, r *http.Request, s *session) error {
	if _, err := dispatch.DeleteWebhook(r.Context(), c.DB, s.Program, r.PathValue("key")); err != nil {
		return err
	}
	done(w, r, "/admin/webhooks", "deleted")
	return nil
}

// rotateWebhook makes a new signing secret (POST /admin/webhooks/{key}/rotate), as
// PUT /v1/webhooks/{key} {"rotate_signature": true}: the old one keeps signing for
// dispatch.SecretOverlap. The new one is shown this once.
func (c *Console) rotateWebhook(w http.ResponseWriter, r *http.Request, s *session) error {
	e, _, err := dispatch.UpdateWebhook(r.Context(), c.DB, s.Program, r.PathValue("key"),
		dispatch.WebhookInput{RotateSignature: true}, c.AllowPrivateTargets)
	if err != nil {
		return err
	}
	return c.showSecretOnce(w, r, s, e, "rotated")
}

// retryDelivery asks for one more attempt of a delivery now
// (POST /admin/webhooks/{key}/deliveries/{id}/retry), as the API's retry.
func (c *Console) retryDelivery(w http.ResponseWriter, r *http.Request, s *session) error {
	key := r.PathValue("key")
	if _, err := dispatch.RetryDelivery(r.Context(), c.DB, s.Program, key, r.PathValue("id")); err != nil {
		return err
	}
	target := "/admin/webhooks/" + url.PathEscape(key)
	if p := r.PostFormValue("page"); p != "" && p != "1" && len(p) < 8 {
		target += "?page=" + url.QueryEscape(p)
	}
	done(w, r, target, "retried")
	return nil
}
