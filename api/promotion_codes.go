package api

import (
	"net/http"
	"strings"

	"github.com/referd/referd/promo"
	"github.com/referd/referd/store"
)

func (s *Server) createPromotionCode(w http.ResponseWriter, r *http.Request, p store.Program) error {
	var in promo.Input
	if err := decode(w, r, &in); err != nil {
		return err
	}
	pc, err := promo.Create(r.Context(), s.DB, p, in, &promo.Stripe{DB: s.DB, Key: s.SecretKey, Client: s.Stripe})
	if err != nil {
		return err
	}
	respond(w, http.StatusCreated, promo.JSON(pc))
	return nil
}

// listPromotionCodes is GET /v1/promotion_codes: ?customer= (an id or key).
func (s *Server) listPromotionCodes(w http.ResponseWriter, r *http.Request, p store.Program) error {
	v, pg, err := listParams(w, r)
	if err != nil {
		return err
	}
	pcs, total, err := promo.List(r.Context(), s.DB, p, strings.TrimSpace(v.Get("customer")), pg.Limit, pg.offset())
	if err != nil {
		return err
	}
	s.respondList(w, r, v, views(pcs, promo.JSON), total, pg)
	return nil
}

func (s *Server) getPromotionCode(w http.ResponseWriter, r *http.Request, p store.Program) error {
	if _, err := params(w, r); err != nil {
		return err
	}
	pc, err := promo.Get(r.Context(), s.DB, p, r.PathValue("code"))
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, promo.JSON(pc))
	return nil
}

func (s *Server) deletePromotionCode(w http.ResponseWriter, r *http.Request, p store.Program) error {
	if _, err := params(w, r); err != nil {
		return err
	}
	pc, err := promo.Delete(r.Context(), s.DB, p, r.PathValue("code"))
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, promo.JSON(pc))
	return nil
}
