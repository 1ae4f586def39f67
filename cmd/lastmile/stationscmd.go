package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/lastmile/lastmile/internal/station"
)

// runStations is `lastmile stations import FILE`: a GTFS .zip or a bare
// stops.txt, imported in one transaction.
func runStations(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "import" {
		return errors.New("usage: lastmile stations import FILE   (a GTFS .zip or stops.txt)")
	}
	var cfg config
	fs := newFlagSet("stations import", "lastmile stations import [flags] FILE", stderr)
	cfg.register(fs)
	if err := cfg.parse(fs, args[1:], getenv); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: lastmile stations import [flags] FILE   (a GTFS .zip or stops.txt)")
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
	res, err := station.New(d.pool, logger).ImportGTFSFile(ctx, fs.Arg(0))
	if err != nil {
		return fmt.Errorf("import %s: %w", fs.Arg(0), err)
	}
	fmt.Fprintf(stdout, "imported %d stations: %d created, %d updated, %d unchanged; %d other stops ignored\n",
		res.Stations, res.Created, res.Updated, res.Unchanged, res.Ignored)
	return nil
}
