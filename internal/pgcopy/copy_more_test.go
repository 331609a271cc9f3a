package pgcopy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/kmtest"
)

const hostileSchema = `
CREATE SCHEMA "My Schema";
CREATE TYPE "My Schema"."Mood Type" AS ENUM ('a b', 'c"d', 'e''f');
CREATE TABLE "My Schema"."Order Lines" ("Select" int PRIMARY KEY, "MixedCase" text, "with space" "My Schema"."Mood Type", "from" int);
CREATE TABLE public."weird""name" (id bigserial PRIMARY KEY, "user" text, "Order" "My Schema"."Mood Type"[]);
CREATE TABLE public."MixedCase" ("ID" int, "group" text UNIQUE);
CREATE SEQUENCE "My Schema"."Weird Seq";
SELECT setval('"My Schema"."Weird Seq"', 41);
CREATE INDEX "Idx ""quoted""" ON "My Schema"."Order Lines" ("MixedCase", "from");
INSERT INTO "My Schema"."Order Lines" SELECT i, 'v' || i, 'c"d', i FROM generate_series(1, 50) i;
INSERT INTO public."weird""name" ("user", "Order") VALUES ('x', '{"a b","e''f"}'), ('y', NULL);
INSERT INTO public."MixedCase" VALUES (1, 'g1'), (2, 'g2');
`

func TestCopyHostileIdentifiers(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, hostileSchema)
	res, err := Copy(ctxT(t), testOptions(t, e))
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	sameTables(t, e, 54, `"My Schema"."Order Lines"`, `public."weird""name"`, `public."MixedCase"`)
	if got := queryInt(t, e.TargetURL, `SELECT last_value FROM "My Schema"."Weird Seq"`); got != 41 {
		t.Errorf(`"Weird Seq" last_value=%d, want 41`, got)
	}
	if got := queryInt(t, e.TargetURL, `SELECT count(*) FROM pg_indexes WHERE indexname = 'Idx "quoted"'`); got != 1 {
		t.Errorf(`index "Idx ""quoted""" count=%d, want 1`, got)
	}
	if len(res.Tables) != 3 {
		t.Errorf("tables=%d, want 3", len(res.Tables))
	}
}

func TestCopyTableFilter(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, hostileSchema)
	for _, tc := range []struct {
		name             string
		include, exclude []string
		want             []string
		wantErr          string
	}{
		{name: "include quoted", include: []string{`"My Schema"."Order Lines"`}, want: []string{`"My Schema"."Order Lines"`}},
		{name: "include plain", include: []string{`My Schema.Order Lines`, `"weird""name"`}, want: []string{`"My Schema"."Order Lines"`, `"public"."weird""name"`}},
		{name: "exclude", exclude: []string{`"My Schema"."Order Lines"`, `MixedCase`}, want: []string{`"public"."weird""name"`}},
		{name: "unknown", include: []string{"nosuch"}, wantErr: "table nosuch not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustConnect(t, e.SourceURL)
			tables, _, err := listTables(context.Background(), c, tc.include, tc.exclude)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err=%v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tb := range tables {
				got = append(got, tb.QName())
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("tables=%v, want %v", got, tc.want)
			}
		})
	}
}

// bigTable makes a table of about 2.7 MB (330 pages) that splits at 256 kB.
const bigTable = `CREATE TABLE big (id bigint PRIMARY KEY, pad text, j jsonb);
INSERT INTO big SELECT i, repeat(md5(i::text), 3), jsonb_build_object('i', i) FROM generate_series(1, 20000) i;`

func TestCopySplitRanges(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, bigTable)
	opts := testOptions(t, e)
	opts.SplitLargerThan = 256 << 10
	res, err := Copy(ctxT(t), opts)
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	if len(res.Tables) != 1 || res.Tables[0].Parts < 5 {
		t.Fatalf("tables=%+v, want one table in at least 5 parts", res.Tables)
	}
	if res.Tables[0].Rows != 20000 {
		t.Errorf("rows=%d, want 20000", res.Tables[0].Rows)
	}
	sameTables(t, e, 20000, "public.big")
}

func TestSplitRanges(t *testing.T) {
	for _, tc := range []struct {
		size, split int64
		want        string
	}{
		{size: 100 << 20, split: -1, want: "[{0 0}]"},
		{size: 1 << 20, split: 1 << 20, want: "[{0 0}]"},
		{size: 3 << 20, split: 1 << 20, want: "[{0 128} {128 256} {256 0}]"},
		{size: (3 << 20) + 1, split: 1 << 20, want: "[{0 97} {97 194} {194 291} {291 0}]"},
	} {
		if got := fmt.Sprint(splitRanges(tc.size, tc.split, 8192)); got != tc.want {
			t.Errorf("splitRanges(%d, %d)=%s, want %s", tc.size, tc.split, got, tc.want)
		}
	}
}

func TestCopyResumeAfterFailure(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, bigTable, `CREATE TABLE small (id int PRIMARY KEY); INSERT INTO small SELECT generate_series(1, 100)`)
	opts := testOptions(t, e)
	opts.SplitLargerThan = 256 << 10
	opts.Jobs = 1
	var loaded atomic.Int32
	induced := errors.New("induced failure")
	opts.testHookPartLoaded = func(p *Part) error {
		if loaded.Add(1) == 3 {
			return induced
		}
		return nil
	}
	if _, err := Copy(ctxT(t), opts); !errors.Is(err, induced) {
		t.Fatalf("first run err=%v, want the induced failure", err)
	}
	partial := queryInt(t, e.TargetURL, "SELECT count(*) FROM big")
	if partial == 0 || partial == 20000 {
		t.Fatalf("after the failure target has %d rows, want a partial load", partial)
	}
	// Without --resume the half-loaded target is refused.
	opts.testHookPartLoaded = nil
	if _, err := Copy(ctxT(t), opts); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("rerun without --resume err=%v, want an 'already exists' refusal", err)
	}
	// The source moves on (a live source always does): the resumed run
	// reads a new snapshot, so the split table, three of whose parts are
	// from the old one, is reloaded whole (resume.go).
	kmtest.Exec(t, e.SourceURL, `UPDATE small SET id = id WHERE id = 1`)
	opts.Resume = true
	res, err := Copy(ctxT(t), opts)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	sameTables(t, e, 20100, "public.big", "public.small")
	resumed := 0
	for _, tb := range res.Tables {
		resumed += tb.Resumed
	}
	if resumed != 0 {
		t.Errorf("parts kept on resume=%d, want 0 (big reloaded whole in the new snapshot)", resumed)
	}
}

func TestCopyRefusesBadTargets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, target string
		dataOnly     bool
		resume       bool
		wantErr      string
	}{
		{name: "non-empty", target: `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (99, 'old')`, dataOnly: true,
			wantErr: `table "public"."t" is not empty`},
		{name: "existing schema", target: `CREATE TABLE t (id int PRIMARY KEY, v text)`,
			wantErr: `table "public"."t" already exists`},
		{name: "missing column", target: `CREATE TABLE t (id int PRIMARY KEY)`, dataOnly: true,
			wantErr: `column "v" (text) missing on target`},
		{name: "other type", target: `CREATE TABLE t (id int PRIMARY KEY, v varchar(3))`, dataOnly: true,
			wantErr: `column "v" is text on source, character varying(3) on target`},
		{name: "extra column", target: `CREATE TABLE t (id int PRIMARY KEY, v text, w int)`, dataOnly: true,
			wantErr: `column "w" (integer) only on target`},
		{name: "missing table", target: `SELECT 1`, dataOnly: true, wantErr: `table "public"."t" does not exist`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := kmtest.PG(t)
			kmtest.Exec(t, e.SourceURL, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b');
				CREATE TABLE u (id int); INSERT INTO u VALUES (1)`)
			kmtest.Exec(t, e.TargetURL, tc.target, `CREATE TABLE IF NOT EXISTS u (id int)`)
			opts := testOptions(t, e)
			opts.DataOnly = tc.dataOnly
			_, err := Copy(ctxT(t), opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err=%v, want %q", err, tc.wantErr)
			}
			// Nothing moved: u (checked in the same pass) is still empty.
			if got := queryInt(t, e.TargetURL, "SELECT count(*) FROM u"); got != 0 {
				t.Errorf("target u rows=%d, want 0 (no data may move)", got)
			}
		})
	}
}

func TestCopyTableDroppedDuringCopy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, ddl string }{
		{"drop", `DROP TABLE "Gone Soon"`},
		{"rename", `ALTER TABLE "Gone Soon" RENAME TO elsewhere`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := kmtest.PG(t)
			kmtest.Exec(t, e.SourceURL, `CREATE TABLE keep (id int); CREATE TABLE "Gone Soon" (id int); INSERT INTO "Gone Soon" VALUES (1)`)
			opts := testOptions(t, e)
			opts.testHookAfterList = func() { kmtest.Exec(t, e.SourceURL, tc.ddl) }
			_, err := Copy(ctxT(t), opts)
			if err == nil || !strings.Contains(err.Error(), `table "public"."Gone Soon" was dropped or renamed during the copy`) {
				t.Fatalf("err=%v, want the table named", err)
			}
		})
	}
}

// TestCopyConcurrentWriters writes to the source while the copy runs: the
// target must equal the source as of the snapshot, so rows committed after
// it are absent.
func TestCopyConcurrentWriters(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, bigTable, `CREATE TABLE events (id serial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp(), v int);
		INSERT INTO events (v) SELECT generate_series(1, 1000)`)
	opts := testOptions(t, e)
	opts.SplitLargerThan = 256 << 10
	ctx := ctxT(t)
	var before, after atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	first := make(chan struct{})
	opts.testHookPartLoaded = func(p *Part) error {
		select {
		case <-first:
		default:
			close(first)
		}
		time.Sleep(20 * time.Millisecond) // give the writers time between parts
		return nil
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := mustConnect(t, e.SourceURL)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			started := false
			select {
			case <-first:
				started = true
			default:
			}
			err := c.PgConn().Exec(context.Background(), fmt.Sprintf(`INSERT INTO events (v) VALUES (%[1]d);
				UPDATE big SET pad = 'changed' WHERE id = %[1]d + 1; DELETE FROM big WHERE id = 20000 - %[1]d`, i)).Close()
			if err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			if started {
				after.Add(1)
			} else {
				before.Add(1)
			}
		}
	}()
	res, err := Copy(ctx, opts)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	if after.Load() < 5 {
		t.Fatalf("only %d writes during the copy; the test proves nothing", after.Load())
	}
	// The source as of now has more rows than the target; the target
	// equals the snapshot: replay it by counting what the writers did.
	srcEvents := queryInt(t, e.SourceURL, "SELECT count(*) FROM events")
	dstEvents := queryInt(t, e.TargetURL, "SELECT count(*) FROM events")
	if dstEvents >= srcEvents {
		t.Errorf("target events=%d, source now %d: rows committed after the snapshot must not be copied", dstEvents, srcEvents)
	}
	// Every table is internally consistent with one instant: the number of
	// writer transactions seen in events equals the changes seen in big.
	n := dstEvents - 1000
	if got := queryInt(t, e.TargetURL, "SELECT count(*) FROM big WHERE pad = 'changed'"); got != n {
		t.Errorf("target big changed rows=%d, want %d (same instant as events)", got, n)
	}
	if got := queryInt(t, e.TargetURL, "SELECT count(*) FROM big"); got != 20000-n {
		t.Errorf("target big rows=%d, want %d", got, 20000-n)
	}
	if res.Snapshot == "" {
		t.Error("no snapshot recorded")
	}
}

// TestCopyResumePostData: a run interrupted after building indexes but
// before recording them resumes without "already exists" failures.
func TestCopyResumePostData(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, `CREATE TABLE a (id int PRIMARY KEY, v text UNIQUE); CREATE INDEX a_v_lower ON a (lower(v));
		CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a); INSERT INTO a VALUES (1, 'x'); INSERT INTO b VALUES (1, 1)`)
	opts := testOptions(t, e)
	if _, err := Copy(ctxT(t), opts); err != nil {
		t.Fatalf("copy: %v", err)
	}
	// Forget that post-data was built, as a crash before the records would.
	ck, err := checkpoint.Open(opts.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	var st runState
	if _, err := ck.GetJSON(sectionCopy, "state", &st); err != nil {
		t.Fatal(err)
	}
	st.PostDataDone = false
	forgotten := 0
	_ = ck.ForEachJSON(sectionCopy, func(key string, _ []byte) error {
		if strings.HasPrefix(key, "post/") {
			forgotten++
		}
		return nil
	})
	for _, k := range postKeys(t, ck) {
		if err := ck.Delete(sectionCopy, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := ck.PutJSON(sectionCopy, "state", st); err != nil {
		t.Fatal(err)
	}
	ck.Close()
	if forgotten != 5 {
		t.Fatalf("post-data items recorded=%d, want 5 (2 pkeys, unique, index, fk)", forgotten)
	}
	opts.Resume = true
	res, err := Copy(ctxT(t), opts)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if res.PostDataItems != 5 {
		t.Errorf("post-data items=%d, want 5 (all found in place)", res.PostDataItems)
	}
	sameTables(t, e, 2, "public.a", "public.b")
}

func postKeys(t *testing.T, ck *checkpoint.DB) []string {
	var keys []string
	if err := ck.ForEachJSON(sectionCopy, func(key string, _ []byte) error {
		if strings.HasPrefix(key, "post/") {
			keys = append(keys, key)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestCopyForeignKeys: keys added NOT VALID and then validated end up
// exactly as on the source: validated where the source's are, NOT VALID
// (and unchecked: the rows violate it) where the source's is, on a
// partitioned table (which the server may refuse to add NOT VALID), self-
// referencing, and several on one table.
func TestCopyForeignKeys(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, `CREATE TABLE a (id int PRIMARY KEY);
		INSERT INTO a SELECT generate_series(1, 100);
		CREATE TABLE b (id int PRIMARY KEY, a1 int REFERENCES a, a2 int REFERENCES a ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
			parent int REFERENCES b);
		INSERT INTO b SELECT g, g, 101 - g, NULLIF(g - 1, 0) FROM generate_series(1, 100) g;
		CREATE TABLE "Weird ""c""" (id int PRIMARY KEY, a_id int);
		INSERT INTO "Weird ""c""" VALUES (1, 1), (2, 999);
		ALTER TABLE "Weird ""c""" ADD CONSTRAINT "c fk" FOREIGN KEY (a_id) REFERENCES a NOT VALID;
		CREATE TABLE p (id int, a_id int REFERENCES a, PRIMARY KEY (id)) PARTITION BY RANGE (id);
		CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (50);
		CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (50) TO (1000);
		INSERT INTO p SELECT g, g FROM generate_series(1, 100) g;`)
	if _, err := Copy(ctxT(t), testOptions(t, e)); err != nil {
		t.Fatalf("copy: %v", err)
	}
	sameTables(t, e, 300, "public.a", "public.b", `public."Weird ""c"""`, "public.p")
	q := `SELECT string_agg(d, E'\n' ORDER BY d) FROM (SELECT format('%s %s %s %s', conrelid::regclass, conname, convalidated,
		pg_get_constraintdef(oid)) AS d FROM pg_constraint WHERE contype = 'f') c`
	var src, dst string
	if err := mustConnect(t, e.SourceURL).QueryRow(ctxT(t), q).Scan(&src); err != nil {
		t.Fatal(err)
	}
	if err := mustConnect(t, e.TargetURL).QueryRow(ctxT(t), q).Scan(&dst); err != nil {
		t.Fatal(err)
	}
	if src != dst || strings.Count(src, "\n") < 5 || !strings.Contains(dst, "c fk f FOREIGN KEY (a_id) REFERENCES a(id) NOT VALID") {
		t.Fatalf("foreign keys differ or too few:\nsource:\n%s\ntarget:\n%s", src, dst)
	}
	// Every table was analyzed (early, after its indexes, or at the end).
	if n := queryInt(t, e.TargetURL, `SELECT count(*) FROM pg_stat_user_tables WHERE last_analyze IS NULL`); n != 0 {
		t.Errorf("%d tables not analyzed on the target", n)
	}
}
