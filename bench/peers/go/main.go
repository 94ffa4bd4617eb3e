// Command peer is the Go peer of the epro benchmark: the PHQ-9 intake
// endpoint `POST /api/collection/submit` written the way a Go team would
// write it, with net/http and a pgx v4 connection pool.
//
// Each request is validated (all nine PHQ-9 items present with one of the
// four LOINC answer codes, completedAt in RFC 3339 with an offset and not
// in the future), scored, and stored as one submission row plus one outbox
// row in a single transaction. The reply is sent after the commit.
//
// Configuration comes from the environment: LISTEN (default
// 127.0.0.1:18081) and DATABASE_URL (a libpq URL; pgxpool reads
// pool_max_conns from it).
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"

	"github.com/jackc/pgconn"
	"github.com/jackc/pgx/v4"
	"github.com/jackc/pgx/v4/pgxpool"
)

const (
	trialID      = "demo"
	formID       = "phq9"
	maxBodyBytes = 1 << 20

	// clockSkew is how far completedAt may lie ahead of the server's clock,
	// the same allowance as epro's default http.clock_skew_seconds.
	clockSkew = 300 * time.Second

	// uniqueViolation is PostgreSQL's SQLSTATE for a duplicate key.
	uniqueViolation = "23505"
)

// phq9Items lists the linkIds of the nine PHQ-9 questions.
var phq9Items = []string{
	"/44250-9", "/44255-8", "/44259-0", "/44254-1", "/44251-7",
	"/44258-2", "/44252-5", "/44253-3", "/44260-8",
}

var itemSet = func() map[string]struct{} {
	set := make(map[string]struct{}, len(phq9Items))
	for _, item := range phq9Items {
		set[item] = struct{}{}
	}
	return set
}()

// answerScores maps each LOINC answer code of the PHQ-9 to its score.
var answerScores = map[string]int{
	"LA6568-5": 0, // Not at all
	"LA6569-3": 1, // Several days
	"LA6570-1": 2, // More than half the days
	"LA6571-9": 3, // Nearly every day
}

var (
	idPattern   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// submitRequest is the body of the seed endpoint. Pointers distinguish a
// missing field from an empty one.
type submitRequest struct {
	PatientID   *string `json:"patientId"`
	TrialID     *string `json:"trialId"`
	FormID      *string `json:"formId"`
	FormContent *string `json:"formContent"`
}

// submission is a request that passed validation.
type submission struct {
	id          string
	patientID   string
	completedAt time.Time
	totalScore  int
	rawAnswers  string
}

type reply struct {
	Status       string   `json:"status"`
	Message      string   `json:"message"`
	SubmissionID string   `json:"submissionId,omitempty"`
	TotalScore   *int     `json:"totalScore,omitempty"`
	Errors       []string `json:"errors,omitempty"`
}

type server struct {
	pool *pgxpool.Pool
}

func main() {
	listen := envOr("LISTEN", "127.0.0.1:18081")
	databaseURL := envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/epro_bench_go")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	pool, err := pgxpool.Connect(ctx, databaseURL)
	if err != nil {
		log.Fatalf("failed to open database pool: %v", err)
	}
	defer pool.Close()

	mux := http.NewServeMux()
	srv := &server{pool: pool}
	mux.HandleFunc("/api/collection/submit", srv.submit)
	httpServer := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	serveErr := make(chan error, 1)
	go func() { serveErr <- httpServer.ListenAndServe() }()
	log.Printf("listening on %s (pool max %d connections)", listen, pool.Config().MaxConns)

	select {
	case err := <-serveErr:
		log.Fatalf("server failed: %v", err)
	case <-ctx.Done():
	}

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := httpServer.Shutdown(shutdownCtx); err != nil {
		log.Printf("shutdown timed out with requests in flight: %v", err)
	}
	log.Printf("stopped")
}

func (s *server) submit(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeReply(w, http.StatusMethodNotAllowed, reply{Status: "error", Message: "method not allowed"})
		return
	}

	var request submitRequest
	decoder := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&request); err != nil {
		writeReply(w, http.StatusBadRequest, reply{Status: "error", Message: "invalid JSON body: " + err.Error()})
		return
	}
	if _, err := decoder.Token(); err != io.EOF {
		writeReply(w, http.StatusBadRequest, reply{Status: "error", Message: "invalid JSON body: data after the object"})
		return
	}

	sub, problems := validate(request, r.Header.Get("Idempotency-Key"), time.Now())
	if len(problems) > 0 {
		writeReply(w, http.StatusBadRequest, reply{Status: "error", Message: "the submission was not stored", Errors: problems})
		return
	}

	err := s.store(r.Context(), sub)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == uniqueViolation:
		log.Printf("rejected submission %s: id already stored", sub.id)
		writeReply(w, http.StatusConflict, reply{Status: "error", Message: "submission id already stored", SubmissionID: sub.id})
	case err != nil:
		log.Printf("failed to store submission %s: %v", sub.id, err)
		writeReply(w, http.StatusInternalServerError, reply{Status: "error", Message: "internal error"})
	default:
		writeReply(w, http.StatusOK, reply{
			Status:       "success",
			Message:      "Submission received.",
			SubmissionID: sub.id,
			TotalScore:   &sub.totalScore,
		})
	}
}

// validate checks the envelope and the PHQ-9 answers and returns every
// problem found, not only the first.
func validate(request submitRequest, idempotencyKey string, now time.Time) (submission, []string) {
	var problems []string
	var sub submission

	switch {
	case request.PatientID == nil:
		problems = append(problems, "patientId: required")
	case !idPattern.MatchString(*request.PatientID):
		problems = append(problems, "patientId: must be 1-64 letters, digits, '.', '_' or '-'")
	default:
		sub.patientID = *request.PatientID
	}
	if request.TrialID == nil || *request.TrialID != trialID {
		problems = append(problems, "trialId: unknown trial")
	}
	if request.FormID != nil && *request.FormID != formID {
		problems = append(problems, "formId: unknown form")
	}

	switch {
	case idempotencyKey == "":
		sub.id = newUUID()
	case uuidPattern.MatchString(idempotencyKey):
		sub.id = idempotencyKey
	default:
		problems = append(problems, "Idempotency-Key: must be a UUID")
	}

	if request.FormContent == nil {
		problems = append(problems, "formContent: required")
		return sub, problems
	}
	sub.rawAnswers = *request.FormContent

	var content map[string]interface{}
	if err := json.Unmarshal([]byte(sub.rawAnswers), &content); err != nil {
		problems = append(problems, "formContent: must be a JSON object")
		return sub, problems
	}

	for _, item := range phq9Items {
		value, present := content[item]
		code, isString := value.(string)
		score, known := answerScores[code]
		switch {
		case !present:
			problems = append(problems, item+": required")
		case !isString || !known:
			problems = append(problems, item+": not one of LA6568-5, LA6569-3, LA6570-1, LA6571-9")
		default:
			sub.totalScore += score
		}
	}

	completedAt, isString := content["completedAt"].(string)
	parsed, err := time.Parse(time.RFC3339, completedAt)
	switch {
	case !isString:
		problems = append(problems, "completedAt: required")
	case err != nil:
		problems = append(problems, "completedAt: must be RFC 3339 with an offset, such as 2026-12-04T20:15:00+08:00")
	case parsed.After(now.Add(clockSkew)):
		problems = append(problems, "completedAt: in the future")
	default:
		sub.completedAt = parsed
	}

	for key := range content {
		if _, isItem := itemSet[key]; !isItem && key != "completedAt" {
			problems = append(problems, key+": not an item of the PHQ-9")
		}
	}
	return sub, problems
}

// store writes the submission and its outbox row in one transaction and
// returns after the commit.
func (s *server) store(ctx context.Context, sub submission) error {
	event, err := json.Marshal(map[string]interface{}{
		"submissionId": sub.id,
		"trialId":      trialID,
		"formId":       formID,
		"patientId":    sub.patientID,
		"totalScore":   sub.totalScore,
	})
	if err != nil {
		return fmt.Errorf("failed to encode outbox event: %w", err)
	}

	return s.pool.BeginFunc(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx,
			`INSERT INTO submissions (submission_id, trial_id, form_id, patient_id, completed_at, total_score, raw_answers)
			 VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			sub.id, trialID, formID, sub.patientID, sub.completedAt, sub.totalScore, sub.rawAnswers)
		if err != nil {
			return fmt.Errorf("failed to insert submission: %w", err)
		}
		_, err = tx.Exec(ctx,
			`INSERT INTO outbox_events (submission_id, event_type, payload) VALUES ($1, 'SubmissionReceived', $2)`,
			sub.id, string(event))
		if err != nil {
			return fmt.Errorf("failed to insert outbox row: %w", err)
		}
		return nil
	})
}

func writeReply(w http.ResponseWriter, status int, body reply) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(body); err != nil {
		log.Printf("failed to write reply: %v", err)
	}
}

// newUUID returns a random (version 4) UUID for a request without an
// Idempotency-Key.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("failed to read random bytes: %v", err))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}
