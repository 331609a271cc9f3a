package pgcopy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kwick/kwickmig/internal/pgcatalog"
	"github.com/kwick/kwickmig/internal/pgdelta"
)

// checkCapturedSet refuses a copy whose tables are not the captured tables,
// when change capture is installed on the source. final-delta applies the
// changes of the captured tables only, on top of this copy: a table copied
// but not captured would stay at the copy's snapshot on the target, its
// later changes lost; a table captured but not copied (or a partition tree
// copied in part) would have changes applied to rows the target never got.
// Both show only at cutover, so they are refused now, before any data
// moves. Capture works on partition roots, the copy on leaf partitions: a
// root counts as copied when all its partitions are.
func checkCapturedSet(ctx context.Context, src *pgx.Conn, copied []*Table) error {
	captured, err := pgdelta.CapturedTables(ctx, src)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.SQLState() == "42501" {
		return fmt.Errorf("source: change capture is installed, and this role may not read its table list to check that the copy matches it (%s): copy as the role that installed capture, or grant this role USAGE on schema kwickmig and SELECT on kwickmig.tables", pe.Message)
	}
	if err != nil {
		return err
	}
	all, err := pgcatalog.ListTables(ctx, src)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	isCopied := map[uint32]bool{}
	for _, t := range copied {
		isCopied[t.OID] = true
	}
	type tree struct {
		in, out []string // leaf tables copied, left out
	}
	trees := map[uint32]*tree{}
	names := map[uint32]pgcatalog.Name{}
	for _, t := range all {
		if t.OID == t.Root {
			names[t.OID] = t.Name
		}
		if trees[t.Root] == nil {
			trees[t.Root] = &tree{}
		}
		if t.Partitioned {
			continue
		}
		if isCopied[t.OID] {
			trees[t.Root].in = append(trees[t.Root].in, t.Name.String())
		} else {
			trees[t.Root].out = append(trees[t.Root].out, t.Name.String())
		}
	}
	var notCaptured, notCopied []string
	for root, tr := range trees {
		name := names[root].String()
		_, isCaptured := captured[root]
		switch {
		case !isCaptured && len(tr.in) > 0:
			notCaptured = append(notCaptured, name)
		case isCaptured && len(tr.out) > 0 && len(tr.in) > 0:
			notCopied = append(notCopied, fmt.Sprintf("%s (partitions left out: %s)", name, strings.Join(tr.out, ", ")))
		case isCaptured && len(tr.out) > 0:
			notCopied = append(notCopied, name)
		}
	}
	if len(notCaptured) == 0 && len(notCopied) == 0 {
		return nil
	}
	sort.Strings(notCaptured)
	sort.Strings(notCopied)
	var what, fix []string
	if len(notCaptured) > 0 {
		what = append(what, "copied but not captured: "+strings.Join(notCaptured, ", "))
		fix = append(fix, "put them under capture with `kwickmig db capture add TABLE...`, or leave them out with --exclude-table, as db capture install did")
	}
	if len(notCopied) > 0 {
		what = append(what, "captured but not copied: "+strings.Join(notCopied, ", "))
		fix = append(fix, "copy them too (drop the --table or --exclude-table that leaves them out; use the --exclude-table list given to db capture install)")
	}
	return fmt.Errorf("source: change capture is installed and this copy's tables differ from the captured tables (final-delta would lose or misapply their changes): %s; refused before copying anything: %s",
		strings.Join(what, "; "), strings.Join(fix, "; "))
}
