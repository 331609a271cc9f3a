package verify

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// Differences in every segment, with room for two segments' source rows
// at a time: the rows file is read in several passes and every row is
// still named once; --max-listed caps the list, not the counts.
func TestManifestBatches(t *testing.T) {
	pg := kmtest.PG(t)
	schema := []string{
		`CREATE TABLE big (id int PRIMARY KEY, v text)`,
		`INSERT INTO big SELECT g, 'v' || g FROM generate_series(1, 2000) g`,
	}
	kmtest.Exec(t, pg.SourceURL, schema...)
	kmtest.Exec(t, pg.TargetURL, schema...)
	kmtest.Exec(t, pg.TargetURL, `DELETE FROM big WHERE id % 100 = 50`, `UPDATE big SET v = 'x' WHERE id % 100 = 51`,
		`INSERT INTO big SELECT g, 'extra' FROM generate_series(3001, 3005) g`)
	ctx := context.Background()
	loc := filepath.Join(t.TempDir(), "m")
	if _, err := WriteManifest(ctx, ManifestWriteOptions{Source: pg.SourceURL, Location: loc, SegmentRows: 100}); err != nil {
		t.Fatal(err)
	}
	defer func(n int64) { manifestBatchRows = n }(manifestBatchRows)
	manifestBatchRows = 250
	res, _, err := CompareManifest(ctx, ManifestCompareOptions{Target: pg.TargetURL, Location: loc, MaxListed: 30})
	if err != nil {
		t.Fatal(err)
	}
	tr := res.Tables[0]
	if tr.Missing != 20 || tr.Changed != 20 || tr.Extra != 5 || len(tr.Rows) != 30 || tr.RowsNotListed != 15 || tr.SegmentsDiffer != 21 {
		t.Fatalf("missing %d changed %d extra %d listed %d not listed %d segments differ %d/%d",
			tr.Missing, tr.Changed, tr.Extra, len(tr.Rows), tr.RowsNotListed, tr.SegmentsDiffer, tr.Segments)
	}
}
