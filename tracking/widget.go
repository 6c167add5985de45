package tracking

import (
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/referd/referd/ledger"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// WidgetToken is the token that lets the referral widget show customerKey's data: the
// lower-case hex HMAC-SHA256 of the key, keyed by the program's widget_secret string
// as the API shows it (its UTF-8 bytes). The business's backend computes it.
func WidgetToken(widgetSecret, customerKey string) string {
	m := hmac.New(sha256.New, []byte(widgetSecret))
	m.Write([]byte(customerKey))
	return hex.EncodeToString(m.Sum(nil))
}

// widgetView is what the referral widget shows: the customer's link, where to share
// it, and their counts.
type widgetView struct {
	// Invite says that the widget may show its invite form: email is configured.
	Invite       bool              `json:"invite"`
	Customer     widgetCustomer    `json:"customer"`
	ReferralLink string            `json:"referral_link"`
	SharingLinks map[string]string `json:"sharing_links"`
	Stats        widgetStats       `json:"stats"`
}

type widgetCustomer struct {
	Key     string  `json:"key"`
	Name    *string `json:"name"`
	Surname *string `json:"surname"`
}

type widgetStats struct {
	Clicks              int64              `json:"clicks"`
	SuccessfulReferrals int                `json:"successful_referrals"`
	PendingReferrals    int                `json:"pending_referrals"`
	TotalRewards        []ledger.TotalView `json:"total_rewards"`
}

// widgetCustomer answers GET /widget/customer?program=&customer_key=&token= (CORS
// open): the data of the referral widget. The token is checked before anything is
// looked up, so a wrong one learns nothing (401, whether or not the customer
// exists); with the right one, an unknown or deleted customer is a 404. The key is a
// customer's key (not its id).
func (h *Handler) widgetCustomer(w http.ResponseWriter, r *http.Request) {
	allowAnyOrigin(w)
	w.Header().Set("Cache-Control", "no-store")
	q := r.URL.Query()
	p, err := h.program(r.Context(), q.Get("program"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	key := q.Get("customer_key")
	if !validToken(p, key, q.Get("token")) {
		h.fail(w, r, errBadToken)
		return
	}
	c, stats, err := ledger.CustomerStats(r.Context(), h.db, p, key)
	if err == nil && (c.Status != "active" || c.Key != key) {
		err = &referral.NotFoundError{What: "customer"}
	}
	var nf *referral.NotFoundError
	if store.IsNotFound(err) || errors.As(err, &nf) {
		h.fail(w, r, &referral.NotFoundError{What: "customer"})
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sv := ledger.StatsJSON(p, c, stats)
	v := widgetView{
		Invite:       h.Email,
		Customer:     widgetCustomer{Key: c.Key, Name: nullable(c.Name), Surname: nullable(c.Surname)},
		ReferralLink: referral.LinkURL(p, c.Key, ""),
		SharingLinks: sv.SharingLinks,
		Stats: widgetStats{Clicks: sv.Clicks, SuccessfulReferrals: sv.SuccessfulReferrals,
			PendingReferrals: sv.PendingReferrals, TotalRewards: sv.TotalRewards},
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": v, "status": 1})
}

func nullable(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	return &s.String
}

// errBadToken is the answer to a widget request whose token is not its customer's.
var errBadToken = status(http.StatusUnauthorized, "The widget token does not match this customer: compute it with the program's widget_secret.")

func validToken(p store.Program, key, token string) bool {
	return key != "" && token != "" && hmac.Equal([]byte(token), []byte(WidgetToken(p.WidgetSecret, key)))
}

// inviteBody is POST /widget/invite's body.
type inviteBody struct {
	Program     string   `json:"program"`
	CustomerKey string   `json:"customer_key"`
	Token       string   `json:"token"`
	Emails      []string `json:"emails"`
	Message     string   `json:"message"`
}

// maxInviteBody bounds POST /widget/invite's body.
const maxInviteBody = 16 << 10

// widgetInvite answers POST /widget/invite (CORS open, any Content-Type): the
// widget's customer invites friends by email (referral.InviteFriends). 202 when the
// invitations are queued; 401 for a token that is not the customer's; 422 for an
// invalid address (named), more than 10, or email not configured; 429 past 50 a day.
// A request that fails queues nothing.
func (h *Handler) widgetInvite(w http.ResponseWriter, r *http.Request) {
	allowAnyOrigin(w)
	w.Header().Set("Cache-Control", "no-store")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInviteBody))
	var in inviteBody
	if err == nil {
		err = json.Unmarshal(body, &in)
	}
	if err != nil {
		h.fail(w, r, status(http.StatusBadRequest, "The body must be a JSON object of at most 16 KiB: {\"program\", \"customer_key\", \"token\", \"emails\": [...]}."))
		return
	}
	p, err := h.program(r.Context(), in.Program)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !validToken(p, in.CustomerKey, in.Token) {
		h.fail(w, r, errBadToken)
		return
	}
	if !h.Email {
		h.fail(w, r, referral.Invalid("emails", "Email is not configured on this referd: set REFERD_SMTP_URL and REFERD_MAIL_FROM to send invitations."))
		return
	}
	_, err = referral.InviteFriends(r.Context(), h.db, p, referral.WidgetInvite{CustomerKey: in.CustomerKey, Emails: in.Emails, Message: in.Message}, time.Now())
	if errors.Is(err, referral.ErrTooManyInvitations) {
		h.fail(w, r, status(http.StatusTooManyRequests, "Too many invitations: at most 50 a day per customer."))
		return
	}
	if store.IsNotFound(err) {
		err = &referral.NotFoundError{What: "customer"}
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
