package pgdelta

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/kmtest"
)

func TestOfflineExportImportExactlyOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, simpleDDL)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO items (name, qty) SELECT 'n' || g, g FROM generate_series(1, 50) g`)
	e.install(InstallOptions{})
	// changes before the copy: in the log and in the baseline; import must skip them
	kmtest.Exec(t, e.SourceURL, `UPDATE items SET qty = -qty WHERE id <= 10`, `DELETE FROM items WHERE id = 50`)
	e.bulkCopy(nil)
	dir := DirStore(t.TempDir())
	ctx := testCtx(t)
	src := e.src()

	kmtest.Exec(t, e.SourceURL, `INSERT INTO items (name, qty) SELECT 'm' || g, g FROM generate_series(1, 30) g`,
		`UPDATE items SET note = 'x' WHERE id % 4 = 0`)
	r1, err := Export(ctx, src, dir, Options{BatchRows: 7})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Rounds[0].Round != 1 || r1.Rounds[0].Files < 2 {
		t.Fatalf("round 1 = %+v, want round 1 in several files", r1.Rounds[0])
	}
	kmtest.Exec(t, e.SourceURL, `DELETE FROM items WHERE id % 5 = 0`, `UPDATE items SET id = id + 1000 WHERE id = 3`)
	r2, err := Export(ctx, src, dir, Options{BatchRows: 7})
	if err != nil {
		t.Fatal(err)
	}
	if r2.Rounds[0].Round != 2 {
		t.Fatalf("second export round %d, want 2", r2.Rounds[0].Round)
	}
	// an export with nothing new still makes a (empty) round
	if _, err := Export(ctx, src, dir, Options{}); err != nil {
		t.Fatal(err)
	}

	tgt := e.tgt()
	res, err := Import(ctx, tgt, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rounds) != 3 || res.Rows == 0 {
		t.Fatalf("import: %d rounds, %d rows; want 3 rounds, > 0 rows", len(res.Rounds), res.Rows)
	}
	e.assertSame()
	// import twice: nothing applied again
	res, err = Import(ctx, tgt, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Rounds {
		if !r.Skipped || r.Rows != 0 {
			t.Fatalf("second import round %+v, want skipped", r)
		}
	}
	e.assertSame()
	if got, want := e.count(e.TargetURL, `SELECT count(*) FROM kwickmig.batches`), e.count(e.TargetURL, `SELECT count(*) FROM kwickmig.batches`); got != want || got == 0 {
		t.Fatalf("batches %d", got)
	}

	// a corrupted file is refused before anything of it is applied
	kmtest.Exec(t, e.SourceURL, `INSERT INTO items (name) VALUES ('late')`)
	if _, err := Export(ctx, src, dir, Options{}); err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(string(dir), partName(4, 1))
	data, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(part, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Import(ctx, tgt, dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("import of corrupted file: err=%v, want SHA-256 mismatch", err)
	}
}

// TestImportCrashResume: import-delta dies inside its second part; the next
// import applies the remaining parts only.
func TestImportCrashResume(t *testing.T) {
	e := newEnv(t, simpleDDL)
	e.install(InstallOptions{})
	e.bulkCopy(nil)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO items (name, qty) SELECT 'n' || g, g FROM generate_series(1, 100) g`,
		`UPDATE items SET qty = qty + 1 WHERE id % 3 = 0`)
	dir := DirStore(t.TempDir())
	if _, err := Export(testCtx(t), e.src(), dir, Options{BatchRows: 30}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	testHookBatch = func(context.Context, pgx.Tx) error {
		calls++
		if calls == 2 {
			return errors.New("simulated crash")
		}
		return nil
	}
	t.Cleanup(func() { testHookBatch = nil })
	if _, err := Import(testCtx(t), e.tgt(), dir, Options{}); err == nil || !strings.Contains(err.Error(), "simulated crash") {
		t.Fatalf("err=%v, want the simulated crash", err)
	}
	if got := e.count(e.TargetURL, `SELECT count(*) FROM kwickmig.batches`); got != 1 {
		t.Fatalf("%d parts recorded after the crash, want 1", got)
	}
	testHookBatch = nil
	res, err := Import(testCtx(t), e.tgt(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 100+33-30 {
		t.Fatalf("resumed import applied %d changes, want %d", res.Rows, 100+33-30)
	}
	e.assertSame()
}
