package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/referd/referd/store"
	"github.com/referd/referd/tracking"
)

// maxSigninFailures is how many failed sign-ins a minute one client address may
// make; the next attempt that minute is a 429. They are counted in PostgreSQL, so
// every process serving the console shares the count.
const maxSigninFailures = 10

// preCookie holds the sign-in form's CSRF token until there is a session: the form
// posts it back in a hidden field, so another site cannot sign a browser in.
const preCookie = "referd_admin_pre"

// signinForm shows the sign-in form (GET /admin/signin).
func (c *Console) signinForm(w http.ResponseWriter, r *http.Request) {
	c.showSignin(w, r, http.StatusOK, "")
}

func (c *Console) showSignin(w http.ResponseWriter, r *http.Request, status int, problem string) {
	token := randomToken(24)
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: token, Path: "/admin", MaxAge: 3600, HttpOnly: true, Secure: c.secure(), SameSite: http.SameSiteStrictMode})
	c.render(w, r, nil, status, "signin", "Sign in", map[string]any{
		"CSRF": token, "Next": safeNext(r.FormValue("next")), "Problem": problem})
}

// signin checks an API key (POST /admin/signin) and starts a session for its program.
// A wrong key says only that it is wrong; past 10 failures a minute from one client
// address, 429.
func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	addr := tracking.ClientIP(r).String()
	failures, err := store.AdminSigninFailures(r.Context(), c.DB, addr, time.Now())
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	if failures >= maxSigninFailures {
		w.Header().Set("Retry-After", "60")
		c.showSignin(w, r, http.StatusTooManyRequests, "Too many failed sign-ins from your address. Wait a minute and try again.")
		return
	}
	pre, perr := r.Cookie(preCookie)
	token := r.PostFormValue("csrf")
	if perr != nil || token == "" || subtle.ConstantTimeCompare([]byte(pre.Value), []byte(token)) != 1 {
		c.showSignin(w, r, http.StatusForbidden, "This form has expired (its CSRF token is missing or wrong). Try again.")
		return
	}
	key := strings.TrimSpace(r.PostFormValue("api_key"))
	var p store.Program
	if key != "" && len(key) <= 200 {
		h := sha256.Sum256([]byte(key))
		p, err = store.ProgramByKeyHash(r.Context(), c.DB, h[:])
	} else {
		err = store.ErrNotFound
	}
	if store.IsNotFound(err) {
		if err := store.AddAdminSigninFailure(r.Context(), c.DB, addr, time.Now()); err != nil {
			c.fail(w, r, nil, err)
			return
		}
		c.showSignin(w, r, http.StatusUnauthorized, "That API key is not valid.")
		return
	}
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	id := randomToken(32)
	h := sha256.Sum256([]byte(id))
	now := store.Now()
	if err := store.CreateAdminSession(r.Context(), c.DB, h[:], store.AdminSession{
		ProgramPK: p.PK, CSRF: randomToken(24), CreatedAt: now, ExpiresAt: now.Add(SessionTTL)}); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: "", Path: "/admin", MaxAge: -1, HttpOnly: true, Secure: c.secure(), SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/admin", MaxAge: int(SessionTTL / time.Second),
		HttpOnly: true, Secure: c.secure(), SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// safeNext is where to go after signing in: a console path, never another site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/admin") || strings.HasPrefix(next, "/admin/signin") ||
		strings.ContainsAny(next, "\\\r\n") || strings.HasPrefix(next, "//") || len(next) > 500 {
		return "/admin"
	}
	return next
}

// signout ends the session (POST /admin/signout): its row is deleted, so the
// cookie no longer works even if it was copied.
func (c *Console) signout(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := store.DeleteAdminSession(r.Context(), c.DB, s.idHash, time.Now()); err != nil {
		return err
	}
	clearCookie(w, c.secure())
	http.Redirect(w, r, "/admin/signin", http.StatusSeeOther)
	return nil
}
