package api

// Routes lists the patterns the API registers ("GET /v1/program", ...).
func Routes() []string {
	_, patterns := (&Server{}).routes()
	return patterns
}
