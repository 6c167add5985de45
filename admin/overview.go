package admin

import (
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/referd/referd/store"
)

// series is one chart of the overview: a value per day, and its total.
type series struct {
	Title  string
	Total  string // the total as text, beside the chart
	Values []int64
	Chart  template.HTML
}

// overview shows the program's activity per day over 7, 30 or 90 days (GET /admin).
func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session) error {
	days := 30
	switch r.URL.Query().Get("days") {
	case "7":
		days = 7
	case "90":
		days = 90
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	since := today.AddDate(0, 0, 1-days)
	a, err := store.ProgramActivity(r.Context(), c.DB, s.Program.PK, since)
	if err != nil {
		return err
	}
	dates := make([]time.Time, days)
	for i := range dates {
		dates[i] = since.AddDate(0, 0, i)
	}
	count := func(title string, rows []store.DayCount) series {
		v := perDay(since, days, rows, func(d store.DayCount) int64 { return d.N })
		return series{Title: title, Values: v, Total: fmt.Sprint(sum(v))}
	}
	charts := []series{
		count("Clicks", a.Clicks),
		count("Sign-ups", a.Signups),
		count("Referred customers", a.Referred),
		count("Referred sales", a.Sales),
	}
	// Amounts: one chart per units (a program may sell in several currencies, and
	// rewards may be points or percent).
	for _, m := range []struct {
		title string
		rows  []store.DayCount
	}{{"Referred revenue", a.Sales}, {"Rewards", a.Rewards}} {
		for _, units := range unitsOf(m.rows) {
			v := perDay(since, days, m.rows, func(d store.DayCount) int64 {
				if d.Units != units {
					return 0
				}
				return d.Sum
			})
			charts = append(charts, series{Title: m.title + " (" + strings.ToUpper(units) + ")", Values: v, Total: showMajor(sum(v), units) + " " + strings.ToUpper(units)})
		}
	}
	for i := range charts {
		charts[i].Chart = barChart(charts[i].Values, dates)
	}
	c.render(w, r, s, http.StatusOK, "overview", "Overview", map[string]any{
		"Days": days, "Since": since, "Until": today, "Charts": charts, "Customers": a.Customers})
	return nil
}

// perDay spreads rows (days with activity) over the days from since.
func perDay(since time.Time, days int, rows []store.DayCount, value func(store.DayCount) int64) []int64 {
	v := make([]int64, days)
	for _, d := range rows {
		i := int(d.Day.UTC().Sub(since) / (24 * time.Hour))
		if i >= 0 && i < days {
			v[i] += value(d)
		}
	}
	return v
}

func unitsOf(rows []store.DayCount) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range rows {
		if !seen[d.Units] {
			seen[d.Units] = true
			out = append(out, d.Units)
		}
	}
	return out
}

func sum(v []int64) int64 {
	var t int64
	for _, x := range v {
		t += x
	}
	return t
}

// barChart draws values as an SVG bar chart, one bar a day, with the largest value
// and the first and last dates as labels and each bar's day and value as its
// tooltip. Everything in it is numbers and dates, formatted here.
func barChart(values []int64, dates []time.Time) template.HTML {
	const w, h, top, bottom = 600.0, 140.0, 14.0, 18.0
	peak := int64(0)
	for _, v := range values {
		peak = max(peak, v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-label="one bar per day">`, w, h)
	fmt.Fprintf(&b, `<line x1="0" y1="%g" x2="%g" y2="%g" class="axis"/>`, h-bottom, w, h-bottom)
	slot := w / float64(len(values))
	for i, v := range values {
		bh := 0.0
		if peak > 0 {
			bh = float64(v) / float64(peak) * (h - top - bottom)
		}
		if v > 0 && bh < 1.5 {
			bh = 1.5
		}
		fmt.Fprintf(&b, `<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f"><title>%s: %d</title></rect>`,
			float64(i)*slot+slot*0.12, h-bottom-bh, slot*0.76, bh, dates[i].Format("2006-01-02"), v)
	}
	fmt.Fprintf(&b, `<text x="2" y="10" class="peak">max %d</text>`, peak)
	fmt.Fprintf(&b, `<text x="2" y="%g" class="date">%s</text>`, h-4, dates[0].Format("Jan 2"))
	fmt.Fprintf(&b, `<text x="%g" y="%g" class="date" text-anchor="end">%s</text>`, w-2, h-4, dates[len(dates)-1].Format("Jan 2"))
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // numbers and dates only
}
