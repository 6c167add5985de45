package api

import (
	"net/http"

	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

func (s *Server) integrationView(p store.Program) func(store.Integration) referral.IntegrationView {
	return func(i store.Integration) referral.IntegrationView { return referral.IntegrationJSON(s.PublicURL, p, i) }
}

func (s *Server) putIntegration(w http.ResponseWriter, r *http.Request, p store.Program) error {
	var in referral.IntegrationInput
	if err := decode(w, r, &in); err != nil {
		return err
	}
	i, err := referral.PutIntegration(r.Context(), s.DB, p, r.PathValue("provider"), in, s.SecretKey)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, s.integrationView(p)(i))
	return nil
}

func (s *Server) listIntegrations(w http.ResponseWriter, r *http.Request, p store.Program) error {
	if _, err := params(w, r); err != nil {
		return err
	}
	is, err := referral.Integrations(r.Context(), s.DB, p)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, views(is, s.integrationView(p)))
	return nil
}

func (s *Server) getIntegration(w http.ResponseWriter, r *http.Request, p store.Program) error {
	if _, err := params(w, r); err != nil {
		return err
	}
	i, err := referral.GetIntegration(r.Context(), s.DB, p, r.PathValue("provider"))
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, s.integrationView(p)(i))
	return nil
}

func (s *Server) deleteIntegration(w http.ResponseWriter, r *http.Request, p store.Program) error {
	if _, err := params(w, r); err != nil {
		return err
	}
	i, err := referral.DeleteIntegration(r.Context(), s.DB, p, r.PathValue("provider"))
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, s.integrationView(p)(i))
	return nil
}

// listProviderEvents is GET /v1/provider_events: ?provider= and ?status= filter.
func (s *Server) listProviderEvents(w http.ResponseWriter, r *http.Request, p store.Program) error {
	v, pg, err := listParams(w, r)
	if err != nil {
		return err
	}
	es, total, err := referral.ProviderEvents(r.Context(), s.DB, p, v.Get("provider"), v.Get("status"), pg.Limit, pg.offset())
	if err != nil {
		return err
	}
	s.respondList(w, r, v, views(es, referral.ProviderEventJSON), total, pg)
	return nil
}
