package referral

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net/mail"
	"reflect"
	"strconv"
	"strings"
	"unicode"

	"github.com/referd/referd/rewards"
	"github.com/referd/referd/store"
)

// Text is a string field that also accepts a JSON number (SDKs often send numeric ids).
type Text string

// UnmarshalJSON implements json.Unmarshaler.
func (t *Text) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = Text(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return &json.UnmarshalTypeError{Value: "non-string", Type: reflect.TypeOf("")}
	}
	*t = Text(n)
	return nil
}

func (t *Text) str() string {
	if t == nil {
		return ""
	}
	return strings.TrimSpace(string(*t))
}

// String is the text without surrounding spaces, "" when absent (nil).
func (t *Text) String() string { return t.str() }

// Number is an exact decimal from JSON: a number, or a string holding one (some
// clients quote amounts). It is kept as text; package money converts it.
type Number string

// UnmarshalJSON implements json.Unmarshaler.
func (n *Number) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		b = []byte(strings.TrimSpace(s))
	}
	var num json.Number
	if err := json.Unmarshal(b, &num); err != nil || num == "" {
		return &json.UnmarshalTypeError{Value: "non-number", Type: reflect.TypeOf(json.Number(""))}
	}
	*n = Number(num)
	return nil
}

// String is the number's text.
func (n Number) String() string { return string(n) }

// Optional is a field of an update: Set when present in the body, Null when it was null.
type Optional[T any] struct {
	Set   bool
	Null  bool
	Value T
}

// UnmarshalJSON implements json.Unmarshaler.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.Value)
}

// CustomerRefInput names a customer by id or by key; id wins when both are given.
type CustomerRefInput struct {
	ID  *Text `json:"id"`
	Key *Text `json:"key"`
}

// CustomerInput is the body of POST /v1/customers. Absent or null fields are absent.
type CustomerInput struct {
	ID                *Text             `json:"id"`
	Key               *Text             `json:"key"`
	Email             *string           `json:"email"`
	Name              *string           `json:"name"`
	Surname           *string           `json:"surname"`
	Metadata          json.RawMessage   `json:"metadata"`
	ReferringCustomer *CustomerRefInput `json:"referring_customer"`
	// Source is where the customer is created (api when empty); not read from the
	// API's JSON.
	Source string `json:"-"`
}

// CreateCustomer validates in and stores the customer, linked to its referrer when
// referring_customer names one, with its customer.created event.
func CreateCustomer(ctx context.Context, db *store.DB, p store.Program, in CustomerInput) (store.Customer, error) {
	nc, err := newCustomer(p, in)
	if err != nil {
		return store.Customer{}, err
	}
	if len(nc.signup) == 0 {
		err = store.InsertCustomer(ctx, db, &nc.c, nc.refID, nc.refKey, nc.payload)
	} else {
		// Signup rewards commit with the customer.
		err = db.InTx(ctx, func(tx *store.Tx) error { return nc.insertTx(ctx, tx, p) })
	}
	return nc.result(err)
}

// CreateCustomerTx is CreateCustomer in the caller's transaction: the workers create
// the customer a payment names by its referrer's key with the payment's other effects.
func CreateCustomerTx(ctx context.Context, tx *store.Tx, p store.Program, in CustomerInput) (store.Customer, error) {
	nc, err := newCustomer(p, in)
	if err != nil {
		return store.Customer{}, err
	}
	return nc.result(nc.insertTx(ctx, tx, p))
}

// newCustomerRow is a checked customer to insert, with its customer.created payload and
// the sign-up rewards its referrer earns.
type newCustomerRow struct {
	c             store.Customer
	refID, refKey string
	payload       string
	signup        []rewards.Earned
}

func newCustomer(p store.Program, in CustomerInput) (newCustomerRow, error) {
	c, refID, refKey, err := in.validate(p)
	if err != nil {
		return newCustomerRow{}, err
	}
	c.CreatedAt = store.Now()
	c.UpdatedAt = c.CreatedAt
	c.Links = []store.LinkRef{{Key: c.Key}}
	c.Source = in.Source
	if c.Source == "" {
		c.Source = "api"
	}
	payload, err := json.Marshal(CustomerJSON(p, c))
	if err != nil {
		return newCustomerRow{}, err
	}
	// The statement resolves the referrer and fills referring_customer into the payload.
	nc := newCustomerRow{c: c, refID: refID, refKey: refKey, payload: string(payload)}
	if refID != "" || refKey != "" {
		rules, err := ProgramRules(p)
		if err != nil {
			return newCustomerRow{}, err
		}
		if nc.signup, err = rewards.ForSignup(rules); err != nil {
			return newCustomerRow{}, err
		}
	}
	return nc, nil
}

func (nc *newCustomerRow) insertTx(ctx context.Context, tx *store.Tx, p store.Program) error {
	n := nc.c
	if err := store.InsertCustomer(ctx, tx, &n, nc.refID, nc.refKey, nc.payload); err != nil {
		return err
	}
	if len(nc.signup) > 0 {
		friend := store.CustomerRef{PK: n.PK, ID: n.ID, Key: n.Key, Email: n.Email, Name: n.Name}
		if err := grantSignup(ctx, tx, p, nc.signup, *n.Referrer, friend, n.CreatedAt); err != nil {
			return err
		}
	}
	nc.c = n
	return nil
}

func (nc *newCustomerRow) result(err error) (store.Customer, error) {
	if store.IsNotFound(err) {
		field := "referring_customer.key"
		if nc.refID != "" {
			field = "referring_customer.id"
		}
		return store.Customer{}, Invalid(field, "The referring customer does not exist.")
	}
	if err != nil {
		return store.Customer{}, err
	}
	return nc.c, nil
}

// validate checks in and returns the customer to insert (id and key generated when
// absent) and the referrer it names, by id or else by key.
func (in CustomerInput) validate(p store.Program) (c store.Customer, refID, refKey string, err error) {
	verr := &ValidationError{}
	c = store.Customer{
		ProgramPK: p.PK, Status: "active", Approved: true,
		ID:      checkIdentifier(verr, "id", in.ID.str(), false),
		Key:     checkIdentifier(verr, "key", in.Key.str(), true),
		Email:   checkEmail(verr, "email", in.Email),
		Name:    checkText(verr, "name", in.Name),
		Surname: checkText(verr, "surname", in.Surname),
	}
	c.Metadata = checkMetadata(verr, "metadata", "{}", in.Metadata, false)
	if c.ID == "" {
		c.ID = newCustomerID()
	}
	if c.Key == "" {
		c.Key = newReferralKey()
	}
	if r := in.ReferringCustomer; r != nil {
		refID, refKey = r.ID.str(), r.Key.str()
		switch {
		case refID == "" && refKey == "":
			verr.Add("referring_customer", "The referring_customer must have an id or a key.")
		case refID != "" && refID == c.ID, refID == "" && refKey == c.Key:
			verr.Add("referring_customer", "A customer cannot refer themselves.")
		}
	}
	return c, refID, refKey, verr.Err()
}

// GetCustomer returns the program's customer whose id, else key, is idOrKey.
func GetCustomer(ctx context.Context, q store.Querier, p store.Program, idOrKey string) (store.Customer, error) {
	c, err := store.GetCustomer(ctx, q, p.PK, idOrKey, false)
	if store.IsNotFound(err) {
		return c, &NotFoundError{What: "customer"}
	}
	return c, err
}

// CustomerUpdate is a partial update: absent fields stay; null clears email, name and
// surname; metadata keys are merged into the stored object, a null value removing its key.
type CustomerUpdate struct {
	ID       *Text                     `json:"id"`
	Key      *Text                     `json:"key"`
	Email    Optional[string]          `json:"email"`
	Name     Optional[string]          `json:"name"`
	Surname  Optional[string]          `json:"surname"`
	Metadata Optional[json.RawMessage] `json:"metadata"`
}

// UpdateCustomer applies u to the customer idOrKey. An update that changes nothing
// writes nothing and emits no event.
func UpdateCustomer(ctx context.Context, db *store.DB, p store.Program, idOrKey string, u CustomerUpdate) (store.Customer, error) {
	var out store.Customer
	err := db.InTx(ctx, func(tx *store.Tx) error {
		c, err := store.GetCustomer(ctx, tx, p.PK, idOrKey, true)
		if store.IsNotFound(err) {
			return &NotFoundError{What: "customer"}
		}
		if err != nil {
			return err
		}
		before, _ := json.Marshal(CustomerJSON(p, c))
		verr := &ValidationError{}
		if u.ID != nil {
			c.ID = checkIdentifier(verr, "id", u.ID.str(), false)
			if c.ID == "" {
				verr.Add("id", "The id must not be empty.")
			}
		}
		if u.Key != nil {
			c.Key = checkIdentifier(verr, "key", u.Key.str(), true)
			if c.Key == "" {
				verr.Add("key", "The key must not be empty.")
			}
			if len(c.Links) > 0 {
				c.Links[0].Key = c.Key
			}
		}
		setOptional(verr, "email", u.Email, &c.Email, checkEmail)
		setOptional(verr, "name", u.Name, &c.Name, checkText)
		setOptional(verr, "surname", u.Surname, &c.Surname, checkText)
		if u.Metadata.Set && !u.Metadata.Null {
			c.Metadata = checkMetadata(verr, "metadata", c.Metadata, u.Metadata.Value, true)
		}
		if err := verr.Err(); err != nil {
			return err
		}
		after, _ := json.Marshal(CustomerJSON(p, c))
		if bytes.Equal(before, after) {
			out = c
			return nil
		}
		c.UpdatedAt = store.Now()
		return writeCustomer(ctx, tx, p, &c, "customer.updated", &out)
	})
	return out, err
}

// DeleteCustomer marks the customer deleted (its history stays) and emits
// customer.deleted; deleting a deleted customer changes nothing.
func DeleteCustomer(ctx context.Context, db *store.DB, p store.Program, idOrKey string) (store.Customer, error) {
	var out store.Customer
	err := db.InTx(ctx, func(tx *store.Tx) error {
		c, err := store.GetCustomer(ctx, tx, p.PK, idOrKey, true)
		if store.IsNotFound(err) {
			return &NotFoundError{What: "customer"}
		}
		if err != nil {
			return err
		}
		if c.Status == "deleted" {
			out = c
			return nil
		}
		c.Status = "deleted"
		c.UpdatedAt = store.Now()
		c.DeletedAt = sql.NullTime{Time: c.UpdatedAt, Valid: true}
		return writeCustomer(ctx, tx, p, &c, "customer.deleted", &out)
	})
	return out, err
}

func writeCustomer(ctx context.Context, tx *store.Tx, p store.Program, c *store.Customer, event string, out *store.Customer) error {
	payload, err := json.Marshal(CustomerJSON(p, *c))
	if err != nil {
		return err
	}
	if err := store.UpdateCustomer(ctx, tx, c, event, string(payload)); err != nil {
		return err
	}
	*out = *c
	return nil
}

func setOptional(verr *ValidationError, field string, o Optional[string], dst *sql.NullString,
	check func(*ValidationError, string, *string) sql.NullString) {
	switch {
	case !o.Set:
	case o.Null:
		*dst = sql.NullString{}
	default:
		*dst = check(verr, field, &o.Value)
	}
}

// checkIdentifier validates an id or key (keys travel in URLs, so no whitespace, '/',
// '?', '#' or '&'); empty means "generate one".
func checkIdentifier(verr *ValidationError, field, v string, urlSafe bool) string {
	if len(v) > 255 {
		verr.Add(field, "The "+field+" must not be greater than 255 characters.")
		return v
	}
	for _, r := range v {
		if unicode.IsControl(r) || (urlSafe && (unicode.IsSpace(r) || strings.ContainsRune("/?#&%", r))) {
			if urlSafe {
				verr.Add(field, "The "+field+" must not contain spaces or any of / ? # & %.")
			} else {
				verr.Add(field, "The "+field+" must not contain control characters.")
			}
			break
		}
	}
	return v
}

func checkEmail(verr *ValidationError, field string, v *string) sql.NullString {
	if v == nil {
		return sql.NullString{}
	}
	s := strings.TrimSpace(*v)
	if s == "" {
		return sql.NullString{}
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || len(s) > 254 || !strings.Contains(s[strings.LastIndexByte(s, '@'):], ".") {
		verr.Add(field, "The "+field+" must be a valid email address.")
	}
	return sql.NullString{String: s, Valid: true}
}

func checkText(verr *ValidationError, field string, v *string) sql.NullString {
	if v == nil {
		return sql.NullString{}
	}
	s := strings.TrimSpace(*v)
	switch {
	case len(s) > 255:
		verr.Add(field, "The "+field+" must not be greater than 255 characters.")
	case strings.ContainsRune(s, 0):
		verr.Add(field, "The "+field+" must not contain NUL characters.")
	}
	return sql.NullString{String: s, Valid: true}
}

// checkMetadata returns the object raw (on create) or base with raw's keys merged
// into it, a null value removing its key (on update). Metadata must be an object of
// at most 16 KiB.
func checkMetadata(verr *ValidationError, field, base string, raw json.RawMessage, merge bool) string {
	if !isPresent(raw) {
		return base
	}
	var patch map[string]json.RawMessage
	if err := json.Unmarshal(raw, &patch); err != nil {
		verr.Add(field, "The "+field+" must be an object.")
		return base
	}
	merged := map[string]json.RawMessage{}
	if merge {
		json.Unmarshal([]byte(base), &merged)
	}
	for k, v := range patch {
		if merge && bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			delete(merged, k)
			continue
		}
		merged[k] = v
	}
	for k, v := range merged {
		if problem := storable(k, v); problem != "" {
			verr.Add(field, "The "+field+" "+problem+".")
			return base
		}
	}
	b, _ := json.Marshal(merged)
	out := store.NormalizeJSON(string(b))
	if len(out) > 16<<10 {
		verr.Add(field, "The "+field+" must not be larger than 16 KiB.")
	}
	return out
}

// storable says what keeps the JSON value v (under key) out of PostgreSQL's jsonb:
// a NUL character, or a number beyond what its numeric type holds. "" means none.
func storable(key string, v json.RawMessage) string {
	if strings.ContainsRune(key, 0) {
		return "must not contain NUL characters"
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		switch t := tok.(type) {
		case string:
			if strings.ContainsRune(t, 0) {
				return "must not contain NUL characters"
			}
		case json.Number:
			if len(t) > 64 {
				return "must not hold numbers of more than 64 characters"
			}
			if i := strings.IndexAny(string(t), "eE"); i >= 0 {
				if exp, err := strconv.Atoi(strings.TrimPrefix(string(t)[i+1:], "+")); err != nil || exp > 300 || exp < -300 {
					return "must not hold numbers with exponents beyond ±300"
				}
			}
		}
	}
}

// ListCustomers returns a page of the filter's customers and their total.
func ListCustomers(ctx context.Context, db *store.DB, f store.CustomerFilter) ([]store.Customer, int, error) {
	return store.ListCustomers(ctx, db, f)
}

// Referrals lists the customers that idOrKey referred, newest first.
func Referrals(ctx context.Context, db *store.DB, p store.Program, idOrKey string, limit, offset int) ([]store.Customer, int, error) {
	c, err := GetCustomer(ctx, db, p, idOrKey)
	if err != nil {
		return nil, 0, err
	}
	return store.ListCustomers(ctx, db, store.CustomerFilter{ProgramPK: p.PK, ReferrerPK: c.PK, Limit: limit, Offset: offset})
}

// Links lists the referral links of the customer idOrKey, its own key first.
func Links(ctx context.Context, db *store.DB, p store.Program, idOrKey string) ([]store.Link, error) {
	c, err := GetCustomer(ctx, db, p, idOrKey)
	if err != nil {
		return nil, err
	}
	return store.ListLinks(ctx, db, c.PK)
}

// LinkInput is the body of POST /v1/customer_referral_links.
type LinkInput struct {
	Customer       *CustomerRefInput `json:"customer"`
	CustomerKey    *Text             `json:"customer_key"`
	Key            *Text             `json:"key"`
	DestinationURL *string           `json:"destination_url"`
	IsAdditional   *bool             `json:"is_additional"`
	DomainID       *Text             `json:"domain_id"`
}

// CreateLink adds an extra referral link to a customer. Its key (generated when
// absent) is unique among every customer key and link key of the program.
func CreateLink(ctx context.Context, db *store.DB, p store.Program, in LinkInput) (store.Link, error) {
	verr := &ValidationError{}
	var owner string
	switch {
	case in.Customer != nil && in.Customer.ID.str() != "":
		owner = in.Customer.ID.str()
	case in.Customer != nil && in.Customer.Key.str() != "":
		owner = in.Customer.Key.str()
	case in.CustomerKey.str() != "":
		owner = in.CustomerKey.str()
	default:
		verr.Add("customer", "The customer field is required (customer.id, customer.key or customer_key).")
	}
	l := store.Link{ProgramPK: p.PK, Key: checkIdentifier(verr, "key", in.Key.str(), true), IsAdditional: in.IsAdditional != nil && *in.IsAdditional}
	if in.DestinationURL != nil && strings.TrimSpace(*in.DestinationURL) != "" {
		l.DestinationURL = sql.NullString{String: checkWebsite(verr, "destination_url", *in.DestinationURL), Valid: true}
	}
	if d := in.DomainID.str(); d != "" {
		l.DomainID = sql.NullString{String: d, Valid: true}
	}
	if err := verr.Err(); err != nil {
		return store.Link{}, err
	}
	c, err := store.GetCustomer(ctx, db, p.PK, owner, false)
	if store.IsNotFound(err) {
		return store.Link{}, Invalid("customer", "The customer does not exist.")
	}
	if err != nil {
		return store.Link{}, err
	}
	if l.Key == "" {
		l.Key = newReferralKey()
	}
	l.CustomerPK = c.PK
	l.CreatedAt = store.Now()
	if err := store.InsertLink(ctx, db, &l); err != nil {
		return store.Link{}, err
	}
	return l, nil
}
