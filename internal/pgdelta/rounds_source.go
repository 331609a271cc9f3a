package pgdelta

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/objstore"
)

// Rounds from anywhere: each final-delta --out may write its round to a
// location of its own (round numbers come from the source's ticks, not from
// the location). import-delta --in A --in B … reads the rounds the
// locations hold, and applies those the target has not applied, in round
// order, each once. The rounds to apply must follow the target's last
// round without a gap; a missing round is named. Rounds the target has
// applied already are checked against its record and skipped.

// Stores combines locations into one read-only BatchStore; a round's
// manifest and parts are read from the location that holds the manifest.
func Stores(stores ...BatchStore) BatchStore {
	if len(stores) == 1 {
		return stores[0]
	}
	return &multiStore{stores: stores, where: map[int]BatchStore{}}
}

type multiStore struct {
	stores []BatchStore
	where  map[int]BatchStore // round → location, filled by listRounds
}

func (m *multiStore) Put(context.Context, string, []byte) error {
	return fmt.Errorf("%s: several --in locations are read-only", m)
}

// Get reads name from the location holding its round, else from the first
// location that has it.
func (m *multiStore) Get(ctx context.Context, name string) ([]byte, error) {
	if st, ok := m.where[roundOf(name)]; ok {
		return st.Get(ctx, name)
	}
	for _, st := range m.stores {
		data, err := st.Get(ctx, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return data, err
	}
	return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
}

func (m *multiStore) String() string {
	names := make([]string, len(m.stores))
	for i, st := range m.stores {
		names[i] = st.String()
	}
	return strings.Join(names, ", ")
}

// roundOf parses the round of "round-000012.json" or
// "round-000012-part-0001.jsonl.gz"; 0 if none.
func roundOf(name string) int {
	rest, ok := strings.CutPrefix(name, "round-")
	if !ok || len(rest) < 6 {
		return 0
	}
	n, err := strconv.Atoi(rest[:6])
	if err != nil {
		return 0
	}
	return n
}

// manifestRound returns the round a manifest file name holds.
func manifestRound(name string) (int, bool) {
	r := roundOf(name)
	return r, r > 0 && name == manifestName(r)
}

// listRounds returns the rounds whose manifests st holds, sorted; ok is
// false for a store that cannot list.
func listRounds(ctx context.Context, st BatchStore) ([]int, bool, error) {
	var rounds []int
	switch s := st.(type) {
	case DirStore:
		ents, err := os.ReadDir(string(s))
		if err != nil {
			return nil, true, fmt.Errorf("%s: %w", s, err)
		}
		for _, e := range ents {
			if r, ok := manifestRound(e.Name()); ok && e.Type().IsRegular() {
				rounds = append(rounds, r)
			}
		}
	case ObjectBatchStore:
		err := s.Store.List(ctx, "round-", "", func(o objstore.ObjectInfo) error {
			if r, ok := manifestRound(o.Key); ok {
				rounds = append(rounds, r)
			}
			return nil
		})
		if err != nil {
			return nil, true, fmt.Errorf("%s: list: %w", s, err)
		}
	case *multiStore:
		for _, sub := range s.stores {
			rs, ok, err := listRounds(ctx, sub)
			if err != nil {
				return nil, true, err
			}
			if !ok {
				return nil, false, nil
			}
			for _, r := range rs {
				if other, dup := s.where[r]; dup {
					if err := sameRound(ctx, r, other, sub); err != nil {
						return nil, true, err
					}
					continue
				}
				s.where[r] = sub
				rounds = append(rounds, r)
			}
		}
	default:
		return nil, false, nil
	}
	sort.Ints(rounds)
	return rounds, true, nil
}

// sameRound accepts a round found in two locations only if both hold the
// same export of it (a copy of the files).
func sameRound(ctx context.Context, r int, a, b BatchStore) error {
	ma, _, err := readManifest(ctx, a, r)
	if err != nil {
		return err
	}
	mb, _, err := readManifest(ctx, b, r)
	if err != nil {
		return err
	}
	if ma.Tick != mb.Tick || ma.PrevTick != mb.PrevTick {
		return fmt.Errorf("round %d is in %s (tick %s) and in %s (tick %s): two different exports; give only one", r, a, ma.Tick, b, mb.Tick)
	}
	return nil
}

// importPlan is what Import runs through: the manifests in round order
// (applied ones included, to be checked and skipped), and the manifest
// whose sequences to set (nil when every round given is older than the
// target's newest).
type importPlan struct {
	rounds []manifest
	seqs   *manifest
}

// planImport reads the rounds st holds and checks they continue the
// target's rounds without a gap and each from the tick its predecessor
// ended at.
func planImport(ctx context.Context, target *pgx.Conn, st BatchStore) (importPlan, error) {
	var plan importPlan
	rounds, ok, err := listRounds(ctx, st)
	if err != nil {
		return plan, err
	}
	if !ok { // a store that cannot list: rounds 1, 2, … up to the first missing
		rounds = nil
		for r := 1; ; r++ {
			_, found, err := readManifest(ctx, st, r)
			if err != nil {
				return plan, err
			}
			if !found {
				break
			}
			rounds = append(rounds, r)
		}
	}
	if len(rounds) == 0 {
		return plan, fmt.Errorf("%s: no delta rounds found (no round-NNNNNN.json; %s missing)", st, manifestName(1))
	}
	// The target's rounds: ticks of applied ones; the newest done round.
	ticks := map[int]string{}
	lastDone := 0
	rows, _ := target.Query(ctx, `SELECT round, snapshot, done FROM kwickmig.rounds WHERE round > 0 ORDER BY round`)
	var r int
	var snap string
	var done bool
	if _, err := pgx.ForEachRow(rows, []any{&r, &snap, &done}, func() error {
		ticks[r] = snap
		if done {
			lastDone = r
		}
		return nil
	}); err != nil {
		return plan, fmt.Errorf("target: read delta rounds: %w", err)
	}
	next := lastDone + 1 // the round the target needs next
	for _, r := range rounds {
		m, found, err := readManifest(ctx, st, r)
		if err != nil {
			return plan, err
		}
		if !found {
			return plan, fmt.Errorf("%s: %s disappeared while reading", st, manifestName(r))
		}
		if r >= next {
			if r != next {
				return plan, fmt.Errorf("round %d missing: the target has applied rounds up to %d and the rounds given continue at %d (give the location of %s with another --in)",
					next, next-1, r, manifestName(next))
			}
			next++
		}
		prev, known := emptySnapshot, r == 1
		if r > 1 {
			prev, known = ticks[r-1], ticks[r-1] != "" && r-1 <= lastDone
			if !known && len(plan.rounds) > 0 && plan.rounds[len(plan.rounds)-1].Round == r-1 {
				prev, known = plan.rounds[len(plan.rounds)-1].Tick, true
			}
		}
		if known && m.PrevTick != prev {
			return plan, fmt.Errorf("%s: round %d continues tick %s, but round %d ended at %s: files from different exports are mixed", st, r, m.PrevTick, r-1, prev)
		}
		plan.rounds = append(plan.rounds, m)
	}
	if last := plan.rounds[len(plan.rounds)-1]; last.Round >= lastDone {
		plan.seqs = &last
	}
	return plan, nil
}
