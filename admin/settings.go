package admin

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/referd/referd/providers"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// The settings page: every form changes the program through the same domain
// function as the API (referral.UpdateProgram as PATCH /v1/program,
// referral.PutIntegration and DeleteIntegration as /v1/integrations).
func init() {
	route("GET /admin/settings", func(c *Console) pageFunc { return c.settings })
	route("POST /admin/settings/program", func(c *Console) pageFunc { return c.saveProgram })
	route("POST /admin/settings/tracking", func(c *Console) pageFunc { return c.saveTracking })
	route("POST /admin/settings/notifications", func(c *Console) pageFunc { return c.saveNotifications })
	route("POST /admin/settings/widget-secret", func(c *Console) pageFunc { return c.rotateWidgetSecret })
	route("POST /admin/settings/rewards", func(c *Console) pageFunc { return c.saveRule })
	route("POST /admin/settings/rewards/{n}", func(c *Console) pageFunc { return c.saveRule })
	route("POST /admin/settings/rewards/{n}/delete", func(c *Console) pageFunc { return c.deleteRule })
	route("POST /admin/settings/integrations/{provider}", func(c *Console) pageFunc { return c.putIntegration })
	route("POST /admin/settings/integrations/{provider}/delete", func(c *Console) pageFunc { return c.deleteIntegration })
}

// settingsPage is what the settings page shows. Form, Errors and Which are the one
// form that was refused: what was posted, the API's messages by the form's field
// names, and which form it was ("program", "tracking", "rule", "integration:stripe").
type settingsPage struct {
	Program      store.Program
	RulesVersion string
	Rules        []ruleRow
	Edit         int // the rule being edited, or -1 (a new rule)
	RuleForm     map[string]string
	Integrations []integrationRow
	Choices      map[string][]string
	Which        string
	Form         map[string]string
	// ProgramForm and TrackingForm are those forms' values: the program's, or what
	// was posted when the form was refused.
	ProgramForm, TrackingForm map[string]string
	Errors                    map[string][]string
	// Problems are messages for no field of the form (the rules as a whole).
	Problems []string
}

type ruleRow struct {
	N    int
	Rule referral.RewardRule
}

type integrationRow struct {
	Provider  string
	Title     string
	Basic     bool // username and password, not signing secrets
	Connected bool
	View      referral.IntegrationView
	URL       string // the ingest URL to give the provider
	Updated   time.Time
}

var ruleChoices = map[string][]string{
	"recipient":   {"referrer", "referred"},
	"trigger":     {"signup", "first_purchase", "purchase", "subscription"},
	"type":        {"credit", "discount", "cash"},
	"amount_type": {"fixed", "percent"},
	"link_format": {"query", "path"},
	"attribution": {"last_click", "first_click"},
}

// settings shows the program's settings (GET /admin/settings); ?edit=N fills the
// rule form with rule N.
func (c *Console) settings(w http.ResponseWriter, r *http.Request, s *session) error {
	edit := -1
	if n, err := strconv.Atoi(r.URL.Query().Get("edit")); err == nil {
		edit = n
	}
	return c.showSettings(w, r, s, http.StatusOK, settingsPage{Edit: edit})
}

func (c *Console) showSettings(w http.ResponseWriter, r *http.Request, s *session, status int, v settingsPage) error {
	ctx := r.Context()
	p, err := store.ProgramByPK(ctx, c.DB, s.Program.PK) // fresh: a refused form changed nothing
	if err != nil {
		return err
	}
	s.Program = p
	v.Program, v.Choices, v.RulesVersion = p, ruleChoices, rulesVersion(p)
	rules, err := referral.ProgramRules(p)
	if err != nil {
		return err
	}
	for i, rule := range rules {
		v.Rules = append(v.Rules, ruleRow{N: i, Rule: rule})
	}
	if v.Edit >= len(rules) || v.Edit < -1 {
		return errNotFound
	}
	if v.RuleForm == nil {
		v.RuleForm = map[string]string{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount_type": "fixed"}
		if v.Edit >= 0 {
			v.RuleForm = ruleForm(rules[v.Edit])
		}
	}
	ints, err := referral.Integrations(ctx, c.DB, p)
	if err != nil {
		return err
	}
	have := map[string]store.Integration{}
	for _, i := range ints {
		have[i.Provider] = i
	}
	for _, name := range providers.Names() {
		prov, _ := providers.Lookup(name)
		i, ok := have[name]
		if !ok {
			i = store.Integration{Provider: name}
		}
		view := referral.IntegrationJSON(c.PublicURL, p, i)
		v.Integrations = append(v.Integrations, integrationRow{Provider: name, Title: prov.Title(),
			Basic: prov.Auth() == providers.BasicAuth, Connected: ok, View: view, URL: view.WebhookURL, Updated: i.UpdatedAt})
	}
	if v.Form == nil {
		v.Form = map[string]string{}
	}
	v.ProgramForm = map[string]string{"name": p.Name, "website_url": p.WebsiteURL, "currency": p.Currency}
	if v.Which == "program" {
		v.ProgramForm = v.Form
	}
	t := p.Tracking
	v.TrackingForm = map[string]string{"link_format": t.LinkFormat, "param": t.Param, "cookie_name": t.CookieName,
		"cookie_days": strconv.Itoa(t.CookieDays), "attribution": t.Attribution}
	if t.CookieDomain != nil {
		v.TrackingForm["cookie_domain"] = *t.CookieDomain
	}
	if t.BrowserSignups {
		v.TrackingForm["browser_signups"] = "on"
	}
	if v.Which == "tracking" {
		v.TrackingForm = v.Form
	}
	c.render(w, r, s, status, "settings", "Settings", v)
	return nil
}

// ErrorsFor is the messages of form which: none unless it is the refused one.
func (v settingsPage) ErrorsFor(which string) map[string][]string {
	if v.Which == which && v.Errors != nil {
		return v.Errors
	}
	return map[string][]string{}
}

// Anchor is the id of the refused form's part of the page.
func (v settingsPage) Anchor() string {
	if p, ok := strings.CutPrefix(v.Which, "integration:"); ok {
		return "integration-" + p
	}
	if v.Which == "rule" {
		return "rule-form"
	}
	return v.Which
}

// FormFor is what form which shows: what was posted, if it is the refused one.
func (v settingsPage) FormFor(which string) map[string]string {
	if v.Which == which {
		return v.Form
	}
	return map[string]string{}
}

// ruleForm is rule as the rule form's fields.
func ruleForm(rule referral.RewardRule) map[string]string {
	f := map[string]string{
		"name": rule.Name, "recipient": rule.Recipient, "trigger": rule.Trigger, "type": rule.Type,
		"amount": rule.Amount.String(), "amount_type": rule.AmountType, "currency": rule.Currency,
		"max_purchases": strconv.Itoa(rule.MaxPurchases), "max_months": strconv.Itoa(rule.MaxMonths),
		"hold_days": strconv.Itoa(rule.HoldDays),
	}
	if rule.MinPurchase != nil {
		f["min_purchase"] = rule.MinPurchase.String()
	}
	return f
}

// patch applies patch as PATCH /v1/program does and tells ProgramChanged. A
// validation error is returned as it is, for the caller to show by its fields.
func (c *Console) patch(r *http.Request, s *session, patch referral.ProgramPatch) error {
	p, err := referral.UpdateProgram(r.Context(), c.DB, s.Program.PK, patch)
	if err != nil {
		return err
	}
	s.Program = p
	if c.ProgramChanged != nil {
		c.ProgramChanged(p)
	}
	return nil
}

// postedFields reads the named fields of the posted form, trimmed.
func postedFields(r *http.Request, names ...string) map[string]string {
	f := map[string]string{}
	for _, n := range names {
		f[n] = strings.TrimSpace(r.PostFormValue(n))
	}
	return f
}

// refused shows the settings again with form which's fields and the API's
// messages, when err is one the form can show (formProblems); others are returned.
func (c *Console) refused(w http.ResponseWriter, r *http.Request, s *session, err error, v settingsPage) error {
	fields, status, ok := formProblems(err)
	if !ok {
		return err
	}
	if v.Errors == nil {
		v.Errors = fields
	}
	return c.showSettings(w, r, s, status, v)
}

// formProblems turns the errors the API answers 409 or 422 into messages by field
// and that status, as api/respond.go words them; ok is false for any other error.
func formProblems(err error) (fields map[string][]string, status int, ok bool) {
	var (
		verr *referral.ValidationError
		cerr *store.ConflictError
		ierr *store.InvalidError
	)
	switch {
	case errors.As(err, &verr):
		return verr.Fields, http.StatusUnprocessableEntity, true
	case errors.As(err, &cerr):
		msg := "The " + cerr.Field + " has already been taken."
		return map[string][]string{cerr.Field: {msg}}, http.StatusConflict, true
	case errors.As(err, &ierr):
		msg := "The form holds a value that cannot be stored: " + ierr.Msg + "."
		return map[string][]string{"form": {msg}}, http.StatusUnprocessableEntity, true
	}
	return nil, 0, false
}

// saveProgram changes the program's name, website and currency
// (POST /admin/settings/program).
func (c *Console) saveProgram(w http.ResponseWriter, r *http.Request, s *session) error {
	f := postedFields(r, "name", "website_url", "currency")
	err := c.patch(r, s, referral.ProgramPatch{Name: strRef(f["name"]), WebsiteURL: strRef(f["website_url"]), Currency: strRef(f["currency"])})
	if err != nil {
		return c.refused(w, r, s, err, settingsPage{Edit: -1, Which: "program", Form: f})
	}
	done(w, r, "/admin/settings", "saved")
	return nil
}

// saveTracking changes the program's tracking (POST /admin/settings/tracking). An
// empty cookie domain is none (host-only); an unchecked box is off.
func (c *Console) saveTracking(w http.ResponseWriter, r *http.Request, s *session) error {
	f := postedFields(r, "link_format", "param", "cookie_name", "cookie_days", "attribution", "cookie_domain", "browser_signups")
	t := map[string]any{
		"link_format": f["link_format"], "param": f["param"], "cookie_name": f["cookie_name"],
		"attribution": f["attribution"], "browser_signups": f["browser_signups"] != "",
	}
	if f["cookie_domain"] == "" {
		t["cookie_domain"] = nil
	} else {
		t["cookie_domain"] = f["cookie_domain"]
	}
	bad := &referral.ValidationError{}
	if days, err := strconv.Atoi(f["cookie_days"]); err != nil {
		bad.Add("tracking.cookie_days", "The tracking.cookie_days must be a whole number of days (0 for lifetime).")
	} else {
		t["cookie_days"] = days
	}
	err := bad.Err()
	if err == nil {
		raw, _ := json.Marshal(t)
		err = c.patch(r, s, referral.ProgramPatch{Tracking: raw})
	}
	if err != nil {
		return c.refused(w, r, s, err, settingsPage{Edit: -1, Which: "tracking", Form: f})
	}
	done(w, r, "/admin/settings", "saved")
	return nil
}

// saveNotifications turns the program's emails on or off
// (POST /admin/settings/notifications).
func (c *Console) saveNotifications(w http.ResponseWriter, r *http.Request, s *session) error {
	on := r.PostFormValue("reward_earned") != ""
	patch := referral.ProgramPatch{}
	patch.Notifications = &struct {
		RewardEarned *bool `json:"reward_earned"`
	}{RewardEarned: &on}
	if err := c.patch(r, s, patch); err != nil {
		return err
	}
	done(w, r, "/admin/settings", "saved")
	return nil
}

// rotateWidgetSecret makes a new widget secret (POST /admin/settings/widget-secret),
// as PATCH /v1/program {"rotate_widget_secret": true}.
func (c *Console) rotateWidgetSecret(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := c.patch(r, s, referral.ProgramPatch{RotateWidgetSecret: true}); err != nil {
		return err
	}
	done(w, r, "/admin/settings", "rotated")
	return nil
}

var ruleFields = []string{"name", "recipient", "trigger", "type", "amount", "amount_type", "currency", "min_purchase", "max_purchases", "max_months", "hold_days"}

// saveRule adds a reward rule (POST /admin/settings/rewards) or replaces rule n
// (POST /admin/settings/rewards/{n}): the program's list with the change is
// patched whole, as PATCH /v1/program {"rewards": [...]}; the API's messages about
// the rule (rewards.N.amount) are shown by the form's fields (rule.amount).
func (c *Console) saveRule(w http.ResponseWriter, r *http.Request, s *session) error {
	rules, err := referral.ProgramRules(s.Program)
	if err != nil {
		return err
	}
	if err := sameRules(r, s.Program); err != nil {
		return err
	}
	n := len(rules)
	if raw := r.PathValue("n"); raw != "" {
		if n, err = strconv.Atoi(raw); err != nil || n < 0 || n >= len(rules) {
			return errNotFound
		}
	}
	f := postedFields(r, ruleFields...)
	edit := n
	if n == len(rules) {
		edit = -1
	}
	bad := &referral.ValidationError{}
	rule := referral.RewardRule{Name: f["name"], Recipient: f["recipient"], Trigger: f["trigger"], Type: f["type"],
		Amount: json.Number(f["amount"]), AmountType: f["amount_type"], Currency: f["currency"]}
	if f["amount"] == "" {
		bad.Add("rewards.amount", "The amount field is required.")
	} else if !isNumber(f["amount"]) {
		bad.Add("rewards.amount", "The amount must be a number, such as 5 or 12.50.")
	}
	if m := f["min_purchase"]; m != "" {
		if !isNumber(m) {
			bad.Add("rewards.min_purchase", "The min_purchase must be a number, such as 20 or 19.99.")
		}
		num := json.Number(m)
		rule.MinPurchase = &num
	}
	for _, k := range []string{"max_purchases", "max_months", "hold_days"} {
		if f[k] == "" {
			continue
		}
		v, err := strconv.Atoi(f[k])
		if err != nil {
			bad.Add("rewards."+k, "The "+k+" must be a whole number.")
		}
		switch k {
		case "max_purchases":
			rule.MaxPurchases = v
		case "max_months":
			rule.MaxMonths = v
		case "hold_days":
			rule.HoldDays = v
		}
	}
	v := settingsPage{Edit: edit, Which: "rule", RuleForm: f}
	if bad.Err() != nil {
		v.Errors = ruleErrors(bad.Fields, -1, &v.Problems)
		return c.showSettings(w, r, s, http.StatusUnprocessableEntity, v)
	}
	if n == len(rules) {
		rules = append(rules, rule)
	} else {
		rules[n] = rule
	}
	raw, err := json.Marshal(rules)
	if err != nil {
		return err
	}
	if err := c.patchRules(r, s, raw); err != nil {
		if fields, _, ok := formProblems(err); ok {
			v.Errors = ruleErrors(fields, n, &v.Problems)
		}
		return c.refused(w, r, s, err, v)
	}
	done(w, r, "/admin/settings", "saved")
	return nil
}

// rulesVersion names the program's list of rules as the page shows it: the rule
// forms carry it, so a rule is not replaced or removed by its number after the list
// changed in another tab or through the API.
func rulesVersion(p store.Program) string {
	h := sha256.Sum256([]byte(p.Rewards))
	return hex.EncodeToString(h[:8])
}

// sameRules refuses a rule form made from another list of rules than the
// program's; a form without a version (an API-like client) is taken as it is.
func sameRules(r *http.Request, p store.Program) error {
	if v := r.PostFormValue("rules_version"); v != "" && v != rulesVersion(p) {
		return errRulesChanged
	}
	return nil
}

var errRulesChanged = &statusError{http.StatusConflict, "The reward rules changed after this page was shown, so nothing was changed. Reload the settings and try again."}

// patchRules patches the program's rules with raw, only if they are still the ones
// this request read (s.Program, whose version the form carried): the check is made
// again under the program's lock, where the update happens.
func (c *Console) patchRules(r *http.Request, s *session, raw json.RawMessage) error {
	read := s.Program.Rewards
	err := c.patch(r, s, referral.ProgramPatch{Rewards: raw, IfRewards: &read})
	if errors.Is(err, referral.ErrRulesChanged) {
		return errRulesChanged
	}
	return err
}

// ruleErrors maps the API's messages about rule n ("rewards.3.amount") and the
// form's own ("rewards.amount") to the rule form's fields ("rule.amount"); messages about
// the list or another rule go to problems.
func ruleErrors(fields map[string][]string, n int, problems *[]string) map[string][]string {
	out := map[string][]string{}
	prefix := "rewards." + strconv.Itoa(n) + "."
	for k, msgs := range fields {
		switch {
		case strings.HasPrefix(k, prefix):
			out["rule."+strings.TrimPrefix(k, prefix)] = msgs
		case strings.HasPrefix(k, "rewards.") && strings.Count(k, ".") == 1:
			out["rule."+strings.TrimPrefix(k, "rewards.")] = msgs
		default:
			*problems = append(*problems, msgs...)
		}
	}
	return out
}

// isNumber says whether s is a JSON number, as a rule's amounts must be.
func isNumber(s string) bool {
	var n json.Number
	return json.Unmarshal([]byte(s), &n) == nil && !strings.ContainsAny(s, "\"")
}

// deleteRule removes rule n (POST /admin/settings/rewards/{n}/delete).
func (c *Console) deleteRule(w http.ResponseWriter, r *http.Request, s *session) error {
	rules, err := referral.ProgramRules(s.Program)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n >= len(rules) {
		return errNotFound
	}
	if err := sameRules(r, s.Program); err != nil {
		return err
	}
	rules = append(rules[:n], rules[n+1:]...)
	raw, err := json.Marshal(rules)
	if err != nil {
		return err
	}
	if err := c.patchRules(r, s, raw); err != nil {
		return err
	}
	done(w, r, "/admin/settings", "deleted")
	return nil
}

// putIntegration connects or replaces the program's integration with a provider
// (POST /admin/settings/integrations/{provider}), as PUT /v1/integrations/{provider}:
// signing secrets one per line, or a username and password.
func (c *Console) putIntegration(w http.ResponseWriter, r *http.Request, s *session) error {
	provider := r.PathValue("provider")
	f := postedFields(r, "webhook_secrets", "username", "password", "customer_key_field", "api_key", "remove_api_key")
	in := referral.IntegrationInput{}
	// Stripe's API key: left empty, the stored one stays (as an API PUT without it).
	switch {
	case f["remove_api_key"] != "":
		in.APIKey = referral.Optional[string]{Set: true, Null: true}
	case f["api_key"] != "":
		in.APIKey = referral.Optional[string]{Set: true, Value: f["api_key"]}
	}
	for _, line := range strings.Split(f["webhook_secrets"], "\n") {
		if line = strings.TrimSpace(line); line != "" {
			in.WebhookSecrets = append(in.WebhookSecrets, line)
		}
	}
	if f["username"] != "" || f["password"] != "" {
		in.Username, in.Password = strRef(f["username"]), strRef(f["password"])
	}
	if f["customer_key_field"] != "" {
		in.CustomerKeyField = strRef(f["customer_key_field"])
	}
	if _, err := referral.PutIntegration(r.Context(), c.DB, s.Program, provider, in, c.SecretKey); err != nil {
		f["webhook_secrets"], f["password"], f["api_key"] = "", "", "" // secrets are not sent back to the page
		return c.refused(w, r, s, err, settingsPage{Edit: -1, Which: "integration:" + provider, Form: f})
	}
	done(w, r, "/admin/settings", "saved")
	return nil
}

// deleteIntegration disconnects a provider
// (POST /admin/settings/integrations/{provider}/delete).
func (c *Console) deleteIntegration(w http.ResponseWriter, r *http.Request, s *session) error {
	if _, err := referral.DeleteIntegration(r.Context(), c.DB, s.Program, r.PathValue("provider")); err != nil {
		return err
	}
	done(w, r, "/admin/settings", "deleted")
	return nil
}

func strRef(v string) *string { return &v }
