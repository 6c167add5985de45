package api

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

func (s *Server) createCustomer(w http.ResponseWriter, r *http.Request, p store.Program) error {
	var in referral.CustomerInput
	if err := decode(w, r, &in); err != nil {
		return err
	}
	c, err := referral.CreateCustomer(r.Context(), s.DB, p, in)
	if err != nil {
		return err
	}
	respond(w, http.StatusCreated, referral.CustomerJSON(p, c))
	return nil
}

// inviteView is the answer of POST /v1/customers:invite: the customer object with
// what became of the invitation.
type inviteView struct {
	referral.CustomerView
	Invite struct {
		Status string `json:"status"`
	} `json:"invite"`
}

// inviteCustomer is POST /v1/customers:invite: 201 when it created the customer, 200
// when the program had one with that email.
func (s *Server) inviteCustomer(w http.ResponseWriter, r *http.Request, p store.Program) error {
	var in referral.InviteInput
	if err := decode(w, r, &in); err != nil {
		return err
	}
	if !s.Email {
		return referral.Invalid("email", "Email is not configured on this server, so invitations cannot be sent: set REFERD_SMTP_URL (and REFERD_MAIL_FROM) and restart referd.")
	}
	inv, err := referral.InviteCustomer(r.Context(), s.DB, p, in)
	if err != nil {
		return err
	}
	v := inviteView{CustomerView: referral.CustomerJSON(p, inv.Customer)}
	v.Invite.Status = "queued"
	status := http.StatusOK
	if inv.Created {
		status = http.StatusCreated
	}
	respond(w, status, v)
	return nil
}

func (s *Server) getCustomer(w http.ResponseWriter, r *http.Request, p store.Program) error {
	if _, err := params(w, r); err != nil {
		return err
	}
	c, err := referral.GetCustomer(r.Context(), s.DB, p, r.PathValue("id"))
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, referral.CustomerJSON(p, c))
	return nil
}

func (s *Server) updateCustomer(w http.ResponseWriter, r *http.Request, p store.Program) error {
	var u referral.CustomerUpdate
	if err := decode(w, r, &u); err != nil {
		return err
	}
	c, err := referral.UpdateCustomer(r.Context(), s.DB, p, r.PathValue("id"), u)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, referral.CustomerJSON(p, c))
	return nil
}

// updateCustomerSDK is PUT /v1/customers {"id" or "key": ..., "update": {...}}, the
// form Partnero's SDKs send.
func (s *Server) updateCustomerSDK(w http.ResponseWriter, r *http.Request, p store.Program) error {
	var body struct {
		ID     *referral.Text          `json:"id"`
		Key    *referral.Text          `json:"key"`
		Update referral.CustomerUpdate `json:"update"`
	}
	if err := decode(w, r, &body); err != nil {
		return err
	}
	target := ""
	switch {
	case body.ID != nil && strings.TrimSpace(string(*body.ID)) != "":
		target = strings.TrimSpace(string(*body.ID))
	case body.Key != nil && strings.TrimSpace(string(*body.Key)) != "":
		target = strings.TrimSpace(string(*body.Key))
	default:
		return referral.Invalid("id", "The id (or key) of the customer to update is required.")
	}
	c, err := referral.UpdateCustomer(r.Context(), s.DB, p, target, body.Update)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, referral.CustomerJSON(p, c))
	return nil
}

func (s *Server) deleteCustomer(w http.ResponseWriter, r *http.Request, p store.Program) error {
	if _, err := params(w, r); err != nil {
		return err
	}
	c, err := referral.DeleteCustomer(r.Context(), s.DB, p, r.PathValue("id"))
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, referral.CustomerJSON(p, c))
	return nil
}

// listCustomers is GET /v1/customers: refer_status=referred|non_referred, email=,
// status=active|deleted|all (default active).
func (s *Server) listCustomers(w http.ResponseWriter, r *http.Request, p store.Program) error {
	v, pg, f, err := s.customerFilter(w, r, p)
	if err != nil {
		return err
	}
	return s.writeCustomers(w, r, p, v, pg, f)
}

// searchCustomers is GET /v1/customers:search: query= over id, key, email and name;
// exact id=, key=, email=.
func (s *Server) searchCustomers(w http.ResponseWriter, r *http.Request, p store.Program) error {
	v, pg, f, err := s.customerFilter(w, r, p)
	if err != nil {
		return err
	}
	f.Query = strings.TrimSpace(v.Get("query"))
	if f.Query == "" {
		f.Query = strings.TrimSpace(v.Get("q"))
	}
	f.ID = strings.TrimSpace(v.Get("id"))
	f.Key = strings.TrimSpace(v.Get("key"))
	return s.writeCustomers(w, r, p, v, pg, f)
}

func (s *Server) customerFilter(w http.ResponseWriter, r *http.Request, p store.Program) (url.Values, page, store.CustomerFilter, error) {
	v, pg, err := listParams(w, r)
	if err != nil {
		return nil, page{}, store.CustomerFilter{}, err
	}
	f := store.CustomerFilter{ProgramPK: p.PK, Email: strings.TrimSpace(v.Get("email")), Status: "active", Limit: pg.Limit, Offset: pg.offset()}
	verr := &referral.ValidationError{}
	switch rs := v.Get("refer_status"); rs {
	case "":
	case "referred", "non_referred":
		referred := rs == "referred"
		f.Referred = &referred
	default:
		verr.Add("refer_status", "The refer_status must be one of: referred, non_referred.")
	}
	switch st := v.Get("status"); st {
	case "", "active":
	case "deleted":
		f.Status = st
	case "all":
		f.Status = ""
	default:
		verr.Add("status", "The status must be one of: active, deleted, all.")
	}
	return v, pg, f, verr.Err()
}

func (s *Server) writeCustomers(w http.ResponseWriter, r *http.Request, p store.Program, v url.Values, pg page, f store.CustomerFilter) error {
	cs, total, err := referral.ListCustomers(r.Context(), s.DB, f)
	if err != nil {
		return err
	}
	s.respondList(w, r, v, customerViews(p, cs), total, pg)
	return nil
}

func customerViews(p store.Program, cs []store.Customer) []referral.CustomerView {
	return views(cs, func(c store.Customer) referral.CustomerView { return referral.CustomerJSON(p, c) })
}

func (s *Server) customerReferrals(w http.ResponseWriter, r *http.Request, p store.Program) error {
	v, pg, err := listParams(w, r)
	if err != nil {
		return err
	}
	cs, total, err := referral.Referrals(r.Context(), s.DB, p, r.PathValue("id"), pg.Limit, pg.offset())
	if err != nil {
		return err
	}
	s.respondList(w, r, v, customerViews(p, cs), total, pg)
	return nil
}

func (s *Server) customerLinks(w http.ResponseWriter, r *http.Request, p store.Program) error {
	if _, err := params(w, r); err != nil {
		return err
	}
	ls, err := referral.Links(r.Context(), s.DB, p, r.PathValue("id"))
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, views(ls, func(l store.Link) referral.LinkView { return referral.LinkJSON(p, l) }))
	return nil
}

func (s *Server) createLink(w http.ResponseWriter, r *http.Request, p store.Program) error {
	var in referral.LinkInput
	if err := decode(w, r, &in); err != nil {
		return err
	}
	l, err := referral.CreateLink(r.Context(), s.DB, p, in)
	if err != nil {
		return err
	}
	respond(w, http.StatusCreated, referral.LinkJSON(p, l))
	return nil
}
