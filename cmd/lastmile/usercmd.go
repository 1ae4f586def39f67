package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/google/uuid"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/user"
)

// runUser is `lastmile user create --role R --email E --name N`; the
// password is read from stdin (a prompt without echo on a terminal), never
// from a flag, where it would end up in shell history and ps output.
func runUser(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: lastmile user create --role operator --email E --name N  (password on stdin)")
	}
	var cfg config
	fs := newFlagSet("user create", "lastmile user create --role operator --email E --name N   (password on stdin)", stderr)
	cfg.register(fs)
	role := fs.String("role", "operator", "rider | driver | operator")
	email := fs.String("email", "", "the account's email")
	name := fs.String("name", "", "the account's name")
	if err := cfg.parse(fs, args[1:], getenv); err != nil {
		return err
	}
	password, err := readPassword(stdin, stderr)
	if err != nil {
		return err
	}
	logger, err := cfg.newLogger(stderr)
	if err != nil {
		return err
	}
	d, err := cfg.openDatabase(ctx, logger, 2)
	if err != nil {
		return err
	}
	defer d.close()
	users, err := user.New(d.pool, user.Config{}, noSockets{}, logger)
	if err != nil {
		return err
	}
	u, err := users.Create(ctx, user.SignUpInput{Email: *email, Password: password, Name: *name, Role: identity.Role(*role)})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s %s (%s)\n", u.Role, u.Email, u.ID)
	return nil
}

// noSockets stands where notify would in a command that serves no
// sockets: the user command creates accounts and signs nobody out.
type noSockets struct{}

func (noSockets) DisconnectUser(context.Context, uuid.UUID) error {
	return errors.New("the user command holds no live connections; sign out through the server")
}

func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(b), nil
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on stdin: pipe it in, for example printf '%s\\n' \"$PASSWORD\" | lastmile user create")
	}
	return line, nil
}
