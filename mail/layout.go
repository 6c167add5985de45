package mail

import (
	"bytes"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
)

// letter is what every email referd sends says, in the one layout they share: a
// greeting, paragraphs, a link to act on, and the program's name to sign off. Every
// field is text; the HTML part escapes it, and Subject goes through OneLine.
type letter struct {
	Subject  string
	Program  string
	Greeting string
	Before   []string // paragraphs before the link
	Quote    string   // a personal message, set apart (kept as given, line breaks too)
	Label    string   // the link's button
	Link     string
	After    []string // paragraphs after the link
}

var letterText = texttemplate.Must(texttemplate.New("text").Parse(
	`{{.Greeting}}
{{range .Before}}
{{.}}
{{end}}{{if .Quote}}
"{{.Quote}}"
{{end}}
{{.Label}}: {{.Link}}
{{range .After}}
{{.}}
{{end}}
{{.Program}}
`))

// letterHTML is plain HTML with inline styles and a table for the button, which is
// what email clients draw alike.
var letterHTML = htmltemplate.Must(htmltemplate.New("html").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>{{.Subject}}</title></head>
<body style="margin:0;padding:24px 12px;background:#f4f5f7;font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1f2328;line-height:1.5">
<table role="presentation" width="100%" cellspacing="0" cellpadding="0"><tr><td align="center">
<table role="presentation" width="100%" cellspacing="0" cellpadding="0" style="max-width:520px;background:#ffffff;border:1px solid #dde1e6;border-radius:10px">
<tr><td style="padding:20px 28px;border-bottom:1px solid #eceef1;font-size:18px;font-weight:600">{{.Program}}</td></tr>
<tr><td style="padding:24px 28px 8px">
<p style="margin:0 0 16px">{{.Greeting}}</p>
{{range .Before}}<p style="margin:0 0 16px">{{.}}</p>
{{end}}{{if .Quote}}<blockquote style="margin:0 0 16px;padding:8px 14px;border-left:3px solid #2563eb;background:#f6f8fb;white-space:pre-line">{{.Quote}}</blockquote>
{{end}}<table role="presentation" cellspacing="0" cellpadding="0" style="margin:8px 0 16px"><tr><td style="border-radius:6px;background:#2563eb">
<a href="{{.Link}}" style="display:inline-block;padding:11px 22px;color:#ffffff;text-decoration:none;font-weight:600">{{.Label}}</a></td></tr></table>
<p style="margin:0 0 16px;font-size:13px;color:#57606a">Or open this link: <a href="{{.Link}}" style="color:#2563eb;word-break:break-all">{{.Link}}</a></p>
{{range .After}}<p style="margin:0 0 16px">{{.}}</p>
{{end}}</td></tr>
<tr><td style="padding:14px 28px 20px;font-size:13px;color:#57606a">{{.Program}}</td></tr>
</table></td></tr></table>
</body></html>
`))

// render makes the message of l; the caller sets To and ToName.
func (l letter) render() (Message, error) {
	l.Subject = OneLine(l.Subject)
	var text, html bytes.Buffer
	if err := letterText.Execute(&text, l); err != nil {
		return Message{}, err
	}
	if err := letterHTML.Execute(&html, l); err != nil {
		return Message{}, err
	}
	return Message{Subject: l.Subject, Text: text.String(), HTML: html.String()}, nil
}

// greeting is "Hi NAME," or "Hi," without a name.
func greeting(name string) string {
	if name = OneLine(name); name != "" {
		return "Hi " + name + ","
	}
	return "Hi,"
}

// or is s unless it is blank, else def.
func or(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}
