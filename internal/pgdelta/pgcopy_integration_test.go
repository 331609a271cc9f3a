package pgdelta_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/pgcopy"
	"github.com/kwick/kwickmig/internal/pgdelta"
)

// TestWithPgcopy runs the real sequence of cutover tools: capture install,
// db copy (internal/pgcopy) while the application writes, delta rounds while
// it keeps writing, a last round after it stops; then every table, and every
// sequence, is identical on both sides.
func TestWithPgcopy(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, `
		CREATE TABLE stores (id serial PRIMARY KEY, "Name" text NOT NULL);
		CREATE TABLE receipts (id bigserial PRIMARY KEY, store int NOT NULL REFERENCES stores (id),
			total numeric(12,2), at timestamptz DEFAULT now(), payload jsonb);
		CREATE TABLE "Receipt Lines" (receipt bigint REFERENCES receipts (id) ON DELETE CASCADE, "line" int,
			sku text, qty float8, PRIMARY KEY (receipt, "line"));
		INSERT INTO stores ("Name") SELECT 'store ' || g FROM generate_series(1, 20) g;
		INSERT INTO receipts (store, total, payload) SELECT 1 + g % 20, g * 0.25, jsonb_build_object('n', g) FROM generate_series(1, 2000) g;
		INSERT INTO "Receipt Lines" SELECT r, l, 'sku' || l, l * 0.5 FROM generate_series(1, 2000) r, generate_series(1, 3) l;`)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	src := connect(t, e.SourceURL)
	if _, err := pgdelta.Install(ctx, src, pgdelta.InstallOptions{}); err != nil {
		t.Fatal(err)
	}

	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		c := connect(t, e.SourceURL)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for wctx.Err() == nil {
				_ = pgx.BeginFunc(wctx, c, func(tx pgx.Tx) error {
					var id int64
					if err := tx.QueryRow(wctx, `INSERT INTO receipts (store, total, payload) VALUES ($1, $2, '{"late": true}') RETURNING id`,
						1+rng.IntN(20), rng.IntN(10000)).Scan(&id); err != nil {
						return err
					}
					if _, err := tx.Exec(wctx, `INSERT INTO "Receipt Lines" VALUES ($1, 1, 'x', 'NaN'), ($1, 2, 'y', 1.5)`, id); err != nil {
						return err
					}
					old := 1 + rng.Int64N(id)
					if _, err := tx.Exec(wctx, `UPDATE receipts SET total = total + 1 WHERE id = $1`, old); err != nil {
						return err
					}
					if rng.IntN(4) == 0 {
						if _, err := tx.Exec(wctx, `DELETE FROM receipts WHERE id = $1`, 1+rng.Int64N(id)); err != nil {
							return err
						}
					}
					return nil
				})
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	res, err := pgcopy.Copy(ctx, pgcopy.Options{SourceURL: e.SourceURL, TargetURL: e.TargetURL, Jobs: 2, IndexJobs: 2,
		Checkpoint: filepath.Join(t.TempDir(), "kwickmig.db")})
	if err != nil {
		t.Fatalf("pgcopy: %v", err)
	}
	if !res.Baseline {
		t.Fatal("pgcopy did not record the baseline")
	}
	tgt := connect(t, e.TargetURL)
	for i := 0; i < 2; i++ {
		if _, err := pgdelta.FinalDelta(ctx, src, tgt, pgdelta.Options{BatchRows: 200}); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	wg.Wait()
	last, err := pgdelta.FinalDelta(ctx, src, tgt, pgdelta.Options{BatchRows: 200})
	if err != nil {
		t.Fatal(err)
	}
	if last.Sequences != 2 {
		t.Errorf("sequences set %d, want 2", last.Sequences)
	}
	for _, q := range []string{
		`SELECT string_agg(x::text, E'\n' ORDER BY id) FROM stores x`,
		`SELECT string_agg(x::text, E'\n' ORDER BY id) FROM receipts x`,
		`SELECT string_agg(x::text, E'\n' ORDER BY receipt, line) FROM "Receipt Lines" x`,
		`SELECT last_value::text FROM receipts_id_seq`,
	} {
		if a, b := one(t, src, q), one(t, tgt, q); a != b {
			t.Fatalf("%s differs:\nsource %.500s\ntarget %.500s", q, a, b)
		}
	}
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func one(t *testing.T, c *pgx.Conn, q string) string {
	t.Helper()
	var s *string
	if err := c.QueryRow(context.Background(), q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if s == nil {
		return ""
	}
	return fmt.Sprint(*s)
}
