package verify

import (
	"context"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// TestBisect damages rows inside large segments and checks that bisection
// (segments of 2,000 rows, leaves of 10) finds exactly those rows, on a
// single and on a composite key.
func TestBisect(t *testing.T) {
	pg := kmtest.PG(t)
	schema := []string{
		`CREATE TABLE big (id int PRIMARY KEY, v text)`,
		`INSERT INTO big SELECT g, 'v' || g FROM generate_series(1, 6000) g`,
		`CREATE TABLE pairs (a text, b int, v int, PRIMARY KEY (a, b))`,
		`INSERT INTO pairs SELECT 'k' || (g % 50), g, g FROM generate_series(1, 6000) g`,
	}
	kmtest.Exec(t, pg.SourceURL, schema...)
	kmtest.Exec(t, pg.TargetURL, schema...)
	kmtest.Exec(t, pg.TargetURL,
		`UPDATE big SET v = 'changed' WHERE id = 2500`,
		`DELETE FROM big WHERE id IN (2501, 5999)`,
		`INSERT INTO big VALUES (7000, 'extra')`,
		`UPDATE pairs SET v = NULL WHERE a = 'k7' AND b = 1007`)

	res, err := VerifyDB(context.Background(), DBOptions{Source: pg.SourceURL, Target: pg.TargetURL,
		SegmentRows: 2000, LeafRows: 10, Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, tr := range res.Tables {
		var rows []string
		for _, d := range tr.Rows {
			rows = append(rows, d.Kind+" "+d.Key+" "+strings.Join(d.Columns, ","))
		}
		got[tr.Table] = strings.Join(rows, "; ")
		if tr.Segments < 3 {
			t.Errorf("%s: %d segments, want at least 3", tr.Table, tr.Segments)
		}
	}
	want := map[string]string{
		"public.big":   "changed id=2500 v; extra id=7000 ; missing id=2501 ; missing id=5999 ",
		"public.pairs": "changed a=k7, b=1007 v",
	}
	for table, w := range want {
		if got[table] != w {
			t.Errorf("%s: %q, want %q", table, got[table], w)
		}
	}
	if res.OK() || res.TablesDiffer != 2 {
		t.Fatalf("OK %v, differing tables %d", res.OK(), res.TablesDiffer)
	}
}
