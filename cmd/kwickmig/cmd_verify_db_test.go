package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/verify"
)

// verifyDBSchema is created, with the same rows, on both sides: a keyed
// table large enough for many segments, a composite key with a hostile
// name, a table without a key, and a sequence.
var verifyDBSchema = []string{
	`CREATE TABLE orders (id bigserial PRIMARY KEY, note text, amount numeric(12,2), at timestamptz,
		data jsonb, f float8, b bytea, tags text[])`,
	`INSERT INTO orders (note, amount, at, data, f, b, tags)
		SELECT 'note ' || g, g * 1.25, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute',
			jsonb_build_object('g', g, 's', repeat('x', g % 7)), g / 3.0, decode(md5(g::text), 'hex'),
			ARRAY['a' || g, NULL]
		FROM generate_series(1, 5000) g`,
	`CREATE TABLE "Order Lines" ("order id" bigint, line int, "Qty" int, txt text, PRIMARY KEY ("order id", line))`,
	`INSERT INTO "Order Lines" SELECT g / 3, g % 3, g, CASE WHEN g % 5 = 0 THEN NULL ELSE 'l' || g END
		FROM generate_series(1, 3000) g`,
	`CREATE TABLE audit (what text, at date)`,
	`INSERT INTO audit SELECT 'event ' || (g % 50), date '2026-01-01' + g % 10 FROM generate_series(1, 500) g`,
	`CREATE INDEX orders_at ON orders (at)`,
}

func runVerifyDBCLI(t *testing.T, pg *kmtest.PGEnv, extra ...string) (int, verify.DBResult, string) {
	t.Helper()
	rep := filepath.Join(t.TempDir(), "verify-db.json")
	args := append([]string{"verify", "db", "--source", pg.SourceURL, "--target", pg.TargetURL,
		"--segment-rows", "200", "--checkpoint", "", "--report", rep}, extra...)
	code, out, errOut := runCLI(t, context.Background(), args...)
	var res verify.DBResult
	if data, err := os.ReadFile(rep); err == nil {
		if err := json.Unmarshal(data, &res); err != nil {
			t.Fatalf("report: %v", err)
		}
	}
	return code, res, out + errOut
}

func tableResult(r verify.DBResult, name string) *verify.TableResult {
	for _, t := range r.Tables {
		if t.Table == name {
			return t
		}
	}
	return nil
}

func TestVerifyDB(t *testing.T) {
	pg := kmtest.PG(t)
	kmtest.Exec(t, pg.SourceURL, verifyDBSchema...)
	kmtest.Exec(t, pg.TargetURL, verifyDBSchema...)

	code, res, out := runVerifyDBCLI(t, pg)
	if code != 0 || res.TablesChecked != 3 || res.RowsSource != 8500 || res.RowsTarget != 8500 || res.Segments < 40 || len(res.Sequences) != 1 {
		t.Fatalf("clean: code %d tables %d rows %d/%d segments %d sequences %d\n%s",
			code, res.TablesChecked, res.RowsSource, res.RowsTarget, res.Segments, len(res.Sequences), out)
	}
	if a := tableResult(res, "public.audit"); a == nil || a.KeyKind != "" || a.Segments != 1 {
		t.Fatalf("audit: %+v", a)
	}

	// Each damage is found exactly, and nothing else is reported.
	for _, tc := range []struct {
		name, damage, repair string
		table, kind, key     string
		columns              string
	}{
		{"one column changed", `UPDATE orders SET amount = amount + 0.01 WHERE id = 1234`,
			`UPDATE orders SET amount = amount - 0.01 WHERE id = 1234`, "public.orders", "changed", "id=1234", "amount"},
		{"row deleted", `DELETE FROM "Order Lines" WHERE "order id" = 700 AND line = 2`,
			`INSERT INTO "Order Lines" VALUES (700, 2, 2102, 'l2102')`, "public.Order Lines", "missing", "order id=700, line=2", ""},
		{"extra row", `INSERT INTO "Order Lines" VALUES (99999, 1, 1, 'x')`,
			`DELETE FROM "Order Lines" WHERE "order id" = 99999`, "public.Order Lines", "extra", "order id=99999, line=1", ""},
		{"NULL became empty string", `UPDATE "Order Lines" SET txt = '' WHERE "order id" = 5 AND line = 0`,
			`UPDATE "Order Lines" SET txt = NULL WHERE "order id" = 5 AND line = 0`, "public.Order Lines", "changed", "order id=5, line=0", "txt"},
		{"first key", `DELETE FROM orders WHERE id = 1`,
			`INSERT INTO orders SELECT * FROM (VALUES (1::bigint, 'note 1', 1.25, timestamptz '2026-01-01 00:01:00+00',
				'{"g": 1, "s": "x"}'::jsonb, 1 / 3.0, decode(md5('1'), 'hex'), ARRAY['a1', NULL])) v`, "public.orders", "missing", "id=1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kmtest.Exec(t, pg.TargetURL, tc.damage)
			code, res, out := runVerifyDBCLI(t, pg)
			tr := tableResult(res, tc.table)
			if code != 2 || res.TablesDiffer != 1 || len(res.Schema) != 0 || res.SequencesBehind != 0 || tr == nil ||
				len(tr.Rows) != 1 || tr.Missing+tr.Extra+tr.Changed != 1 {
				t.Fatalf("code %d, differing tables %d, schema %v, sequences behind %d, table %+v\n%s",
					code, res.TablesDiffer, res.Schema, res.SequencesBehind, tr, out)
			}
			if d := tr.Rows[0]; d.Kind != tc.kind || d.Key != tc.key || strings.Join(d.Columns, ",") != tc.columns {
				t.Fatalf("row %+v, want %s %s columns %q\n%s", d, tc.kind, tc.key, tc.columns, out)
			}
			kmtest.Exec(t, pg.TargetURL, tc.repair)
			if code, _, out := runVerifyDBCLI(t, pg); code != 0 {
				t.Fatalf("after repair: code %d\n%s", code, out)
			}
		})
	}

	t.Run("table without key", func(t *testing.T) {
		kmtest.Exec(t, pg.TargetURL, `DELETE FROM audit WHERE ctid = (SELECT min(ctid) FROM audit WHERE what = 'event 7')`)
		code, res, out := runVerifyDBCLI(t, pg)
		a := tableResult(res, "public.audit")
		if code != 2 || res.TablesDiffer != 1 || a == nil || !a.ChecksumDiffer || a.Missing != 1 || a.Extra != 0 || a.TargetRows != 499 {
			t.Fatalf("code %d, audit %+v\n%s", code, a, out)
		}
		kmtest.Exec(t, pg.TargetURL, `INSERT INTO audit VALUES ('event 7', date '2026-01-08')`)
	})

	t.Run("sequence behind", func(t *testing.T) {
		kmtest.Exec(t, pg.TargetURL, `SELECT setval('orders_id_seq', 4000)`)
		code, res, out := runVerifyDBCLI(t, pg)
		if code != 2 || res.SequencesBehind != 1 || res.TablesDiffer != 0 || len(res.Schema) != 0 {
			t.Fatalf("code %d, sequences %+v, tables differ %d\n%s", code, res.Sequences, res.TablesDiffer, out)
		}
		mustContain(t, out, "SEQUENCE public.orders_id_seq: behind")
		kmtest.Exec(t, pg.TargetURL, `SELECT setval('orders_id_seq', 5000)`)
	})

	t.Run("schema", func(t *testing.T) {
		kmtest.Exec(t, pg.TargetURL, `DROP INDEX orders_at`, `CREATE INDEX other_name ON orders (at)`)
		if code, _, out := runVerifyDBCLI(t, pg); code != 0 {
			t.Fatalf("renamed index: code %d\n%s", code, out)
		}
		kmtest.Exec(t, pg.TargetURL, `ALTER TABLE audit ADD COLUMN extra int`)
		code, res, out := runVerifyDBCLI(t, pg)
		if code != 2 || len(res.Schema) != 1 || res.Schema[0].Kind != "column_extra" || res.TablesDiffer != 0 {
			t.Fatalf("extra column: code %d schema %+v\n%s", code, res.Schema, out)
		}
		kmtest.Exec(t, pg.TargetURL, `ALTER TABLE audit DROP COLUMN extra`)
	})

	if code, res, out := runVerifyDBCLI(t, pg, "--table", `public."Order Lines"`, "--jobs", "1"); code != 0 || res.TablesChecked != 1 {
		t.Fatalf("--table: code %d tables %d\n%s", code, res.TablesChecked, out)
	}
}

func TestVerifyDBCannotRun(t *testing.T) {
	pg := kmtest.PG(t)
	code, _, out := runVerifyDBCLI(t, &kmtest.PGEnv{SourceURL: pg.SourceURL, TargetURL: strings.Replace(pg.TargetURL, pg.DBName, "nope_db", 1)})
	if code != 1 || !strings.Contains(out, "target:") {
		t.Fatalf("code %d, want 1 naming the target\n%s", code, out)
	}
}
