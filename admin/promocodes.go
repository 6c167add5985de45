package admin

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/referd/referd/promo"
	"github.com/referd/referd/store"
)

// A customer's page lists the promotion codes they own (DESIGN §8), as GET
// /v1/promotion_codes?customer= does.
func init() {
	customerSections = append(customerSections, func(c *Console, r *http.Request, s *session, cu store.Customer) (customerSection, error) {
		codes, total, err := promo.List(r.Context(), c.DB, s.Program, cu.ID, 20, 0)
		if err != nil {
			return customerSection{}, err
		}
		sec := customerSection{Title: fmt.Sprintf("Promotion codes (%d)", total), Empty: "No promotion codes. POST /v1/promotion_codes makes one."}
		for _, pc := range codes {
			var ids []string
			for _, id := range []struct {
				provider string
				v        string
			}{{"Stripe", pc.StripeID.String}, {"Paddle", pc.PaddleID.String}, {"Chargebee", pc.ChargebeeID.String}} {
				if id.v != "" {
					ids = append(ids, id.provider+" "+id.v)
				}
			}
			sec.Rows = append(sec.Rows, []string{pc.Code, strings.Join(ids, ", "), fmt.Sprintf("%d uses", pc.Uses), pc.CreatedAt.UTC().Format("2006-01-02 15:04 UTC")})
		}
		return sec, nil
	})
}
