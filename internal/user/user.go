package user

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/user/internal/userdb"
)

// Errors returned by the Service.
var (
	ErrNotFound       = fault.New(fault.NotFound, "user not found")
	ErrEmailTaken     = fault.New(fault.Conflict, "an account with this email already exists")
	ErrWrongPassword  = fault.New(fault.Unauthorized, "wrong email or password")
	ErrInvalidToken   = fault.New(fault.Unauthorized, "the token is unknown, expired or revoked; sign in again")
	errTooManyLogins  = fault.New(fault.RateLimited, "too many sign-in attempts; wait and try again")
	errTooManySignUps = fault.New(fault.RateLimited, "too many sign-ups from this address; wait and try again")
	errTooManyHashers = fault.New(fault.Unavailable, "the server is busy; try again")
)

// User is an account as clients see it.
type User struct {
	ID        uuid.UUID     `json:"id"`
	Email     string        `json:"email"`
	Name      string        `json:"name"`
	Phone     *string       `json:"phone,omitempty"`
	Role      identity.Role `json:"role"`
	CreatedAt time.Time     `json:"created_at"`
}

// Session is a new bearer token and the user it belongs to.
type Session struct {
	Token string `json:"token"`
	User  User   `json:"user"`
}

// SessionCloser ends a user's live connections (WebSockets) on every
// replica; the notify domain provides it.
type SessionCloser interface {
	DisconnectUser(ctx context.Context, userID uuid.UUID) error
}

// Config tunes accounts.
type Config struct {
	// TokenTTL is how long a token works after sign-in (default 30 days).
	TokenTTL time.Duration
	// LoginLimit is how many sign-in attempts one email, and one client
	// address, may make per LoginWindow (default 10 per minute).
	LoginLimit  int
	LoginWindow time.Duration
	// LoginAddrLimit, when set, replaces LoginLimit for the attempts of one
	// client address; negative: no per-address limit (the per-email one
	// stays).
	LoginAddrLimit int
	// SignUpLimit is how many accounts one client address may create per
	// LoginWindow (default 10; negative: no limit).
	SignUpLimit int
}

func (c *Config) defaults() {
	if c.TokenTTL <= 0 {
		c.TokenTTL = 30 * 24 * time.Hour
	}
	if c.LoginLimit <= 0 {
		c.LoginLimit = 10
	}
	if c.LoginWindow <= 0 {
		c.LoginWindow = time.Minute
	}
	if c.LoginAddrLimit == 0 {
		c.LoginAddrLimit = c.LoginLimit
	}
	if c.SignUpLimit == 0 {
		c.SignUpLimit = 10
	}
}

// Service owns accounts and tokens.
type Service struct {
	pool     *pgxpool.Pool
	q        *userdb.Queries
	cfg      Config
	logger   *slog.Logger
	sessions SessionCloser
	now      func() time.Time
	// hashers bounds concurrent argon2id computations (19 MiB each), so a
	// burst of sign-ins cannot exhaust memory.
	hashers chan struct{}
	// dummyHash is checked for unknown emails, so an unknown email costs
	// as much time as a wrong password and timing does not reveal it.
	dummyHash string
}

// New returns the accounts service; sign-out closes the user's live
// connections through sessions.
func New(pool *pgxpool.Pool, cfg Config, sessions SessionCloser, logger *slog.Logger) (*Service, error) {
	cfg.defaults()
	dummy, err := hashPassword("not a real password")
	if err != nil {
		return nil, err
	}
	return &Service{
		pool: pool, q: userdb.New(pool), cfg: cfg, sessions: sessions, logger: logger, now: time.Now,
		hashers: make(chan struct{}, 2*runtime.GOMAXPROCS(0)), dummyHash: dummy,
	}, nil
}

// SignUpInput is what a new rider or driver sends.
type SignUpInput struct {
	Email    string        `json:"email"`
	Password string        `json:"password"`
	Name     string        `json:"name"`
	Role     identity.Role `json:"role"`
}

var phonePattern = regexp.MustCompile(`^\+?[0-9][0-9 ()-]{4,22}[0-9]$`)

func normalizeEmail(v *fault.Validation, email string) string {
	email = strings.ToLower(strings.TrimSpace(email))
	switch {
	case email == "":
		v.Add("email", "is required")
	case len(email) > 254:
		v.Add("email", "must be at most 254 characters")
	default:
		addr, err := mail.ParseAddress(email)
		if err != nil || addr.Address != email || !strings.Contains(email[strings.LastIndex(email, "@")+1:], ".") {
			v.Add("email", "must be an email address like name@example.com")
		}
	}
	return email
}

func checkPasswordRules(v *fault.Validation, password string) {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		v.Add("password", "must be valid UTF-8")
	case n < 8:
		v.Add("password", "must be at least 8 characters")
	case n > 128:
		v.Add("password", "must be at most 128 characters")
	}
}

func checkName(v *fault.Validation, name string) string {
	name = strings.TrimSpace(name)
	n := utf8.RuneCountInString(name)
	v.Check(n >= 1, "name", "is required")
	v.Check(n <= 100, "name", "must be at most 100 characters")
	return name
}

// Create makes an account of any role (the operator CLI uses it). It
// returns ErrEmailTaken when the email is in use, in any case.
func (s *Service) Create(ctx context.Context, in SignUpInput) (User, error) {
	return s.create(ctx, in, identity.RoleRider, identity.RoleDriver, identity.RoleOperator)
}

func (s *Service) create(ctx context.Context, in SignUpInput, roles ...identity.Role) (User, error) {
	var v fault.Validation
	in.Email = normalizeEmail(&v, in.Email)
	checkPasswordRules(&v, in.Password)
	in.Name = checkName(&v, in.Name)
	if !slices.Contains(roles, in.Role) {
		names := make([]string, len(roles))
		for i, r := range roles {
			names[i] = string(r)
		}
		v.Add("role", "must be one of: "+strings.Join(names, ", "))
	}
	if err := v.Err(); err != nil {
		return User{}, err
	}
	hash, err := s.hash(ctx, in.Password)
	if err != nil {
		return User{}, err
	}
	row, err := s.q.CreateUser(ctx, userdb.CreateUserParams{Email: in.Email, PasswordHash: hash, Name: in.Name, Role: string(in.Role)})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return User{}, ErrEmailTaken
	}
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return toUser(row), nil
}

// SignUp creates a rider or driver account and signs it in. Sign-ups are
// limited per client address (SignUpLimit per LoginWindow); over the limit
// it returns an error of kind RateLimited that carries a fault.RetryAfter.
func (s *Service) SignUp(ctx context.Context, in SignUpInput, clientAddr string) (Session, error) {
	if err := s.limitTo(ctx, errTooManySignUps, limit{"signup:addr:" + clientAddr, s.cfg.SignUpLimit}); err != nil {
		return Session{}, err
	}
	u, err := s.create(ctx, in, identity.RoleRider, identity.RoleDriver)
	if err != nil {
		return Session{}, err
	}
	tok, err := s.issueToken(ctx, u.ID)
	if err != nil {
		return Session{}, err
	}
	return Session{Token: tok, User: u}, nil
}

// SignIn checks an email and password and returns a new token. Attempts are
// limited per email and per client address; over the limit it returns an
// error of kind RateLimited that carries a fault.RetryAfter. A wrong email
// and a wrong password get the same ErrWrongPassword, after the same amount of work.
func (s *Service) SignIn(ctx context.Context, email, password, clientAddr string) (Session, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if len(email) > 254 || len(password) > 4*128 {
		return Session{}, ErrWrongPassword
	}
	if err := s.limitTo(ctx, errTooManyLogins,
		limit{"login:email:" + email, s.cfg.LoginLimit}, limit{"login:addr:" + clientAddr, s.cfg.LoginAddrLimit}); err != nil {
		return Session{}, err
	}
	row, err := s.q.GetUserByEmail(ctx, email)
	if errors.Is(err, pgx.ErrNoRows) {
		_, _ = s.check(ctx, s.dummyHash, password)
		return Session{}, ErrWrongPassword
	}
	if err != nil {
		return Session{}, fmt.Errorf("look up user: %w", err)
	}
	ok, err := s.check(ctx, row.PasswordHash, password)
	if err != nil {
		return Session{}, err
	}
	if !ok {
		return Session{}, ErrWrongPassword
	}
	tok, err := s.issueToken(ctx, row.ID)
	if err != nil {
		return Session{}, err
	}
	return Session{Token: tok, User: toUser(row)}, nil
}

// limit is a rate-limit key and the hits it may take per window; a
// negative max turns it off.
type limit struct {
	key string
	max int
}

// limitTo counts one hit against each key in the current window, shared by
// every replica through Postgres, and refuses with refusal when any key is
// over its max.
func (s *Service) limitTo(ctx context.Context, refusal error, limits ...limit) error {
	now := s.now()
	window := now.Truncate(s.cfg.LoginWindow)
	over := false
	for _, l := range limits {
		if l.max < 0 {
			continue
		}
		hits, err := s.q.HitRateLimit(ctx, userdb.HitRateLimitParams{Key: l.key, WindowStart: window})
		if err != nil {
			return fmt.Errorf("count sign-in attempt: %w", err)
		}
		if int(hits) > l.max {
			over = true
		}
	}
	if over {
		return fault.RetryAfter(refusal, window.Add(s.cfg.LoginWindow).Sub(now))
	}
	return nil
}

func (s *Service) hash(ctx context.Context, password string) (string, error) {
	release, err := s.acquireHasher(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return hashPassword(password)
}

func (s *Service) check(ctx context.Context, encoded, password string) (bool, error) {
	release, err := s.acquireHasher(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	ok, err := checkPassword(encoded, password)
	if err != nil {
		return false, fmt.Errorf("check password: %w", err)
	}
	return ok, nil
}

func (s *Service) acquireHasher(ctx context.Context) (func(), error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	select {
	case s.hashers <- struct{}{}:
		return func() { <-s.hashers }, nil
	case <-ctx.Done():
		return nil, errTooManyHashers
	}
}

// tokenHash is what is stored of a token: its SHA-256.
func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func (s *Service) issueToken(ctx context.Context, userID uuid.UUID) (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	err := s.q.CreateToken(ctx, userdb.CreateTokenParams{Hash: tokenHash(tok), UserID: userID, ExpiresAt: s.now().Add(s.cfg.TokenTTL)})
	if err != nil {
		return "", fmt.Errorf("store token: %w", err)
	}
	return tok, nil
}

// SignOut revokes the token p signed in with, at once on every replica, and
// closes the user's live connections.
func (s *Service) SignOut(ctx context.Context, p identity.Principal) error {
	userID, err := s.q.RevokeToken(ctx, p.TokenHash)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrInvalidToken
	}
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	if err := s.sessions.DisconnectUser(ctx, userID); err != nil {
		// The token is revoked; sockets check nothing more, so say so.
		s.logger.Warn("signed out, but live connections were not closed", "user_id", userID, "err", err)
	}
	return nil
}

// Get returns a user by id, or ErrNotFound.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (User, error) {
	row, err := s.q.GetUser(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("get user %s: %w", id, err)
	}
	return toUser(row), nil
}

// ProfileInput changes a profile; nil fields stay as they are, and an empty
// phone removes it.
type ProfileInput struct {
	Name  *string `json:"name"`
	Phone *string `json:"phone"`
}

// UpdateProfile changes the caller's own name or phone.
func (s *Service) UpdateProfile(ctx context.Context, id uuid.UUID, in ProfileInput) (User, error) {
	var v fault.Validation
	if in.Name != nil {
		name := checkName(&v, *in.Name)
		in.Name = &name
	}
	var phone *string
	if in.Phone != nil {
		p := strings.TrimSpace(*in.Phone)
		if p != "" {
			v.Check(phonePattern.MatchString(p), "phone", "must be a phone number such as +91 80 1234 5678")
			phone = &p
		}
	}
	if err := v.Err(); err != nil {
		return User{}, err
	}
	row, err := s.q.UpdateProfile(ctx, userdb.UpdateProfileParams{ID: id, Name: in.Name, SetPhone: in.Phone != nil, Phone: phone})
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("update profile: %w", err)
	}
	return toUser(row), nil
}

// Run deletes expired tokens and old rate-limit windows every few minutes
// until ctx is cancelled.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := s.q.DeleteExpiredTokens(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("delete expired tokens", "err", err)
		}
		if _, err := s.q.DeleteOldRateLimits(ctx, s.now().Add(-time.Hour)); err != nil && ctx.Err() == nil {
			s.logger.Warn("delete old rate limits", "err", err)
		}
	}
}

func toUser(r userdb.User) User {
	return User{ID: r.ID, Email: r.Email, Name: r.Name, Phone: r.Phone, Role: identity.Role(r.Role), CreatedAt: r.CreatedAt.UTC()}
}
