package pgcopy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// Foreign keys are added in two steps, as pg_dump's single
// "ADD CONSTRAINT … FOREIGN KEY" would do them in one:
//
//  1. ADD CONSTRAINT … NOT VALID, every key, on one connection: no scan,
//     only a brief lock;
//  2. VALIDATE CONSTRAINT, which checks the existing rows just as ADD would
//     and leaves the same validated constraint behind.
//
// Why: ADD CONSTRAINT holds SHARE ROW EXCLUSIVE on both tables for the
// whole check, so two keys touching the same table (receipt_lines →
// receipts and receipts → customers) wait for each other. VALIDATE holds
// only SHARE UPDATE EXCLUSIVE on the referencing table and ROW SHARE on the
// referenced one, so checks of different tables run side by side; checks of
// the same table are grouped on one connection instead of blocking a job.

// fkSteps is one foreign key split into its two statements.
type fkSteps struct {
	e        entry
	add      string    // ADD CONSTRAINT … NOT VALID
	validate string    // VALIDATE CONSTRAINT
	name     string    // the constraint's name as pg_dump wrote it (quoted if needed)
	prefix   string    // "ALTER TABLE [ONLY] schema.table"
	table    [2]string // the referencing table
}

// splitFK parses pg_dump's "ALTER TABLE [ONLY] s.t ADD CONSTRAINT c
// FOREIGN KEY …;". ok is false for anything else, and for a key the source
// itself has NOT VALID (it must stay so, unchecked).
func splitFK(e entry) (fkSteps, bool) {
	tk := &tokens{s: e.SQL}
	if !tk.keyword("ALTER") || !tk.keyword("TABLE") {
		return fkSteps{}, false
	}
	tk.keyword("ONLY")
	schema, ok1 := tk.ident()
	if !ok1 || !tk.punct('.') {
		return fkSteps{}, false
	}
	name, ok2 := tk.ident()
	prefix := e.SQL[:tk.i]
	if !ok2 || !tk.keyword("ADD") || !tk.keyword("CONSTRAINT") {
		return fkSteps{}, false
	}
	tk.skipSpace()
	start := tk.i
	if _, ok := tk.ident(); !ok {
		return fkSteps{}, false
	}
	constraint := e.SQL[start:tk.i]
	if !tk.keyword("FOREIGN") || strings.Contains(strings.ToUpper(e.SQL[tk.i:]), "NOT VALID") {
		return fkSteps{}, false
	}
	body := strings.TrimRight(e.SQL, "; \t\r\n")
	return fkSteps{
		e:        e,
		add:      body + " NOT VALID;",
		validate: prefix + " VALIDATE CONSTRAINT " + constraint + ";",
		table:    [2]string{schema, name},
		name:     constraint,
		prefix:   prefix,
	}, true
}

// applyFKs adds the foreign keys: split ones in two steps (above), the
// others (and any the server refuses to add NOT VALID, such as keys on
// partitioned tables in older releases) as pg_dump wrote them.
func (r *postDataRunner) applyFKs(ctx context.Context, preamble []string, fks []entry) error {
	var split []fkSteps
	var whole []entry
	for _, e := range fks {
		if s, ok := splitFK(e); ok {
			split = append(split, s)
		} else {
			whole = append(whole, e)
		}
	}
	if len(split) > 0 {
		conn, err := r.session(ctx, preamble)
		if err != nil {
			return err
		}
		var added []fkSteps
		for _, s := range split {
			err := conn.PgConn().Exec(ctx, s.add).Close()
			var pe *pgconn.PgError
			switch {
			case err == nil:
				// A key referencing a partitioned table has copies per
				// partition that VALIDATE would leave NOT VALID: drop it
				// and add it whole, as pg_dump wrote it.
				clones, cerr := pgutil.HasFKClones(ctx, conn, pgutil.QualifiedName(s.table[0], s.table[1]), unquoteIdent(s.name))
				if cerr == nil && clones {
					cerr = conn.PgConn().Exec(ctx, s.prefix+" DROP CONSTRAINT "+s.name+";").Close()
					if cerr == nil {
						whole = append(whole, s.e)
						continue
					}
				}
				if cerr != nil {
					conn.Close(context.Background())
					return fmt.Errorf("target: create fk constraint %s: %s", s.e.Name, oneLine(cerr))
				}
				added = append(added, s)
			case errors.As(err, &pe) && pe.Code == "42710" && r.resume:
				added = append(added, s) // added by the interrupted run; validate it
			case errors.As(err, &pe) && (pe.Code == "0A000" || pe.Code == "42809"):
				// feature_not_supported / wrong_object_type: PostgreSQL
				// before 18 refuses NOT VALID keys on partitioned tables.
				whole = append(whole, s.e)
			default:
				conn.Close(context.Background())
				return fmt.Errorf("target: create fk constraint %s: %s", s.e.Name, oneLine(err))
			}
		}
		conn.Close(context.Background())
		if err := r.validateFKs(ctx, preamble, added); err != nil {
			return err
		}
	}
	return r.run(ctx, preamble, whole, r.jobs)
}

// validateFKs validates the keys with r.jobs connections, the keys of one
// referencing table in turn on one connection (their locks conflict).
func (r *postDataRunner) validateFKs(ctx context.Context, preamble []string, fks []fkSteps) error {
	var order [][2]string
	groups := map[[2]string][]fkSteps{}
	for _, s := range fks {
		if _, ok := groups[s.table]; !ok {
			order = append(order, s.table)
		}
		groups[s.table] = append(groups[s.table], s)
	}
	ch := make(chan []fkSteps, len(order))
	for _, t := range order {
		ch <- groups[t]
	}
	close(ch)
	g, ctx := errgroup.WithContext(ctx)
	for range min(r.jobs, len(order)) {
		g.Go(func() error {
			conn, err := r.session(ctx, preamble)
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			for group := range ch {
				for _, s := range group {
					if err := r.exec(ctx, conn, s.e, s.validate); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// unquoteIdent turns an identifier as pg_dump writes it ("Foo""x" or foo)
// into the name it stands for.
func unquoteIdent(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return s
}
