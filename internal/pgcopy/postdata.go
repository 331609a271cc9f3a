package pgcopy

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// earlyBuilds starts a table's indexes and primary/unique constraints as
// soon as all its parts are loaded, while other tables are still copying
// (as pgcopydb does), so the index builds do not wait for the last table.
// Foreign keys, triggers and the rest still run after all data.
//
// The worker that builds a table's last early item then runs ANALYZE on
// it (unless analyze is off): the statistics are there before the foreign
// key checks, whose plans need them (a key check of 6M rows took 5.9 s
// without, 3.9 s with), and the final ANALYZE skips the table.
type earlyBuilds struct {
	r       *postDataRunner
	s       *script
	byTable map[[2]string][]entry
	ch      chan entry
	g       *errgroup.Group
	cancel  context.CancelFunc
	analyze bool

	mu       sync.Mutex
	queued   map[string]bool
	closed   bool
	pending  map[[2]string]int // early items not built yet, per table
	analyzed map[[2]string]bool
}

// startEarly starts r.jobs builders that wait for loaded tables.
func (r *postDataRunner) startEarly(ctx context.Context, s *script, analyze bool) *earlyBuilds {
	ctx, cancel := context.WithCancel(ctx)
	eb := &earlyBuilds{r: r, s: s, byTable: map[[2]string][]entry{}, queued: map[string]bool{}, cancel: cancel,
		analyze: analyze, pending: map[[2]string]int{}, analyzed: map[[2]string]bool{}}
	n := 0
	for _, e := range s.Entries {
		if (e.Type != "INDEX" && e.Type != "CONSTRAINT") || isCaptureObject(e) || r.done(entryKey(e)) {
			continue
		}
		if schema, name, ok := entryTable(e); ok {
			k := [2]string{schema, name}
			eb.byTable[k] = append(eb.byTable[k], e)
			eb.pending[k]++
			n++
		}
	}
	eb.ch = make(chan entry, n)
	eb.g, ctx = errgroup.WithContext(ctx)
	for range min(r.jobs, n) {
		eb.g.Go(func() error { return eb.worker(ctx) })
	}
	return eb
}

// worker builds queued items on one connection, and analyzes each table
// whose last item it built.
func (eb *earlyBuilds) worker(ctx context.Context) error {
	conn, err := eb.r.session(ctx, eb.s.Preamble)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for e := range eb.ch {
		if err := eb.r.exec(ctx, conn, e, e.SQL); err != nil {
			return err
		}
		schema, name, _ := entryTable(e)
		k := [2]string{schema, name}
		eb.mu.Lock()
		eb.pending[k]--
		last := eb.pending[k] == 0
		eb.mu.Unlock()
		if !last || !eb.analyze {
			continue
		}
		if err := conn.PgConn().Exec(ctx, "ANALYZE "+pgutil.QualifiedName(schema, name)).Close(); err != nil {
			return fmt.Errorf("target: analyze %s: %s", pgutil.QualifiedName(schema, name), oneLine(err))
		}
		eb.mu.Lock()
		eb.analyzed[k] = true
		eb.mu.Unlock()
	}
	return nil
}

// wasAnalyzed reports whether the early builds analyzed t.
func (eb *earlyBuilds) wasAnalyzed(t *Table) bool {
	eb.mu.Lock()
	defer eb.mu.Unlock()
	return eb.analyzed[[2]string{t.Schema, t.Name}]
}

// tableLoaded queues the table's builds. Safe for concurrent use.
func (eb *earlyBuilds) tableLoaded(t *Table) {
	eb.mu.Lock()
	defer eb.mu.Unlock()
	if eb.closed {
		return
	}
	for _, e := range eb.byTable[[2]string{t.Schema, t.Name}] {
		eb.queued[entryKey(e)] = true
		eb.ch <- e // buffered for every early item: never blocks
	}
	delete(eb.byTable, [2]string{t.Schema, t.Name})
}

// stop ends the builders after a failed data phase.
func (eb *earlyBuilds) stop() {
	eb.close()
	eb.cancel()
	_ = eb.g.Wait()
}

func (eb *earlyBuilds) close() {
	eb.mu.Lock()
	defer eb.mu.Unlock()
	if !eb.closed {
		eb.closed = true
		close(eb.ch)
	}
}

// finish waits for the early builds, then runs the rest of post-data. It
// returns the number of items built.
func (eb *earlyBuilds) finish(ctx context.Context) (int, error) {
	eb.close()
	err := eb.g.Wait()
	eb.cancel()
	if err != nil {
		return 0, err
	}
	rest := &script{Preamble: eb.s.Preamble}
	for _, e := range eb.s.Entries {
		if !eb.queued[entryKey(e)] {
			rest.Entries = append(rest.Entries, e)
		}
	}
	n, err := eb.r.apply(ctx, rest)
	return n + len(eb.queued), err
}

// entryTable returns the table an INDEX or CONSTRAINT item is built on,
// from pg_dump's "CREATE [UNIQUE] INDEX name ON [ONLY] schema.table" or
// "ALTER TABLE [ONLY] schema.table".
func entryTable(e entry) (schema, name string, ok bool) {
	tk := &tokens{s: e.SQL}
	switch e.Type {
	case "INDEX":
		if !tk.keyword("CREATE") {
			return "", "", false
		}
		tk.keyword("UNIQUE")
		if !tk.keyword("INDEX") {
			return "", "", false
		}
		if _, ok := tk.ident(); !ok || !tk.keyword("ON") {
			return "", "", false
		}
	case "CONSTRAINT":
		if !tk.keyword("ALTER") || !tk.keyword("TABLE") {
			return "", "", false
		}
	default:
		return "", "", false
	}
	tk.keyword("ONLY")
	schema, ok1 := tk.ident()
	if !ok1 || !tk.punct('.') {
		return "", "", false
	}
	name, ok2 := tk.ident()
	return schema, name, ok2
}

// tokens reads SQL identifiers and keywords.
type tokens struct {
	s string
	i int
}

func (t *tokens) skipSpace() {
	for t.i < len(t.s) && strings.ContainsRune(" \t\r\n", rune(t.s[t.i])) {
		t.i++
	}
}

func (t *tokens) keyword(kw string) bool {
	t.skipSpace()
	end := t.i + len(kw)
	if end > len(t.s) || !strings.EqualFold(t.s[t.i:end], kw) || (end < len(t.s) && isIdentChar(t.s[end])) {
		return false
	}
	t.i = end
	return true
}

func (t *tokens) punct(c byte) bool {
	t.skipSpace()
	if t.i < len(t.s) && t.s[t.i] == c {
		t.i++
		return true
	}
	return false
}

// ident reads a quoted ("a""b") or plain identifier and returns its value.
func (t *tokens) ident() (string, bool) {
	t.skipSpace()
	if t.i >= len(t.s) {
		return "", false
	}
	if t.s[t.i] == '"' {
		var b strings.Builder
		for j := t.i + 1; j < len(t.s); j++ {
			if t.s[j] != '"' {
				b.WriteByte(t.s[j])
				continue
			}
			if j+1 < len(t.s) && t.s[j+1] == '"' {
				b.WriteByte('"')
				j++
				continue
			}
			t.i = j + 1
			return b.String(), true
		}
		return "", false
	}
	start := t.i
	for t.i < len(t.s) && isIdentChar(t.s[t.i]) {
		t.i++
	}
	return t.s[start:t.i], t.i > start
}

func isIdentChar(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}
