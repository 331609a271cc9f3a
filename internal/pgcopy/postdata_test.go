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

func TestSplitFK(t *testing.T) {
	for _, tc := range []struct {
		sql, add, validate string
		table              [2]string
		ok                 bool
	}{
		{"ALTER TABLE ONLY public.b\n    ADD CONSTRAINT b_a_fkey FOREIGN KEY (a) REFERENCES public.a(id);",
			"ALTER TABLE ONLY public.b\n    ADD CONSTRAINT b_a_fkey FOREIGN KEY (a) REFERENCES public.a(id) NOT VALID;",
			"ALTER TABLE ONLY public.b VALIDATE CONSTRAINT b_a_fkey;", [2]string{"public", "b"}, true},
		{`ALTER TABLE "S"."Order ""Lines"""  ADD CONSTRAINT "fk ""x""" FOREIGN KEY ("A") REFERENCES "S".a(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED;`,
			`ALTER TABLE "S"."Order ""Lines"""  ADD CONSTRAINT "fk ""x""" FOREIGN KEY ("A") REFERENCES "S".a(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED NOT VALID;`,
			`ALTER TABLE "S"."Order ""Lines""" VALIDATE CONSTRAINT "fk ""x""";`, [2]string{"S", `Order "Lines"`}, true},
		// NOT VALID on the source stays unchecked: not split.
		{"ALTER TABLE ONLY public.b ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES public.a(id) NOT VALID;", "", "", [2]string{}, false},
		{"ALTER TABLE ONLY public.b ADD CONSTRAINT c CHECK (a > 0);", "", "", [2]string{}, false},
		{"ALTER TABLE public.b OWNER TO x;", "", "", [2]string{}, false},
	} {
		s, ok := splitFK(entry{Type: "FK CONSTRAINT", SQL: tc.sql})
		if ok != tc.ok || s.add != tc.add || s.validate != tc.validate || s.table != tc.table {
			t.Errorf("splitFK(%q) = %+v, %v", tc.sql, s, ok)
		}
	}
}
