package pgcopy

import (
	"net/url"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
)

const typesSchema = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE scalars (
	id int PRIMARY KEY, n numeric, n2 numeric(12,3), f8 float8, f4 float4,
	ts timestamptz, tl timestamp, d date, tm time, iv interval, j jsonb, js json,
	ai int[], at text[], b bytea, u uuid, m mood, dm posint, txt text, vc varchar(10),
	bo bool, ip inet, ch char(3), bits bit varying(8), r int8range, big bigint,
	g text GENERATED ALWAYS AS (upper(txt)) STORED);
CREATE TABLE texty (id serial PRIMARY KEY, ma mood[], dma posint[], note text);
INSERT INTO scalars (id, n, n2, f8, f4, ts, tl, d, tm, iv, j, js, ai, at, b, u, m, dm, txt, vc, bo, ip, ch, bits, r, big) VALUES
 (1, 123456789012345678901234567890.123456789, 1.5, 'NaN', 'Infinity', '2024-02-29 23:59:59.999999+05:30', '1999-12-31 23:59:59.5',
  '0044-03-15 BC', '24:00:00', '1 year 2 mons -3 days 04:05:06.789', '{"a": [1, 2.50, null, "x\ty"], "é": {"😀": true}}',
  '{"keep":  "spacing" ,"dup":1,"dup":2}', '{1,NULL,3}', '{"a b","c,d","e\"f",NULL,"g\\h"}', '\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  'happy', 7, E'tab\there\nnewline\\backslash ünïcødé 😀 \r end', 'short', true, '192.168.0.1/24', 'ab', B'101', '[1,10)', -9223372036854775808),
 (2, 'NaN', -0.001, '-Infinity', '-0', 'infinity', '-infinity', 'infinity', '00:00:00', '-178000000 years', 'null', '[]',
  '{}', '{}', '', '00000000-0000-0000-0000-000000000000', 'sad', 1, '', '', false, '::1', '   ', B'', 'empty', 9223372036854775807),
 (3, 'Infinity', 0, 1e-300, 3.4028235e38, '1970-01-01 00:00:00+00', '2000-01-01', '2000-01-01', '12:34:56.789012', '0', '{"n": 1.0000000000000000001}', '"s"',
  '{{1,2},{3,4}}', '{"NULL"}', '\\x5c', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, NULL, NULL, 0.1, 0.1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'x', NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE nocols ();
INSERT INTO nocols DEFAULT VALUES; INSERT INTO nocols DEFAULT VALUES;
INSERT INTO texty (ma, dma, note) VALUES ('{happy,sad}', '{1,2}', E'a\\b'), (NULL, NULL, NULL), ('{}', '{3}', 'line1
line2');
`

func TestCopyTypesRoundTrip(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, typesSchema)
	res, err := Copy(ctxT(t), testOptions(t, e))
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	sameTables(t, e, 9, "public.scalars", "public.texty", "public.nocols")
	if got := queryInt(t, e.TargetURL, "SELECT nextval('texty_id_seq')"); got != 4 {
		t.Errorf("target nextval(texty_id_seq)=%d, want 4 (sequence set to the snapshot value)", got)
	}
	if res.Rows != 9 || len(res.Tables) != 3 {
		t.Errorf("result rows=%d tables=%d, want 9, 3", res.Rows, len(res.Tables))
	}
	// Generated columns are recomputed on the target, not copied.
	if got := queryInt(t, e.TargetURL, "SELECT count(*) FROM scalars WHERE g = upper(txt)"); got != 4-1 {
		t.Errorf("generated column rows=%d, want 3 (the NULL txt row has NULL g)", got)
	}
	// Indexes (post-data) exist on the target.
	if got := queryInt(t, e.TargetURL, "SELECT count(*) FROM pg_indexes WHERE tablename IN ('scalars','texty')"); got != 2 {
		t.Errorf("target indexes=%d, want 2", got)
	}
	for _, tbl := range res.Tables {
		if tbl.Name == "texty" && tbl.Rows != 3 {
			t.Errorf("texty rows=%d, want 3", tbl.Rows)
		}
	}
	if res.Snapshot == "" || !strings.Contains(res.Snapshot, ":") {
		t.Errorf("snapshot=%q, want a pg_snapshot text", res.Snapshot)
	}
}

// TestCopySchemaOnlyThenDataOnly: the schema first, then the data into it
// (foreign keys and indexes already in place, parts loaded in any order).
func TestCopySchemaOnlyThenDataOnly(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, `CREATE TABLE parent (id int PRIMARY KEY, v text);
		CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent, note text);
		INSERT INTO parent SELECT i, 'p' || i FROM generate_series(1, 200) i;
		INSERT INTO child SELECT i, 1 + i % 200, repeat('x', 200) FROM generate_series(1, 5000) i;
		CREATE INDEX child_parent ON child (parent_id)`)
	opts := testOptions(t, e)
	opts.SchemaOnly = true
	res, err := Copy(ctxT(t), opts)
	if err != nil {
		t.Fatalf("copy --schema-only: %v", err)
	}
	if res.Rows != 0 || queryInt(t, e.TargetURL, "SELECT count(*) FROM child") != 0 {
		t.Fatalf("--schema-only copied %d rows, want 0", res.Rows)
	}
	if got := queryInt(t, e.TargetURL, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'child'::regclass AND contype = 'f'"); got != 1 {
		t.Fatalf("target foreign keys on child=%d, want 1 (post-data with --schema-only)", got)
	}
	opts.SchemaOnly, opts.DataOnly = false, true
	opts.SplitLargerThan = 64 << 10
	if _, err := Copy(ctxT(t), opts); err != nil {
		t.Fatalf("copy --data-only: %v", err)
	}
	sameTables(t, e, 5200, "public.parent", "public.child")
}

func TestCopyTableOption(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, `CREATE TABLE a (id serial PRIMARY KEY); CREATE TABLE b (id int); CREATE SEQUENCE loose;
		INSERT INTO a DEFAULT VALUES; INSERT INTO b VALUES (1);
		CREATE SCHEMA s; CREATE TYPE s.kind AS ENUM ('x'); CREATE TABLE s.c (k s.kind); INSERT INTO s.c VALUES ('x')`)
	opts := testOptions(t, e)
	opts.Tables = []string{"a"}
	res, err := Copy(ctxT(t), opts)
	if err != nil {
		t.Fatalf("copy --table a: %v", err)
	}
	sameTables(t, e, 1, "public.a")
	if got := queryInt(t, e.TargetURL, "SELECT count(*) FROM pg_class WHERE relname IN ('b', 'loose', 'c')"); got != 0 {
		t.Errorf("target has %d of b, loose, c; want only a (and its sequence)", got)
	}
	if res.Sequences != 1 {
		t.Errorf("sequences=%d, want 1 (a_id_seq, not the loose one)", res.Sequences)
	}
	// A table whose type is not on the target: the error says what to do.
	opts.Tables = []string{"s.c"}
	if _, err := Copy(ctxT(t), opts); err == nil || !strings.Contains(err.Error(), "with --table only the tables themselves are created") {
		t.Errorf("copy --table s.c err=%v, want the --table hint", err)
	}
}

// TestCopyRefusesRowSecurity: a role that row-level security would filter
// gets an error, never a silently partial table.
func TestCopyRefusesRowSecurity(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	role := kmtest.RandName("kw_reader_")
	kmtest.Exec(t, e.SourceURL, `CREATE TABLE secret (id int, owner text); INSERT INTO secret VALUES (1, 'a'), (2, 'b');
		ALTER TABLE secret ENABLE ROW LEVEL SECURITY; CREATE POLICY only_a ON secret USING (owner = 'a')`,
		"CREATE ROLE "+role+" LOGIN PASSWORD 'pw'", "GRANT SELECT ON secret TO "+role)
	t.Cleanup(func() { kmtest.Exec(t, e.SourceURL, "DROP OWNED BY "+role, "DROP ROLE "+role) })
	kmtest.Exec(t, e.TargetURL, `CREATE TABLE secret (id int, owner text)`)
	opts := testOptions(t, e)
	u, err := url.Parse(e.SourceURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "pw")
	opts.SourceURL = u.String()
	opts.DataOnly = true
	_, err = Copy(ctxT(t), opts)
	if err == nil || !strings.Contains(err.Error(), "row-level security") {
		t.Fatalf("err=%v, want a row-level security refusal", err)
	}
	if got := queryInt(t, e.TargetURL, "SELECT count(*) FROM secret"); got != 0 {
		t.Errorf("target rows=%d, want 0", got)
	}
}
