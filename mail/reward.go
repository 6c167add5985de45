package mail

import (
	"bytes"
	htmltemplate "html/template"
	texttemplate "text/template"
)

// RewardEarned is the note to a customer who earned a reward, sent when the program
// sets notifications.reward_earned.
type RewardEarned struct {
	Program string // the program's name
	Name    string // the customer's name (may be empty)
	Amount  string // what they earned, as shown: "12.50 usd", "20 percent"
	// AvailableAt is when a held reward becomes available ("" when it is available now).
	AvailableAt string
	Link        string // their referral link, to share again
}

var rewardText = texttemplate.Must(texttemplate.New("text").Parse(
	`{{if .Name}}Hi {{.Name}},{{else}}Hi,{{end}}

You earned a reward from {{.Program}}: {{.Amount}}.
{{if .AvailableAt}}It becomes available on {{.AvailableAt}}.
{{end}}
Keep sharing your referral link: {{.Link}}

{{.Program}}
`))

var rewardHTML = htmltemplate.Must(htmltemplate.New("html").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>You earned a reward</title></head>
<body style="font-family: sans-serif; line-height: 1.5">
<p>{{if .Name}}Hi {{.Name}},{{else}}Hi,{{end}}</p>
<p>You earned a reward from {{.Program}}: <strong>{{.Amount}}</strong>.</p>
{{if .AvailableAt}}<p>It becomes available on {{.AvailableAt}}.</p>
{{end}}<p>Keep sharing your referral link: <a href="{{.Link}}">{{.Link}}</a></p>
<p>{{.Program}}</p>
</body></html>
`))

// Render makes the note's subject, text and HTML; the caller sets To and ToName.
func (r RewardEarned) Render() (Message, error) {
	r.Name = OneLine(r.Name)
	var text, html bytes.Buffer
	if err := rewardText.Execute(&text, r); err != nil {
		return Message{}, err
	}
	if err := rewardHTML.Execute(&html, r); err != nil {
		return Message{}, err
	}
	return Message{Subject: OneLine("You earned a reward from " + r.Program), Text: text.String(), HTML: html.String()}, nil
}
