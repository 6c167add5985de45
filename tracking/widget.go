package tracking

import (
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/http"

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
	key, token := q.Get("customer_key"), q.Get("token")
	if key == "" || token == "" || !hmac.Equal([]byte(token), []byte(WidgetToken(p.WidgetSecret, key))) {
		h.fail(w, r, status(http.StatusUnauthorized, "The widget token does not match this customer: compute it with the program's widget_secret."))
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
