package referral

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/referd/referd/money"
	"github.com/referd/referd/rewards"
	"github.com/referd/referd/store"
)

// DefaultTracking is a new program's tracking: ?ref=KEY links, the partnero_referral
// cookie for 30 days, last click wins, host-only cookie, browser sign-ups on.
func DefaultTracking() store.Tracking {
	return store.Tracking{
		LinkFormat:  "query",
		Param:       "ref",
		CookieName:  "partnero_referral",
		CookieDays:  30,
		Attribution: "last_click",
		// On, as in Partnero, where po('createCustomer') needs no setting.
		BrowserSignups: true,
	}
}

// CreateProgram creates a program with default tracking, no reward rules and the
// program's first API key, which is returned (and never again).
func CreateProgram(ctx context.Context, db *store.DB, name, website string) (store.Program, string, error) {
	p := store.Program{ID: newProgramID(), Currency: "usd", Tracking: DefaultTracking(), Rewards: "[]"}
	verr := &ValidationError{}
	p.Name = checkName(verr, "name", name)
	p.WebsiteURL = checkWebsite(verr, "website_url", website)
	if err := verr.Err(); err != nil {
		return store.Program{}, "", err
	}
	key, hash, prefix := NewAPIKey()
	p, err := store.CreateProgram(ctx, db, p, hash, prefix)
	if err != nil {
		return store.Program{}, "", err
	}
	return p, key, nil
}

// CreateAPIKey adds an API key to the program with public id programID.
func CreateAPIKey(ctx context.Context, db *store.DB, programID string) (string, error) {
	key, hash, prefix := NewAPIKey()
	if err := store.CreateAPIKey(ctx, db, programID, hash, prefix); err != nil {
		if store.IsNotFound(err) {
			return "", &NotFoundError{What: "program " + programID}
		}
		return "", err
	}
	return key, nil
}

// ProgramPatch is the body of PATCH /v1/program: absent fields stay as they are;
// tracking is merged field by field; rewards, when present, replace the list.
type ProgramPatch struct {
	Name       *string         `json:"name"`
	WebsiteURL *string         `json:"website_url"`
	Currency   *string         `json:"currency"`
	Tracking   json.RawMessage `json:"tracking"`
	Rewards    json.RawMessage `json:"rewards"`
	// RotateWidgetSecret makes a new widget_secret: tokens made with the old one stop
	// working at once.
	RotateWidgetSecret bool `json:"rotate_widget_secret"`
	// Notifications is merged field by field.
	Notifications *struct {
		RewardEarned *bool `json:"reward_earned"`
	} `json:"notifications"`
	// IfRewards, when set, applies the patch only if the program's reward rules are
	// still this stored text, checked under the program's lock (ErrRulesChanged
	// otherwise): a list edited by position (the console's rule forms) is not
	// replaced when it changed meanwhile.
	IfRewards *string `json:"-"`
}

// ErrRulesChanged says a patch's IfRewards no longer matches the program's rules.
var ErrRulesChanged = errors.New("the reward rules changed meanwhile")

// UpdateProgram applies patch to the program with primary key pk and stores it; the
// program is locked while it changes, so concurrent patches all take effect.
func UpdateProgram(ctx context.Context, db *store.DB, pk int64, patch ProgramPatch) (store.Program, error) {
	var out store.Program
	err := db.InTx(ctx, func(tx *store.Tx) error {
		p, err := store.LockProgram(ctx, tx, pk)
		if err != nil {
			return err
		}
		if patch.IfRewards != nil && *patch.IfRewards != p.Rewards {
			return ErrRulesChanged
		}
		if p, err = applyPatch(p, patch); err != nil {
			return err
		}
		out, err = store.UpdateProgram(ctx, tx, p)
		return err
	})
	return out, err
}

func applyPatch(p store.Program, patch ProgramPatch) (store.Program, error) {
	verr := &ValidationError{}
	if patch.RotateWidgetSecret {
		p.WidgetSecret = NewWidgetSecret()
	}
	if patch.Name != nil {
		p.Name = checkName(verr, "name", *patch.Name)
	}
	if patch.WebsiteURL != nil {
		p.WebsiteURL = checkWebsite(verr, "website_url", *patch.WebsiteURL)
	}
	if patch.Currency != nil {
		if _, err := currencyScale(*patch.Currency); err != nil {
			verr.Add("currency", "The currency must be an ISO 4217 currency code.")
		}
		p.Currency = strings.ToLower(*patch.Currency)
	}
	if isPresent(patch.Tracking) {
		p.Tracking = mergeTracking(verr, p.Tracking, patch.Tracking)
	}
	if isPresent(patch.Rewards) {
		p.Rewards = string(checkRewards(verr, p.Currency, patch.Rewards))
	}
	if n := patch.Notifications; n != nil && n.RewardEarned != nil {
		p.Notifications.RewardEarned = *n.RewardEarned
	}
	return p, verr.Err()
}

func isPresent(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

func checkName(verr *ValidationError, field, name string) string {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		verr.Add(field, "The "+field+" field is required.")
	case len(name) > 255:
		verr.Add(field, "The "+field+" must not be greater than 255 characters.")
	}
	return name
}

func checkWebsite(verr *ValidationError, field, raw string) string {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(raw) > 2048 {
		verr.Add(field, "The "+field+" must be an absolute http or https URL.")
	}
	return raw
}

var (
	paramRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	cookieRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	domainRE = regexp.MustCompile(`^\.?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// mergeTracking overlays the fields present in raw on t and validates the result.
func mergeTracking(verr *ValidationError, t store.Tracking, raw json.RawMessage) store.Tracking {
	var patch struct {
		LinkFormat     *string         `json:"link_format"`
		Param          *string         `json:"param"`
		CookieName     *string         `json:"cookie_name"`
		CookieDays     *int            `json:"cookie_days"`
		Attribution    *string         `json:"attribution"`
		CookieDomain   json.RawMessage `json:"cookie_domain"`
		BrowserSignups *bool           `json:"browser_signups"`
	}
	if err := json.Unmarshal(raw, &patch); err != nil {
		verr.Add("tracking", "The tracking must be an object of tracking settings: "+jsonProblem(err))
		return t
	}
	if patch.LinkFormat != nil {
		t.LinkFormat = *patch.LinkFormat
	}
	if patch.Param != nil {
		t.Param = *patch.Param
	}
	if patch.CookieName != nil {
		t.CookieName = *patch.CookieName
	}
	if patch.CookieDays != nil {
		t.CookieDays = *patch.CookieDays
	}
	if patch.Attribution != nil {
		t.Attribution = *patch.Attribution
	}
	if patch.BrowserSignups != nil {
		t.BrowserSignups = *patch.BrowserSignups
	}
	if patch.CookieDomain != nil {
		var d *string
		if err := json.Unmarshal(patch.CookieDomain, &d); err != nil {
			verr.Add("tracking.cookie_domain", "The tracking.cookie_domain must be a string or null.")
		}
		if d != nil && strings.TrimSpace(*d) == "" {
			d = nil
		}
		if d != nil {
			v := strings.ToLower(strings.TrimSpace(*d))
			d = &v
		}
		t.CookieDomain = d
	}
	if t.LinkFormat != "query" && t.LinkFormat != "path" {
		verr.Add("tracking.link_format", "The tracking.link_format must be one of: query, path.")
	}
	if !paramRE.MatchString(t.Param) {
		verr.Add("tracking.param", "The tracking.param must be 1-32 letters, digits, '-' or '_'.")
	}
	if !cookieRE.MatchString(t.CookieName) {
		verr.Add("tracking.cookie_name", "The tracking.cookie_name must be 1-64 letters, digits, '-' or '_'.")
	}
	if t.CookieDays < 0 || t.CookieDays > 3650 {
		verr.Add("tracking.cookie_days", "The tracking.cookie_days must be between 0 (lifetime) and 3650.")
	}
	if t.Attribution != "last_click" && t.Attribution != "first_click" {
		verr.Add("tracking.attribution", "The tracking.attribution must be one of: last_click, first_click.")
	}
	if t.CookieDomain != nil && (len(*t.CookieDomain) > 253 || !domainRE.MatchString(*t.CookieDomain)) {
		verr.Add("tracking.cookie_domain", "The tracking.cookie_domain must be a domain name.")
	}
	return t
}

// RewardRule is one rule of a program's rewards; package rewards evaluates them.
type RewardRule = rewards.Rule

// ProgramRules returns p's reward rules, as stored (checkRewards validated them).
func ProgramRules(p store.Program) ([]rewards.Rule, error) {
	var rules []rewards.Rule
	dec := json.NewDecoder(strings.NewReader(p.Rewards))
	dec.UseNumber()
	if err := dec.Decode(&rules); err != nil {
		return nil, fmt.Errorf("reward rules of program %s: %w", p.ID, err)
	}
	return rules, nil
}

var (
	recipients  = []string{"referrer", "referred"}
	triggers    = []string{"signup", "first_purchase", "purchase", "subscription"}
	rewardTypes = []string{"credit", "discount", "cash"}
	amountTypes = []string{"fixed", "percent"}
)

// checkRewards validates a rewards list and returns it normalised (currencies lower
// case, fixed money rules given the program's currency when they name none).
func checkRewards(verr *ValidationError, programCurrency string, raw json.RawMessage) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var rules []RewardRule
	if err := dec.Decode(&rules); err != nil {
		verr.Add("rewards", "The rewards must be a list of reward rules: "+jsonProblem(err))
		return nil
	}
	if len(rules) > 50 {
		verr.Add("rewards", "The rewards may hold at most 50 rules.")
	}
	for i := range rules {
		r := &rules[i]
		f := func(name string) string { return fmt.Sprintf("rewards.%d.%s", i, name) }
		oneOf(verr, f("recipient"), r.Recipient, recipients)
		oneOf(verr, f("trigger"), r.Trigger, triggers)
		oneOf(verr, f("type"), r.Type, rewardTypes)
		oneOf(verr, f("amount_type"), r.AmountType, amountTypes)
		if len(r.Name) > 255 {
			verr.Add(f("name"), "The name must not be greater than 255 characters.")
		}
		if r.Currency == "" {
			r.Currency = programCurrency
		}
		r.Currency = strings.ToLower(r.Currency)
		scale, err := currencyScale(r.Currency)
		if err != nil {
			verr.Add(f("currency"), "The currency must be an ISO 4217 currency code.")
		}
		// The rule engine reads amounts with package money; validating with it means a
		// stored rule can always be applied.
		switch {
		case r.Amount == "":
			verr.Add(f("amount"), "The amount field is required.")
		case r.AmountType == "percent" && r.Type == "discount":
			if pct, perr := money.ParseMajor(r.Amount.String(), 2); perr != nil || pct <= 0 || pct > 100_00 {
				verr.Add(f("amount"), "A percent discount must be a number above 0 and at most 100, with at most 2 decimals.")
			}
		case r.AmountType == "percent":
			if _, perr := money.PercentOf(100, r.Amount.String()); perr != nil {
				verr.Add(f("amount"), "A percent amount must be a number above 0 and at most 100, with at most 4 decimals.")
			}
		case r.AmountType == "fixed" && err == nil:
			amt, perr := money.ParseMajor(r.Amount.String(), scale)
			switch {
			case perr != nil:
				verr.Add(f("amount"), fmt.Sprintf("The amount must be a number with at most %d decimals in %s: %v.", scale, strings.ToUpper(r.Currency), perr))
			case amt <= 0:
				verr.Add(f("amount"), "The amount must be greater than 0.")
			}
		}
		// A percent discount is a rate (20 % off), which a sign-up can grant; a percent
		// credit or cash reward is a share of a purchase, which a sign-up does not have.
		if r.AmountType == "percent" && r.Trigger == "signup" && r.Type != "discount" {
			verr.Add(f("amount_type"), "A signup "+r.Type+" reward has no purchase to take a percent of; use a fixed amount, or a percent discount.")
		}
		if r.MinPurchase != nil && err == nil {
			if m, perr := money.ParseMajor(r.MinPurchase.String(), scale); perr != nil || m < 0 {
				verr.Add(f("min_purchase"), fmt.Sprintf("The min_purchase must be a number of at least 0 with at most %d decimals in %s.", scale, strings.ToUpper(r.Currency)))
			}
		}
		nonNegative(verr, f("max_purchases"), r.MaxPurchases, 1_000_000)
		nonNegative(verr, f("max_months"), r.MaxMonths, 1200)
		nonNegative(verr, f("hold_days"), r.HoldDays, 3650)
	}
	if rules == nil {
		rules = []RewardRule{}
	}
	out, _ := json.Marshal(rules)
	return out
}

func oneOf[S ~string](verr *ValidationError, field string, v S, allowed []S) {
	if slices.Contains(allowed, v) {
		return
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	verr.Add(field, fmt.Sprintf("The %s must be one of: %s.", field, strings.Join(names, ", ")))
}

func nonNegative(verr *ValidationError, field string, v, max int) {
	if v < 0 || v > max {
		verr.Add(field, fmt.Sprintf("The %s must be between 0 and %d.", field, max))
	}
}

// currencyScale is the number of minor-unit decimals of an ISO 4217 code (any case).
func currencyScale(code string) (int, error) {
	if !money.IsCurrency(code) {
		return 0, fmt.Errorf("not an ISO 4217 currency code: %q", code)
	}
	return money.Scale(code)
}

// jsonProblem describes a decoding error without Go type names.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("%s has the wrong type (%s)", te.Field, te.Value)
		}
		return fmt.Sprintf("wrong type (%s)", te.Value)
	}
	return err.Error()
}

// NewWidgetSecret is a new widget_secret: "wgs_" and 32 random characters.
func NewWidgetSecret() string { return "wgs_" + RandomString(32) }
