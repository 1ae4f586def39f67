package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Without any Postgres installation, starting says how to get one or how
// to use an existing database instead.
func TestNoBinariesSaysWhatToDo(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no initdb, no pg_config
	old := installGlob
	installGlob = t.TempDir() + "/*/bin"
	defer func() { installGlob = old }()

	_, err := StartPrivate(context.Background(), PrivateOptions{Dir: t.TempDir(), Database: "x"})
	if !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("StartPrivate = %v, want ErrNoBinaries", err)
	}
	for _, want := range []string{"apt-get install postgresql", "DATABASE_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the message %q does not mention %q", err, want)
		}
	}
}
