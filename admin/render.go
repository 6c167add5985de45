package admin

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/referd/referd/ledger"
	"github.com/referd/referd/money"
	"github.com/referd/referd/store"
)

// view is what every page's template gets: the signed-in program (nil when signed
// out), the CSRF token for its forms, the section for the navigation, and the
// page's own data.
type view struct {
	Title     string
	Section   string
	Program   *store.Program
	CSRF      string
	OpsQueues bool
	Notice    string
	Data      any
}

// notices are the messages a redirect after an action may show (?done=...); only
// these, so a link cannot make the console say anything else.
var notices = map[string]string{
	"credited":  "The balance was changed.",
	"refunded":  "The transaction was refunded.",
	"replayed":  "The event was processed again.",
	"retried":   "The delivery was queued for another attempt.",
	"rotated":   "A new secret was made; the old one no longer works.",
	"saved":     "Saved.",
	"deleted":   "Deleted.",
	"created":   "Created.",
	"signedout": "You are signed out.",
}

var funcs = template.FuncMap{
	// money is an amount in minor units as major units with its units: "12.50 USD".
	"money": func(minor int64, units string) string { return showMajor(minor, units) + " " + strings.ToUpper(units) },
	"major": showMajor,
	"when": func(t any) string {
		switch t := t.(type) {
		case time.Time:
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		case *time.Time:
			if t == nil {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		}
		return fmt.Sprint(t)
	},
	"day":  func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"join": strings.Join,
	"add":  func(a, b int) int { return a + b },
	"query": func(base string, kv ...any) string { // a URL with query parameters, empty ones left out
		q := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			if v := fmt.Sprint(kv[i+1]); v != "" && v != "0" {
				q.Set(fmt.Sprint(kv[i]), v)
			}
		}
		if len(q) == 0 {
			return base
		}
		return base + "?" + q.Encode()
	},
	"pathEscape": url.PathEscape,
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[fmt.Sprint(kv[i])] = kv[i+1]
		}
		return m
	},
}

// showMajor is minor units of units in major units with all the currency's
// decimals, as people read amounts: 216.20, not the API's 216.2.
func showMajor(minor int64, units string) string {
	n := string(ledger.Major(minor, units))
	scale, err := money.Scale(units)
	if err != nil || scale == 0 {
		return n
	}
	whole, frac, _ := strings.Cut(n, ".")
	return whole + "." + frac + strings.Repeat("0", max(scale-len(frac), 0))
}

// parsePages parses each page template with the layout.
func parsePages() map[string]*template.Template {
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		pages[name] = template.Must(template.Must(layout.Clone()).ParseFS(templateFS, n))
	}
	return pages
}

// render writes page name in the layout with status.
func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, status int, name, title string, data any) {
	v := view{Title: title, Section: name, OpsQueues: c.OpsQueues, Data: data, Notice: notices[r.URL.Query().Get("done")]}
	if s != nil {
		v.Program, v.CSRF = &s.Program, s.CSRF
	}
	t, ok := c.pages[name]
	if !ok {
		panic("admin: no template " + name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		c.Log.ErrorContext(r.Context(), "admin: rendering", "page", name, "err", err)
		http.Error(w, "Internal server error.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// done redirects after an action to target, with a notice.
func done(w http.ResponseWriter, r *http.Request, target, notice string) {
	sep := "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	http.Redirect(w, r, target+sep+"done="+notice, http.StatusSeeOther)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// pageSize is the rows of a list page.
const pageSize = 50

// pager is a list's position: page numbers from 1. Total is -1 for a list that was
// not counted (a search): More then says whether there is a next page.
type pager struct {
	Page, Pages, Total int
	More               bool
	Base               string // the list's URL with its filters, without page
}

func (p pager) Prev() string { return p.at(p.Page - 1) }
func (p pager) Next() string { return p.at(p.Page + 1) }
func (p pager) at(n int) string {
	if n < 1 || (p.Total >= 0 && n > p.Pages) || (p.Total < 0 && n > p.Page && !p.More) {
		return ""
	}
	sep := "?"
	if strings.Contains(p.Base, "?") {
		sep = "&"
	}
	return p.Base + sep + "page=" + strconv.Itoa(n)
}

// Paged says whether the list has more than one page.
func (p pager) Paged() bool { return p.Prev() != "" || p.Next() != "" }

// pageOf reads ?page= (1 when missing or bad) and returns it with the offset.
func pageOf(r *http.Request) (page, offset int) {
	page, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || page < 1 || page > 1_000_000 {
		page = 1
	}
	return page, (page - 1) * pageSize
}

// newPager is the pager of a counted list.
func newPager(page, total int, base string) pager {
	pages := (total + pageSize - 1) / pageSize
	return pager{Page: page, Pages: max(pages, 1), Total: total, Base: base}
}

// probePager is the pager of a list read with one row more than a page (more).
func probePager(page int, more bool, base string) pager {
	return pager{Page: page, Total: -1, More: more, Base: base}
}
