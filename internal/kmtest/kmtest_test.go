package kmtest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
)

// TestHarness proves the harness's servers answer: a bucket can be listed and
// both databases accept queries.
func TestHarness(t *testing.T) {
	t.Run("s3", func(t *testing.T) {
		e := S3(t)
		out, err := e.Client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &e.Bucket})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Contents) != 0 {
			t.Fatalf("new bucket has %d objects, want 0", len(out.Contents))
		}
	})
	t.Run("pg", func(t *testing.T) {
		e := PG(t)
		for _, u := range []string{e.SourceURL, e.TargetURL} {
			c, err := pgx.Connect(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			var db string
			if err := c.QueryRow(context.Background(), "select current_database()").Scan(&db); err != nil {
				t.Fatal(err)
			}
			c.Close(context.Background())
			if db != e.DBName {
				t.Fatalf("database %q, want %q", db, e.DBName)
			}
		}
	})
}

func TestWithDB(t *testing.T) {
	for _, tc := range []struct{ in, db, want string }{
		{"postgres://u:p@h:1/postgres?sslmode=disable", "x", "postgres://u:p@h:1/x?sslmode=disable"},
		{"postgres://u:p@h:1/postgres", "x", "postgres://u:p@h:1/x"},
	} {
		if got := withDB(tc.in, tc.db); got != tc.want {
			t.Errorf("withDB(%q)=%q, want %q", tc.in, got, tc.want)
		}
	}
}
