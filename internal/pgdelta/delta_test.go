package pgdelta

import (
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
)

const simpleDDL = `CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, qty int, note text)`

func TestFinalDeltaEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, simpleDDL)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO items (name, qty) SELECT 'n' || g, g FROM generate_series(1, 100) g`)
	e.install(InstallOptions{})
	kmtest.Exec(t, e.SourceURL, `INSERT INTO items (name, qty) VALUES ('before-copy', 1)`)
	e.bulkCopy(nil)
	kmtest.Exec(t, e.SourceURL,
		`INSERT INTO items (name, qty) SELECT 'm' || g, g FROM generate_series(1, 50) g`,
		`UPDATE items SET qty = qty * 10 WHERE id % 3 = 0`,
		`DELETE FROM items WHERE id % 7 = 0`)
	res := e.finalDelta(Options{BatchRows: 17})
	if res.Rows == 0 {
		t.Fatalf("rows=%d, want > 0", res.Rows)
	}
	e.assertSame()
	// sequences follow the source
	if got, want := e.count(e.TargetURL, `SELECT last_value FROM items_id_seq`), e.count(e.SourceURL, `SELECT last_value FROM items_id_seq`); got != want {
		t.Fatalf("target sequence %d, want %d", got, want)
	}
	// a second round has nothing to do
	res = e.finalDelta(Options{})
	if res.Rows != 0 {
		t.Fatalf("second round rows=%d, want 0", res.Rows)
	}
	e.assertSame()
}
