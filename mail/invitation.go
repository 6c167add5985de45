package mail

// Invitation invites a customer to share their referral link (POST
// /v1/customers:invite).
type Invitation struct {
	Program string // the program's name
	Name    string // the customer's name (may be empty)
	Link    string // the customer's referral link
	// Subject and Message replace the defaults when not empty (the API's
	// personalization); they are used as given, escaped in the HTML part.
	Subject string
	Message string
}

// Render makes the invitation's subject, text and HTML; the caller sets To and ToName.
func (inv Invitation) Render() (Message, error) {
	return letter{
		Subject:  or(inv.Subject, "Your referral link for "+inv.Program),
		Program:  inv.Program,
		Greeting: greeting(inv.Name),
		Before:   []string{or(inv.Message, "You are invited to the "+inv.Program+" referral program.")},
		Label:    "Your referral link",
		Link:     inv.Link,
		After:    []string{"Share it with friends: when they join " + inv.Program + " through it, you are rewarded."},
	}.render()
}

// FriendInvitation is what a customer sends a friend from the referral widget: their
// referral link, with their own words.
type FriendInvitation struct {
	Program string // the program's name
	From    string // who invites (their name, or "A friend")
	Link    string // the inviting customer's referral link
	Message string // the customer's own words (may be empty), escaped in the HTML part
}

// Render makes the friend's invitation; the caller sets To.
func (inv FriendInvitation) Render() (Message, error) {
	from := or(OneLine(inv.From), "A friend")
	return letter{
		Subject:  from + " invites you to " + inv.Program,
		Program:  inv.Program,
		Greeting: "Hi,",
		Before:   []string{from + " invites you to join " + inv.Program + "."},
		Quote:    inv.Message,
		Label:    "Join " + inv.Program,
		Link:     inv.Link,
	}.render()
}
