package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/source"
)

// RefsOptions configure VerifyRefs.
type RefsOptions struct {
	// Query returns file keys in its first column: paths relative to the
	// destination prefix, as files sync maps the source tree (the same
	// source.ObjectKey mapping is applied). NULLs are counted, not checked.
	Query     string
	Prefix    string // the store's key prefix, for the key length limit
	ListJobs  int    // top-level key ranges listed concurrently; default 8
	MaxListed int    // missing and unreferenced keys listed; default 1000
}

// RefsResult is verify refs' report (also its JSON form).
type RefsResult struct {
	Query            string   `json:"query"`
	Destination      string   `json:"destination"`
	Rows             int64    `json:"rows"`           // rows the query returned
	NullKeys         int64    `json:"null_keys"`      // rows whose key is NULL
	DistinctKeys     int64    `json:"distinct_keys"`  // non-NULL keys, each counted once
	DuplicateRefs    int64    `json:"duplicate_refs"` // rows referencing a key another row already references
	Found            int64    `json:"found"`
	Missing          int64    `json:"missing"` // referenced keys with no object
	ObjectsListed    int64    `json:"objects_listed"`
	Unreferenced     int64    `json:"unreferenced_objects"` // objects no row references
	MissingKeys      []string `json:"missing_keys"`
	UnreferencedKeys []string `json:"unreferenced_keys"`
	NotListed        int64    `json:"keys_not_listed,omitempty"`
	DurationSeconds  float64  `json:"duration_seconds"`
}

// OK reports whether every referenced key exists (unreferenced objects
// are reported, not failures: they may be files the database never knew).
func (r *RefsResult) OK() bool { return r.Missing == 0 }

// VerifyRefs checks that every key the query returns exists as an object
// and counts the objects no row references. Both sides stream in key
// order — the database sorts the query's keys (COLLATE "C": byte order,
// S3's order) and the bucket is listed in parallel key ranges — and are
// merged, so memory stays flat however many rows and objects there are.
// Keys whose object name needed source.ObjectKey's escape (rare: names
// starting with "%!") sort differently; each is checked with a HEAD.
func VerifyRefs(ctx context.Context, conn *pgx.Conn, st FileStore, o RefsOptions) (*RefsResult, error) {
	if o.ListJobs <= 0 {
		o.ListJobs = 8
	}
	if o.MaxListed <= 0 {
		o.MaxListed = 1000
	}
	start := time.Now()
	res := &RefsResult{Query: o.Query, MissingKeys: []string{}, UnreferencedKeys: []string{}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	sql := `SELECT kwickmig_key::text FROM (` + strings.TrimRight(strings.TrimSpace(o.Query), ";") +
		`) AS kwickmig_q(kwickmig_key) ORDER BY kwickmig_key::text COLLATE "C" NULLS FIRST`
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("source: query: %s", oneLine(err))
	}
	defer rows.Close()
	escaped := map[string]bool{} // escaped keys referenced (checked by HEAD)

	// next returns the next distinct, mappable key of the query, in order.
	var last string
	haveLast := false
	next := func() (string, bool, error) {
		for rows.Next() {
			var rel *string
			if err := rows.Scan(&rel); err != nil {
				return "", false, fmt.Errorf("source: query: %s", oneLine(err))
			}
			res.Rows++
			if rel == nil {
				res.NullKeys++
				continue
			}
			if haveLast && *rel == last {
				res.DuplicateRefs++
				continue
			}
			last, haveLast = *rel, true
			res.DistinctKeys++
			full, err := source.ObjectKey(o.Prefix, *rel)
			if err != nil {
				res.missing(*rel+" ("+err.Error()+")", o.MaxListed)
				continue
			}
			key := full[len(o.Prefix):]
			if key != *rel {
				escaped[key] = true
				if _, err := st.Head(ctx, key); errors.Is(err, objstore.ErrNotExist) {
					res.missing(*rel, o.MaxListed)
				} else if err != nil {
					return "", false, err
				} else {
					res.Found++
				}
				continue
			}
			return key, true, nil
		}
		if err := rows.Err(); err != nil {
			return "", false, fmt.Errorf("source: query: %s", oneLine(err))
		}
		return "", false, nil
	}

	ref, more, err := next()
	if err != nil {
		return nil, err
	}
	err = listOrdered(ctx, st, o.ListJobs, func(info objstore.ObjectInfo) error {
		res.ObjectsListed++
		for more && ref < info.Key {
			res.missing(ref, o.MaxListed)
			if ref, more, err = next(); err != nil {
				return err
			}
		}
		switch {
		case more && ref == info.Key:
			res.Found++
			ref, more, err = next()
			return err
		case escaped[info.Key]:
			return nil
		}
		res.Unreferenced++
		if len(res.UnreferencedKeys) < o.MaxListed {
			res.UnreferencedKeys = append(res.UnreferencedKeys, info.Key)
		} else {
			res.NotListed++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for more {
		res.missing(ref, o.MaxListed)
		if ref, more, err = next(); err != nil {
			return nil, err
		}
	}
	res.DurationSeconds = time.Since(start).Seconds()
	return res, nil
}

func (r *RefsResult) missing(key string, limit int) {
	r.Missing++
	if len(r.MissingKeys) < limit {
		r.MissingKeys = append(r.MissingKeys, key)
	} else {
		r.NotListed++
	}
}
