package pgdelta

import (
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// TestImportRoundsFromManyLocations: each export writes its round to a
// directory of its own. import-delta applies the rounds it is given in
// order, each once, whichever location holds them; a gap is refused, naming
// the missing round, before anything is applied. A materialized view over
// the captured table is refreshed by the import.
func TestImportRoundsFromManyLocations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, simpleDDL, `CREATE MATERIALIZED VIEW item_totals AS SELECT count(*) AS n, sum(qty) AS qty FROM items`)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO items (name, qty) SELECT 'n' || g, g FROM generate_series(1, 50) g`)
	e.install(InstallOptions{})
	e.bulkCopy(nil)
	ctx := testCtx(t)
	src, tgt := e.src(), e.tgt()
	dirs := []DirStore{DirStore(t.TempDir()), DirStore(t.TempDir()), DirStore(t.TempDir())}
	for i, d := range dirs {
		kmtest.Exec(t, e.SourceURL, `INSERT INTO items (name, qty) SELECT 'r' || g, g FROM generate_series(1, 10) g`,
			`UPDATE items SET qty = qty + 1 WHERE id % 3 = `+string(rune('0'+i)), `DELETE FROM items WHERE id % 17 = `+string(rune('1'+i)))
		res, err := Export(ctx, src, d, Options{BatchRows: 8})
		if err != nil {
			t.Fatal(err)
		}
		if res.Rounds[0].Round != i+1 {
			t.Fatalf("export into %s wrote round %d, want %d", d, res.Rounds[0].Round, i+1)
		}
	}
	applied := func() int64 { return e.count(e.TargetURL, "SELECT count(*) FROM kwickmig.rounds WHERE round > 0") }

	// A gap: rounds 1 and 3 without 2.
	_, err := Import(ctx, tgt, Stores(dirs[0], dirs[2]), Options{})
	if err == nil || !strings.Contains(err.Error(), "round 2 missing") {
		t.Fatalf("import of rounds 1 and 3: err=%v, want 'round 2 missing'", err)
	}
	if n := applied(); n != 0 {
		t.Fatalf("the refused import applied %d rounds", n)
	}
	// Round 2 alone first: round 1 is missing.
	if _, err := Import(ctx, tgt, Stores(dirs[1]), Options{}); err == nil || !strings.Contains(err.Error(), "round 1 missing") {
		t.Fatalf("import of round 2 alone on a fresh target: err=%v, want 'round 1 missing'", err)
	}
	// One location at a time, in order.
	for i, d := range dirs[:2] {
		res, err := Import(ctx, tgt, Stores(d), Options{})
		if err != nil {
			t.Fatalf("import of %s: %v", d, err)
		}
		if len(res.Rounds) != 1 || res.Rounds[0].Round != i+1 || res.Rounds[0].Skipped {
			t.Fatalf("import of %s: %+v, want round %d applied", d, res.Rounds, i+1)
		}
	}
	// All three: 1 and 2 are skipped, 3 applied.
	res, err := Import(ctx, tgt, Stores(dirs[2], dirs[0], dirs[1]), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res.Rounds {
		got = append(got, map[bool]string{true: "skipped", false: "applied"}[r.Skipped])
	}
	if strings.Join(got, ",") != "skipped,skipped,applied" || res.Rounds[2].Round != 3 {
		t.Fatalf("import of all three: %v (%+v), want rounds 1, 2 skipped and 3 applied", got, res.Rounds)
	}
	e.assertSame()
	kmtest.Exec(t, e.SourceURL, `REFRESH MATERIALIZED VIEW item_totals`)
	sameViews(t, e, "item_totals")
	// Again: nothing applied twice.
	res, err = Import(ctx, tgt, Stores(dirs[0], dirs[1], dirs[2]), Options{})
	if err != nil || res.Rows != 0 {
		t.Fatalf("import again: %d rows, err %v; want 0 rows", res.Rows, err)
	}
	e.assertSame()
}
