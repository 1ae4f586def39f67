package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoBinaries means no local Postgres installation was found.
var ErrNoBinaries = errors.New("no Postgres binaries found (looked on PATH, with pg_config --bindir, and under /usr/lib/postgresql/*/bin); " +
	"install them (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql) or set DATABASE_URL to an existing database")

// PrivateOptions configures a private Postgres server.
type PrivateOptions struct {
	// Dir is the data folder; the cluster lives in Dir/pg and its log in Dir/postgres.log.
	Dir string
	// Database is created if missing and named in URL.
	Database string
	// Fast turns off fsync: for tests only, a crash may lose data.
	Fast bool
	// Logger receives progress messages.
	Logger *slog.Logger
	// SocketDir, when set, is the folder for the server's Unix socket (it
	// must exist and be short); it is kept on Stop, so a server started
	// again on it has the same URL. Unset: a new temporary folder.
	SocketDir string
}

// Private is a Postgres server started by this process from the local
// binaries, listening only on a Unix socket in a private folder.
type Private struct {
	// URL connects to the private database.
	URL string
	// AdminURL connects to the maintenance database "postgres".
	AdminURL string

	cmd      *exec.Cmd
	done     chan struct{}
	waitErr  error
	sockDir  string
	keepSock bool
	logger   *slog.Logger
}

// installGlob is where Debian and Ubuntu install Postgres versions.
var installGlob = "/usr/lib/postgresql/*/bin"

// FindBinaries returns the folder holding initdb and postgres: from PATH,
// from `pg_config --bindir`, or the newest /usr/lib/postgresql/*/bin.
func FindBinaries() (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
		if has(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); has(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob(installGlob)
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	return "", ErrNoBinaries
}

func versionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

// childCredential returns the credential to run Postgres as: nil when this
// process is not root, else the "postgres" user (or "nobody"), since
// initdb and postgres refuse to run as root.
func childCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root, and neither a postgres nor a nobody user exists to run Postgres as; run as a normal user or set DATABASE_URL")
}

func chownTree(root string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	return filepath.Walk(root, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(cred.Uid), int(cred.Gid))
	})
}

// StartPrivate starts (creating on first use) a Postgres cluster in
// opts.Dir and returns once it accepts connections and opts.Database exists.
// Data survives a restart. Stop it with Stop.
func StartPrivate(ctx context.Context, opts PrivateOptions) (*Private, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := childCredential()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("data folder %s: %w", opts.Dir, err)
	}
	pgdata := filepath.Join(dir, "pg")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	if cred != nil {
		// Running as root: Postgres runs as another user, who must be able
		// to walk down to the data folder.
		probe := exec.CommandContext(ctx, "test", "-x", dir)
		probe.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if err := probe.Run(); err != nil {
			return nil, fmt.Errorf("data folder %s is not reachable by the user Postgres runs as (uid %d): "+
				"a parent folder is closed to others; choose another --data or open the parents with chmod o+x", dir, cred.Uid)
		}
	}
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open postgres log: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor

	attr := func() *syscall.SysProcAttr {
		// Own process group: a Ctrl-C on the terminal reaches only us, and we
		// stop Postgres cleanly. Pdeathsig stops it if we die without doing so.
		return &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGINT}
	}

	if _, err := os.Stat(filepath.Join(pgdata, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		logger.Info("creating private postgres cluster", "dir", pgdata, "bin", bin)
		if err := os.MkdirAll(pgdata, 0o700); err != nil {
			return nil, fmt.Errorf("create cluster folder: %w", err)
		}
		if err := chownTree(pgdata, cred); err != nil {
			return nil, fmt.Errorf("give cluster folder to the postgres user: %w", err)
		}
		initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
			"-D", pgdata, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions")
		if opts.Fast {
			initdb.Args = append(initdb.Args, "--no-sync")
		}
		initdb.SysProcAttr = attr()
		initdb.Stdout, initdb.Stderr = logFile, logFile
		if err := initdb.Run(); err != nil {
			return nil, fmt.Errorf("initdb failed (see %s; the folder must be reachable by the user Postgres runs as): %w", logPath, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("inspect cluster folder: %w", err)
	}
	if err := chownTree(logPath, cred); err != nil {
		return nil, fmt.Errorf("give postgres log to the postgres user: %w", err)
	}

	// A short socket folder: Unix socket paths are limited to ~100 bytes.
	sockDir, keepSock := opts.SocketDir, opts.SocketDir != ""
	if !keepSock {
		if sockDir, err = os.MkdirTemp("", "lastmile-pg-"); err != nil {
			return nil, fmt.Errorf("create socket folder: %w", err)
		}
	}
	removeSock := func() {
		if !keepSock {
			os.RemoveAll(sockDir)
		}
	}
	if err := chownTree(sockDir, cred); err != nil {
		removeSock()
		return nil, fmt.Errorf("give socket folder to the postgres user: %w", err)
	}
	args := []string{"-D", pgdata, "-k", sockDir, "-c", "listen_addresses=", "-c", "max_connections=300"}
	if opts.Fast {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.SysProcAttr = attr()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		removeSock()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	p := &Private{cmd: cmd, done: make(chan struct{}), sockDir: sockDir, keepSock: keepSock, logger: logger}
	go func() { // owned by p: ends when the child exits
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	p.AdminURL = fmt.Sprintf("postgres://postgres@/postgres?host=%s&sslmode=disable", sockDir)
	p.URL = fmt.Sprintf("postgres://postgres@/%s?host=%s&sslmode=disable", opts.Database, sockDir)

	if err := p.waitReady(ctx, logPath); err != nil {
		p.Stop()
		return nil, err
	}
	if err := p.ensureDatabase(ctx, opts.Database); err != nil {
		p.Stop()
		return nil, err
	}
	logger.Info("private postgres ready", "dir", pgdata, "socket", sockDir)
	return p, nil
}

func (p *Private) waitReady(ctx context.Context, logPath string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := pgx.Connect(ctx, p.AdminURL)
		if err == nil {
			c.Close(ctx)
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("postgres exited at start (is another lastmile using this data folder? see %s): %v", logPath, p.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections within 60s (see %s): %w", logPath, err)
		}
	}
}

func (p *Private) ensureDatabase(ctx context.Context, name string) error {
	if name == "" || name == "postgres" {
		return nil
	}
	c, err := pgx.Connect(ctx, p.AdminURL)
	if err != nil {
		return fmt.Errorf("connect to private postgres: %w", err)
	}
	defer c.Close(ctx)
	var exists bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// PID is the postmaster's process id (its backends are its children).
func (p *Private) PID() int { return p.cmd.Process.Pid }

// Stop shuts Postgres down cleanly (fast shutdown: sessions are ended,
// committed data is flushed), waiting up to 30 s before killing it.
func (p *Private) Stop() error {
	if !p.keepSock {
		defer os.RemoveAll(p.sockDir)
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
		p.logger.Info("private postgres stopped")
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New("private postgres did not stop within 30s and was killed")
	}
}
