package api

import (
	"net/http"

	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

func (s *Server) getProgram(w http.ResponseWriter, r *http.Request, p store.Program) error {
	if _, err := params(w, r); err != nil {
		return err
	}
	p, err := store.ProgramByID(r.Context(), s.DB, p.ID) // fresh, not the cached copy
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, referral.ProgramJSON(p))
	return nil
}

func (s *Server) patchProgram(w http.ResponseWriter, r *http.Request, p store.Program) error {
	var patch referral.ProgramPatch
	if err := decode(w, r, &patch); err != nil {
		return err
	}
	p, err := referral.UpdateProgram(r.Context(), s.DB, p.PK, patch)
	if err != nil {
		return err
	}
	s.RefreshProgram(p)
	respond(w, http.StatusOK, referral.ProgramJSON(p))
	return nil
}
