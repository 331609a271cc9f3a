package pgcopy

import "testing"

func TestEntryTable(t *testing.T) {
	for _, tc := range []struct {
		typ, sql     string
		schema, name string
		ok           bool
	}{
		{"INDEX", "CREATE INDEX a_v_idx ON public.a USING btree (v);", "public", "a", true},
		{"INDEX", `CREATE UNIQUE INDEX "Idx ""quoted""" ON ONLY "My Schema"."Order Lines" USING btree ("MixedCase");`, "My Schema", "Order Lines", true},
		{"INDEX", `CREATE INDEX "x ON y" ON public."weird""name" USING btree (id);`, "public", `weird"name`, true},
		{"CONSTRAINT", "ALTER TABLE ONLY public.receipts\n    ADD CONSTRAINT receipts_pkey PRIMARY KEY (id);", "public", "receipts", true},
		{"CONSTRAINT", "ALTER TABLE ONLY \"Ünï\".\"a.b\"\n    ADD CONSTRAINT c UNIQUE (x);", "Ünï", "a.b", true},
		{"FK CONSTRAINT", "ALTER TABLE ONLY public.b ADD CONSTRAINT b_fk FOREIGN KEY (a) REFERENCES public.a(id);", "", "", false},
		{"INDEX", "CREATE INDEX broken ON", "", "", false},
	} {
		s, n, ok := entryTable(entry{Type: tc.typ, SQL: tc.sql})
		if s != tc.schema || n != tc.name || ok != tc.ok {
			t.Errorf("entryTable(%q)=%q,%q,%v, want %q,%q,%v", tc.sql, s, n, ok, tc.schema, tc.name, tc.ok)
		}
	}
}
