package mail

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

// Render makes the note's subject, text and HTML; the caller sets To and ToName.
func (r RewardEarned) Render() (Message, error) {
	before := []string{"You earned a reward from " + r.Program + ": " + r.Amount + "."}
	if r.AvailableAt != "" {
		before = append(before, "It becomes available on "+r.AvailableAt+".")
	}
	return letter{
		Subject:  "You earned a reward from " + r.Program,
		Program:  r.Program,
		Greeting: greeting(r.Name),
		Before:   before,
		Label:    "Keep sharing your referral link",
		Link:     r.Link,
	}.render()
}
