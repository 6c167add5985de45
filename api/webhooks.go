package api

import (
	"net/http"

	"github.com/referd/referd/dispatch"
	"github.com/referd/referd/store"
)

// webhookView shows an endpoint with its signing secret masked.
func webhookView(e store.WebhookEndpoint) dispatch.WebhookView { return dispatch.WebhookJSON(e, false) }

// createWebhook is POST /v1/webhooks: the reply shows the new signing secret, once.
func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request, p store.Program) error {
	var in dispatch.WebhookInput
	if err := decode(w, r, &in); err != nil {
		return err
	}
	e, err := dispatch.CreateWebhook(r.Context(), s.DB, p, in, s.AllowPrivateTargets)
	if err != nil {
		return err
	}
	respond(w, http.StatusCreated, dispatch.WebhookJSON(e, true))
	return nil
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, p store.Program) error {
	v, pg, err := listParams(w, r)
	if err != nil {
		return err
	}
	es, total, err := dispatch.Webhooks(r.Context(), s.DB, p, pg.Limit, pg.offset())
	if err != nil {
		return err
	}
	s.respondList(w, r, v, views(es, webhookView), total, pg)
	return nil
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request, p store.Program) error {
	if _, err := params(w, r); err != nil {
		return err
	}
	e, err := dispatch.GetWebhook(r.Context(), s.DB, p, r.PathValue("key"))
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, webhookView(e))
	return nil
}

// updateWebhook is PUT /v1/webhooks/{key}: a partial update; with
// "rotate_signature": true the reply shows the new signing secret, once.
func (s *Server) updateWebhook(w http.ResponseWriter, r *http.Request, p store.Program) error {
	var in dispatch.WebhookInput
	if err := decode(w, r, &in); err != nil {
		return err
	}
	e, rotated, err := dispatch.UpdateWebhook(r.Context(), s.DB, p, r.PathValue("key"), in, s.AllowPrivateTargets)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, dispatch.WebhookJSON(e, rotated))
	return nil
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request, p store.Program) error {
	if _, err := params(w, r); err != nil {
		return err
	}
	e, err := dispatch.DeleteWebhook(r.Context(), s.DB, p, r.PathValue("key"))
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, webhookView(e))
	return nil
}

// listDeliveries is GET /v1/webhooks/{key}/deliveries, newest first.
func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request, p store.Program) error {
	v, pg, err := listParams(w, r)
	if err != nil {
		return err
	}
	ds, total, err := dispatch.WebhookDeliveries(r.Context(), s.DB, p, r.PathValue("key"), pg.Limit, pg.offset())
	if err != nil {
		return err
	}
	s.respondList(w, r, v, views(ds, dispatch.DeliveryJSON), total, pg)
	return nil
}

// retryDelivery is POST /v1/webhooks/{key}/deliveries/{id}/retry: the relay makes
// one more attempt soon, with the same webhook-id.
func (s *Server) retryDelivery(w http.ResponseWriter, r *http.Request, p store.Program) error {
	if _, err := params(w, r); err != nil {
		return err
	}
	d, err := dispatch.RetryDelivery(r.Context(), s.DB, p, r.PathValue("key"), r.PathValue("id"))
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, dispatch.DeliveryJSON(d))
	return nil
}
