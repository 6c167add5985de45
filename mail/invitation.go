package mail

import (
	"bytes"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
)

// Invitation is what an invitation to a referral program says.
type Invitation struct {
	Program string // the program's name
	Name    string // the customer's name (may be empty)
	Link    string // the customer's referral link
	// Subject and Message replace the defaults when not empty (the API's
	// personalization); they are used as given, escaped in the HTML part.
	Subject string
	Message string
}

var invitationText = texttemplate.Must(texttemplate.New("text").Parse(
	`{{if .Name}}Hi {{.Name}},{{else}}Hi,{{end}}

{{.Message}}

Your referral link: {{.Link}}

Share it with friends: when they join {{.Program}} through it, you are rewarded.

{{.Program}}
`))

var invitationHTML = htmltemplate.Must(htmltemplate.New("html").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Subject}}</title></head>
<body style="font-family: sans-serif; line-height: 1.5">
<p>{{if .Name}}Hi {{.Name}},{{else}}Hi,{{end}}</p>
<p style="white-space: pre-line">{{.Message}}</p>
<p>Your referral link: <a href="{{.Link}}">{{.Link}}</a></p>
<p>Share it with friends: when they join {{.Program}} through it, you are rewarded.</p>
<p>{{.Program}}</p>
</body></html>
`))

// Render makes the invitation's subject, text and HTML; the caller sets To and ToName.
func (inv Invitation) Render() (Message, error) {
	if strings.TrimSpace(inv.Subject) == "" {
		inv.Subject = "Your referral link for " + inv.Program
	}
	inv.Subject, inv.Name = OneLine(inv.Subject), OneLine(inv.Name)
	if strings.TrimSpace(inv.Message) == "" {
		inv.Message = "You are invited to the " + inv.Program + " referral program."
	}
	var text, html bytes.Buffer
	if err := invitationText.Execute(&text, inv); err != nil {
		return Message{}, err
	}
	if err := invitationHTML.Execute(&html, inv); err != nil {
		return Message{}, err
	}
	return Message{Subject: inv.Subject, Text: text.String(), HTML: html.String()}, nil
}
