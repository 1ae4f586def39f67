package main

import (
	"fmt"
	"io"
	"strings"
)

// printTables writes the results as Markdown tables.
func printTables(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "\n`%s` — %s, started %s, took %s\n\n", rep.Command, rep.Machine, rep.Started.Format("2006-01-02 15:04 UTC"), rep.Duration)

	fmt.Fprintln(w, "| drivers × fixes/s | stations | riders waiting | system | offered fixes/s | absorbed fixes/s | CPU µs/fix (server + backend) | cores (server + backend) | load program cores | KiB/socket idle | KiB/socket busy | crossing → notification p50 / p99 (ok/trials) |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rep.Rows {
		if r.Error != "" {
			fmt.Fprintf(w, "| %s | %d | %s | %s | failed: %s |||||||\n", load(r), r.Stations, riders(r), r.System, strings.ReplaceAll(r.Error, "|", "/"))
			continue
		}
		lat := "–"
		if r.Trials > 0 {
			lat = fmt.Sprintf("%.1f / %.1f ms (%d/%d)", r.P50, r.P99, r.TrialsOK, r.Trials)
		}
		backend := ""
		if r.System != "bare" {
			backend = fmt.Sprintf(" (%.1f + %.1f)", r.ServerUs, r.BackendUs)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %.0f | %.0f%s | **%.1f**%s | %.2f + %.2f | %.2f | %.1f | %.1f | %s |\n",
			load(r), r.Stations, riders(r), r.System, r.Offered, r.Absorbed, problems(r), r.UsPerFix, backend,
			r.ServerCores, r.BackendCores, r.LoadCores, r.IdleKiB, r.BusyKiB, lat)
	}

	type key struct {
		drivers int
		rate    float64
		scaled  bool
	}
	by := map[key]map[string]Row{}
	var order []key
	for _, r := range rep.Rows {
		k := key{r.Drivers, r.Rate, r.Scaled}
		if by[k] == nil {
			by[k] = map[string]Row{}
			order = append(order, k)
		}
		by[k][r.System] = r
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Ratios (LastMile ÷ other). Fixes per CPU-second is 10⁶ ÷ µs/fix: what one core of server plus backend absorbs; above 1 LastMile does better. For µs/fix, KiB and p99, below 1 LastMile does better.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| drivers × fixes/s | absorbed ÷ bare | absorbed ÷ Redis | fixes per CPU-s ÷ bare | fixes per CPU-s ÷ Redis | KiB idle ÷ bare | KiB busy ÷ bare | KiB idle ÷ Redis | p99 ÷ Redis |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, k := range order {
		m := by[k]
		lm, ok := m["lastmile"]
		if !ok {
			continue
		}
		bare, hasBare := m["bare"]
		rd, hasRedis := m["redis"]
		cell := func(ok bool, a, b float64) string {
			if !ok || b == 0 || a == 0 {
				return "–"
			}
			return fmt.Sprintf("%.2f", a/b)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", load(lm),
			cell(hasBare, lm.Absorbed, bare.Absorbed), cell(hasRedis, lm.Absorbed, rd.Absorbed),
			cell(hasBare, bare.UsPerFix, lm.UsPerFix), cell(hasRedis, rd.UsPerFix, lm.UsPerFix),
			cell(hasBare, lm.IdleKiB, bare.IdleKiB), cell(hasBare, lm.BusyKiB, bare.BusyKiB),
			cell(hasRedis, lm.IdleKiB, rd.IdleKiB), cell(hasRedis && rd.TrialsOK > 0 && lm.TrialsOK > 0, lm.P99, rd.P99))
	}

	// Growth with 10× stations and riders: the scaled run against the
	// same load on the base catalog.
	var lines []string
	for _, k := range order {
		if !k.scaled {
			continue
		}
		baseRows, ok := by[key{k.drivers, k.rate, false}]
		if !ok {
			continue
		}
		for _, sys := range []string{"bare", "redis", "lastmile"} {
			s, ok1 := by[k][sys]
			b, ok2 := baseRows[sys]
			if !ok1 || !ok2 || b.UsPerFix == 0 {
				continue
			}
			lines = append(lines, fmt.Sprintf("| %s | %s | %d → %d | %s → %s | %.1f → %.1f | **%.2f×** | %s → %s |", sys, load(s),
				b.Stations, s.Stations, riders(b), riders(s), b.UsPerFix, s.UsPerFix, s.UsPerFix/b.UsPerFix, p99(b), p99(s)))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| system | drivers × fixes/s | stations | riders waiting | CPU µs/fix | growth | crossing p99 |")
		fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- |")
		fmt.Fprintln(w, strings.Join(lines, "\n"))
	}
	var view []string
	for _, r := range rep.Rows {
		if r.System != "lastmile" || r.Server == nil {
			continue
		}
		v := r.Server
		view = append(view, fmt.Sprintf("| %s | %d | %d | %.0f | %.0f | %.1f / %.0f / %.0f | %.0f | %.1f ms | %.1f ms |", load(r), r.Stations, r.Riders,
			v["location_approaches_per_s"], v["matching_approaches_received_per_s"],
			v["matching_transactions.matched_per_s"], v["matching_transactions.nothing_per_s"], v["matching_transactions.skipped_per_s"],
			v["location_positions_written_per_s"], v["matching_approach_to_commit_mean_ms"], v["notify_delivery_mean_ms"]))
	}
	if len(view) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "LastMile's own view of the same windows (/metrics): what matching did while the fixes flowed.")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| drivers × fixes/s | stations | riders waiting | approaches/s | offered to matching/s | match transactions/s: matched / nothing / skipped | positions written/s | approach → commit (mean) | event delivery (mean) |")
		fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
		fmt.Fprintln(w, strings.Join(view, "\n"))
	}
	for _, r := range rep.Rows {
		if r.FirstErr != "" || len(r.Errors) > 0 || r.Closes > 0 {
			fmt.Fprintf(w, "\n%s %s: trial failures %v (first: %s); server error messages %v; sockets closed by the server %d",
				r.System, load(r), r.Failures, r.FirstErr, r.Errors, r.Closes)
		}
	}
	fmt.Fprintln(w)
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "- "+n)
	}
}

func load(r Row) string {
	if r.Scaled {
		return fmt.Sprintf("%d × %g, scaled", r.Drivers, r.Rate)
	}
	return fmt.Sprintf("%d × %g", r.Drivers, r.Rate)
}

func riders(r Row) string {
	if r.System != "lastmile" {
		return "–"
	}
	return fmt.Sprint(r.Riders)
}

func p99(r Row) string {
	if r.TrialsOK == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f ms", r.P99)
}

// problems flags a window where the load was not absorbed cleanly.
func problems(r Row) string {
	var p []string
	if r.Rejected > 0 {
		p = append(p, fmt.Sprintf("%.0f/s rejected", r.Rejected))
	}
	if r.Late > 0 {
		p = append(p, fmt.Sprintf("%d late ticks", r.Late))
	}
	if r.SendErrs > 0 {
		p = append(p, fmt.Sprintf("%d send errors", r.SendErrs))
	}
	if len(p) == 0 {
		return ""
	}
	return " (" + strings.Join(p, ", ") + ")"
}
