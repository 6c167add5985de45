package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/referd/referd/mail"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// TypeSendEmail sends a stored email (payload: the emails row's pk), with asynq's
// backoff between attempts.
const TypeSendEmail = "email:send"

// SendEmailTask is the task that sends email pk. Its TaskID is the email's, so the
// sweep queueing it again while it waits for a retry is a no-op.
func SendEmailTask(pk int64) (*asynq.Task, []asynq.Option) {
	return asynq.NewTask(TypeSendEmail, []byte(strconv.FormatInt(pk, 10))),
		// 20 retries of asynq's default backoff span about a week.
		[]asynq.Option{asynq.TaskID(fmt.Sprintf("email:send:%d", pk)), asynq.MaxRetry(20), asynq.Timeout(2 * time.Minute)}
}

// ErrEmailOff is a send task's error in a process without REFERD_SMTP_URL: the task
// waits, retried, for a worker that has it.
var ErrEmailOff = errors.New("email is off in this worker: set REFERD_SMTP_URL (and REFERD_MAIL_FROM) to send queued email")

// SendEmail sends stored email pk unless it was sent already. It holds the row's
// lock while it talks to the SMTP server, so two tasks for one email never send it
// both, and records sent_at in the same transaction once the server accepted it: a
// retried task (or a second one the sweep queued) finds it sent and does nothing.
// Only a crash between the server's acceptance and the commit sends it again.
func SendEmail(ctx context.Context, db *store.DB, s *mail.Sender, pk int64) error {
	if s == nil {
		return ErrEmailOff
	}
	var sendErr error
	err := db.InTx(ctx, func(tx *store.Tx) error {
		sendErr = nil
		e, err := store.LockEmail(ctx, tx, pk)
		if store.IsNotFound(err) {
			return fmt.Errorf("%w: no email %d", asynq.SkipRetry, pk)
		}
		if err != nil || e.SentAt.Valid {
			return err
		}
		sendErr = s.Send(ctx, mail.Message{To: e.ToAddress, ToName: e.ToName, Subject: e.Subject, Text: e.TextBody, HTML: e.HTMLBody})
		if sendErr != nil {
			return store.RecordEmailFailure(ctx, tx, pk, sendErr.Error())
		}
		return store.MarkEmailSent(ctx, tx, pk, store.Now())
	})
	if err != nil {
		return fmt.Errorf("jobs.SendEmail(%d): %w", pk, err)
	}
	return sendErr
}

// unsentAfter is how long after its task was queued an unsent email is taken for one
// whose task was lost; queueing it again is harmless when the task still waits (its
// TaskID is taken) or already sent it (SendEmail finds it sent).
const unsentAfter = 5 * time.Minute

// QueueEmails is the poller that queues a send task for each email its cause's
// transaction stored, and, once a minute, for unsent ones whose task may have been
// lost (a Redis restarted without its data).
func QueueEmails() Poller {
	var lastSweep time.Time
	return func(ctx context.Context, tx *store.Tx) ([]Job, error) {
		pks, err := store.TakeEmailsToQueue(ctx, tx, relayBatch)
		if err != nil {
			return nil, err
		}
		if time.Since(lastSweep) >= time.Minute {
			lastSweep = time.Now()
			lost, err := store.UnsentEmails(ctx, tx, time.Now().Add(-unsentAfter), 1000)
			if err != nil {
				return nil, err
			}
			pks = append(pks, lost...)
		}
		jobs := make([]Job, len(pks))
		for i, pk := range pks {
			task, opts := SendEmailTask(pk)
			jobs[i] = Job{task, opts}
		}
		return jobs, nil
	}
}

// NotifyRewards is the consumer that emails a customer who earned a reward, when
// their program sets notifications.reward_earned: each customer.rewarded event
// becomes an email (cause reward:<its key>) stored in the relay's transaction, the
// one that marks the event dispatched, so it is stored exactly once; QueueEmails
// queues its task.
func NotifyRewards(ctx context.Context, tx *store.Tx, rows []store.OutboxRow) ([]Job, error) {
	programs := map[int64]store.Program{}
	for _, row := range rows {
		if row.Event != "customer.rewarded" {
			continue
		}
		p, ok := programs[row.ProgramPK]
		if !ok {
			var err error
			if p, err = store.ProgramByPK(ctx, tx, row.ProgramPK); err != nil {
				return nil, err
			}
			programs[row.ProgramPK] = p
		}
		if !p.Notifications.RewardEarned {
			continue
		}
		var r struct {
			Key         string      `json:"key"`
			Amount      json.Number `json:"amount"`
			Units       string      `json:"amount_units"`
			Status      string      `json:"status"`
			AvailableAt time.Time   `json:"available_at"`
			Customer    *struct {
				Key   string  `json:"key"`
				Email *string `json:"email"`
				Name  *string `json:"name"`
			} `json:"customer"`
		}
		if err := json.Unmarshal([]byte(row.Payload), &r); err != nil || r.Customer == nil || r.Customer.Email == nil || *r.Customer.Email == "" {
			continue // nobody to write to
		}
		units := r.Units
		if len(units) == 3 {
			units = strings.ToUpper(units) // a currency code
		}
		note := mail.RewardEarned{Program: p.Name, Amount: r.Amount.String() + " " + units,
			Link: referral.LinkURL(p, r.Customer.Key, "")}
		if r.Customer.Name != nil {
			note.Name = *r.Customer.Name
		}
		if r.Status == "pending" && r.AvailableAt.After(row.CreatedAt) {
			note.AvailableAt = r.AvailableAt.UTC().Format("January 2, 2006")
		}
		m, err := note.Render()
		if err != nil {
			return nil, err
		}
		if err := store.InsertEmail(ctx, tx, &store.Email{ProgramPK: p.PK, Cause: "reward:" + r.Key,
			ToAddress: *r.Customer.Email, ToName: mail.OneLine(note.Name), Subject: m.Subject, TextBody: m.Text, HTMLBody: m.HTML,
			CreatedAt: store.Now()}); err != nil {
			return nil, err
		}
	}
	return nil, nil
}
