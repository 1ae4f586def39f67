package user

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/mail"
	"net/netip"
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
	"github.com/lastmile/lastmile/internal/text"
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
//
// The limits count in fixed windows of LoginWindow, shared by every replica
// through Postgres. Zero means the default; a negative value turns a limit
// off. None of them lets a stranger lock an account out: what one address
// did never refuses another address.
type Config struct {
	// TokenTTL is how long a token works after sign-in (default 30 days).
	TokenTTL time.Duration
	// LoginLimit is how many sign-in attempts one client address may have
	// checked per LoginWindow (default 10). Refused attempts do not count.
	LoginLimit  int
	LoginWindow time.Duration
	// LoginFailures is how many wrong passwords one client address may try
	// for one email per LoginWindow (default 5); the same email from other
	// addresses is not affected.
	LoginFailures int
	// SignUpLimit is how many accounts one client address may create per
	// LoginWindow (default 10). Refused and invalid sign-ups do not count.
	SignUpLimit int
}

func (c *Config) defaults() {
	if c.TokenTTL <= 0 {
		c.TokenTTL = 30 * 24 * time.Hour
	}
	if c.LoginLimit == 0 {
		c.LoginLimit = 10
	}
	if c.LoginWindow <= 0 {
		c.LoginWindow = time.Minute
	}
	if c.LoginFailures == 0 {
		c.LoginFailures = 5
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

// emailLocal is the dot-atom of RFC 5322 in ASCII; emailLabel one DNS label
// of a host name (letters, digits, inner hyphens; xn-- for IDN).
var (
	emailLocal = regexp.MustCompile(`^[a-z0-9!#$%&'*+/=?^_{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_{|}~-]+)*$`)
	emailLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// normalizeEmail lower-cases email and refuses anything but a plain
// mailbox: user@host.domain, all in ASCII (an internationalised domain is
// written in its xn-- form), a dot-atom local part (no quotes, comments or
// display name) and a host name (no address literal such as [127.0.0.1] or
// bare IP). ASCII only is the rule that shuts out look-alikes (a Cyrillic
// "а" in "pаypal") and invisible characters at once, at the price of
// refusing the rare mailbox whose local part is not ASCII.
func normalizeEmail(v *fault.Validation, email string) string {
	email = strings.ToLower(strings.TrimSpace(email))
	local, domain, _ := strings.Cut(email, "@")
	if i := strings.LastIndexByte(email, '@'); i >= 0 {
		local, domain = email[:i], email[i+1:]
	}
	const want = "must be an email address like name@example.com"
	switch {
	case email == "":
		v.Add("email", "is required")
	case len(email) > 254:
		v.Add("email", "must be at most 254 characters")
	case !isPrintableASCII(email):
		v.Add("email", "must be written in ASCII letters, digits and punctuation (write an internationalised domain in its xn-- form)")
	case strings.HasPrefix(domain, "["):
		v.Add("email", "must name a host, not an address literal such as [127.0.0.1]")
	case isIP(domain):
		v.Add("email", "must name a host, not an IP address")
	case !emailLocal.MatchString(local) || len(local) > 64 || !isHostName(domain):
		v.Add("email", want)
	default:
		if addr, err := mail.ParseAddress(email); err != nil || addr.Address != email {
			v.Add("email", want)
		}
	}
	return email
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func isIP(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// isHostName reports whether host is a DNS name of at least two labels
// whose last label (the top-level domain) is not all digits.
func isHostName(host string) bool {
	labels := strings.Split(host, ".")
	if len(labels) < 2 || len(host) > 253 {
		return false
	}
	for _, l := range labels {
		if !emailLabel.MatchString(l) {
			return false
		}
	}
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
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
	case strings.TrimSpace(password) == "":
		v.Add("password", "may not be only spaces")
	case isCommonPassword(password):
		v.Add("password", "is one of the most common passwords; choose another")
	}
}

func checkName(v *fault.Validation, name string) string {
	name, problem := text.Line(name)
	n := text.Len(name)
	switch {
	case problem != "":
		v.Add("name", problem)
	case n < 1:
		v.Add("name", "is required")
	case n > 100:
		v.Add("name", "must be at most 100 characters")
	}
	return name
}

// Create makes an account of any role (the operator CLI uses it). It
// returns ErrEmailTaken when the email is in use, in any case.
func (s *Service) Create(ctx context.Context, in SignUpInput) (User, error) {
	return s.create(ctx, in, identity.RoleRider, identity.RoleDriver, identity.RoleOperator)
}

func (s *Service) create(ctx context.Context, in SignUpInput, roles ...identity.Role) (User, error) {
	in, err := validSignUp(in, roles...)
	if err != nil {
		return User{}, err
	}
	return s.insert(ctx, in)
}

// validSignUp returns in normalised, or an error naming every bad field.
func validSignUp(in SignUpInput, roles ...identity.Role) (SignUpInput, error) {
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
	return in, v.Err()
}

// insert stores a valid account.
func (s *Service) insert(ctx context.Context, in SignUpInput) (User, error) {
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

// SignUp creates a rider or driver account and signs it in. Valid sign-ups
// are limited per client address (SignUpLimit per LoginWindow); over the
// limit it returns an error of kind RateLimited that carries a fault.RetryAfter.
func (s *Service) SignUp(ctx context.Context, in SignUpInput, clientAddr string) (Session, error) {
	in, err := validSignUp(in, identity.RoleRider, identity.RoleDriver)
	if err != nil {
		return Session{}, err
	}
	if err := s.take(ctx, s.cfg.SignUpLimit, errTooManySignUps, "signup:addr:"+limitAddr(clientAddr)); err != nil {
		return Session{}, err
	}
	u, err := s.insert(ctx, in)
	if err != nil {
		return Session{}, err
	}
	tok, err := s.issueToken(ctx, u.ID)
	if err != nil {
		return Session{}, err
	}
	return Session{Token: tok, User: u}, nil
}

// SignIn checks an email and password and returns a new token. A wrong
// email and a wrong password get the same ErrWrongPassword, after the same
// amount of work.
//
// Attempts are limited so that nobody can lock an account out: an address
// that tried LoginFailures wrong passwords for an email is refused for that
// email (others, the owner's included, are not), and an address may have
// LoginLimit attempts checked in all. Refused attempts are neither checked
// nor counted. Over a limit it returns an error of kind RateLimited that
// carries a fault.RetryAfter.
func (s *Service) SignIn(ctx context.Context, email, password, clientAddr string) (Session, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if len(email) > 254 || len(password) > 4*128 {
		return Session{}, ErrWrongPassword
	}
	addr := limitAddr(clientAddr)
	failKey := "login:fail:" + addr + ":" + email
	if s.cfg.LoginFailures > 0 {
		now := s.now()
		window := now.Truncate(s.cfg.LoginWindow)
		fails, err := s.q.RateLimitHits(ctx, userdb.RateLimitHitsParams{Key: failKey, WindowStart: window})
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return Session{}, fmt.Errorf("count failed sign-ins: %w", err)
		}
		if int(fails) >= s.cfg.LoginFailures {
			return Session{}, fault.RetryAfter(errTooManyLogins, window.Add(s.cfg.LoginWindow).Sub(now))
		}
	}
	if err := s.take(ctx, s.cfg.LoginLimit, errTooManyLogins, "login:addr:"+addr); err != nil {
		return Session{}, err
	}
	row, err := s.q.GetUserByEmail(ctx, email)
	if errors.Is(err, pgx.ErrNoRows) {
		_, _ = s.check(ctx, s.dummyHash, password)
		return Session{}, s.failed(ctx, failKey)
	}
	if err != nil {
		return Session{}, fmt.Errorf("look up user: %w", err)
	}
	ok, err := s.check(ctx, row.PasswordHash, password)
	if err != nil {
		return Session{}, err
	}
	if !ok {
		return Session{}, s.failed(ctx, failKey)
	}
	tok, err := s.issueToken(ctx, row.ID)
	if err != nil {
		return Session{}, err
	}
	return Session{Token: tok, User: toUser(row)}, nil
}

// failed counts a wrong password against key and returns ErrWrongPassword.
func (s *Service) failed(ctx context.Context, key string) error {
	if s.cfg.LoginFailures <= 0 {
		return ErrWrongPassword
	}
	if _, err := s.q.HitRateLimit(ctx, userdb.HitRateLimitParams{Key: key, WindowStart: s.now().Truncate(s.cfg.LoginWindow)}); err != nil {
		return fmt.Errorf("count failed sign-in: %w", err)
	}
	return ErrWrongPassword
}

// take counts one hit against key in the current window when the key is
// under max, shared by every replica through Postgres; at max it writes
// nothing and refuses with refusal. A max of zero or less is no limit.
func (s *Service) take(ctx context.Context, max int, refusal error, key string) error {
	if max <= 0 {
		return nil
	}
	now := s.now()
	window := now.Truncate(s.cfg.LoginWindow)
	_, err := s.q.TakeRateLimit(ctx, userdb.TakeRateLimitParams{Key: key, WindowStart: window, Max: int32(min(max, math.MaxInt32))})
	if errors.Is(err, pgx.ErrNoRows) {
		return fault.RetryAfter(refusal, window.Add(s.cfg.LoginWindow).Sub(now))
	}
	if err != nil {
		return fmt.Errorf("count attempt: %w", err)
	}
	return nil
}

// limitAddr is the part of a client address that limits count against:
// the address itself for IPv4, its /64 for IPv6 (one subscriber usually
// holds a whole /64, so counting single IPv6 addresses limits nothing).
func limitAddr(clientAddr string) string {
	a, err := netip.ParseAddr(clientAddr)
	if err != nil {
		return clientAddr
	}
	if a = a.Unmap().WithZone(""); a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
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

// validate returns in with its name normalised and the phone to store (nil
// to remove it, when in.Phone is set), or an error naming every bad field.
func (in ProfileInput) validate() (ProfileInput, *string, error) {
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
	return in, phone, v.Err()
}

// UpdateProfile changes the caller's own name or phone.
func (s *Service) UpdateProfile(ctx context.Context, id uuid.UUID, in ProfileInput) (User, error) {
	in, phone, err := in.validate()
	if err != nil {
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
