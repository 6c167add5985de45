package logging

import "context"

type requestIDKey struct{}

// WithRequestID returns ctx carrying the id of the request (an HTTP request, or the
// ingest request behind a job) on whose behalf work is done. Outbox events written
// under it remember it, and so do the webhook deliveries made from them, so one id
// follows a billing event from its ingest request to its outgoing webhooks.
func WithRequestID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id ctx carries, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
