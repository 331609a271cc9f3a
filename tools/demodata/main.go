// Command demodata generates the demo's data set: a receipt file tree
// (<store>/<yyyy>/<mm>/<dd>/<receipt-id>.json) and a receipts database whose
// rows reference those files, then, in "late" mode, the writes that keep
// arriving until cutover (new receipts and files, updates, deletes).
//
//	demodata createdb ADMIN_URL NAME     (prints the new database's URL)
//	demodata mkbucket NAME               (S3 endpoint and credentials from AWS_* variables)
//	demodata compare SOURCE_URL TARGET_URL   (row counts and content hashes, table by table)
//	demodata init -dir DIR -db URL -n 5000
//	demodata late -dir DIR -db URL -n 200
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
)

const schema = `
CREATE TABLE stores (
  id   serial PRIMARY KEY,
  name text NOT NULL UNIQUE,
  city text NOT NULL
);
CREATE TABLE customers (
  id         bigserial PRIMARY KEY,
  email      text UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE receipts (
  id          bigserial PRIMARY KEY,
  store_id    int NOT NULL REFERENCES stores(id),
  customer_id bigint REFERENCES customers(id),
  issued_at   timestamptz NOT NULL,
  total       numeric(12,2) NOT NULL,
  payload     jsonb NOT NULL,
  file_key    text NOT NULL UNIQUE
);
CREATE INDEX receipts_issued_at ON receipts (issued_at);
CREATE TABLE receipt_lines (
  receipt_id bigint NOT NULL REFERENCES receipts(id) ON DELETE CASCADE,
  line_no    int NOT NULL,
  product    text NOT NULL,
  qty        int NOT NULL,
  price      numeric(10,2) NOT NULL,
  PRIMARY KEY (receipt_id, line_no)
);
CREATE VIEW daily_sales AS
  SELECT store_id, date_trunc('day', issued_at) AS day, sum(total) AS total FROM receipts GROUP BY 1, 2;
`

var products = []string{"Espresso", "Cappuccino", "Flat White", "Latte", "Cortado", "Croissant", "Kanelbulle", "Chai", "Mocha", "Drip"}
var cities = []string{"Stockholm", "Göteborg", "Malmö", "Uppsala", "Västerås"}

func main() {
	var err error
	switch {
	case len(os.Args) == 4 && os.Args[1] == "createdb":
		err = createDB(context.Background(), os.Args[2], os.Args[3])
	case len(os.Args) == 3 && os.Args[1] == "mkbucket":
		err = mkbucket(context.Background(), os.Args[2])
	case len(os.Args) == 4 && os.Args[1] == "compare":
		err = compare(context.Background(), os.Args[2], os.Args[3])
	default:
		goto modes
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demodata:", err)
		os.Exit(1)
	}
	return
modes:
	if len(os.Args) < 2 || (os.Args[1] != "init" && os.Args[1] != "late") {
		fmt.Fprintln(os.Stderr, "usage: demodata init|late -dir DIR -db URL -n N")
		os.Exit(2)
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	dir := fs.String("dir", "", "receipt tree root")
	db := fs.String("db", "", "database URL")
	n := fs.Int("n", 5000, "receipts to add")
	seed := fs.Uint64("seed", 1, "random seed")
	_ = fs.Parse(os.Args[2:])
	if err := run(context.Background(), mode, *dir, *db, *n, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "demodata:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, mode, dir, url string, n int, seed uint64) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	stream := uint64(1)
	if mode == "late" {
		stream = uint64(time.Now().UnixNano()) // every late batch is new
	}
	r := rand.New(rand.NewPCG(seed, stream))
	if mode == "init" {
		if _, err := conn.Exec(ctx, schema); err != nil {
			return err
		}
		for i := 1; i <= 25; i++ {
			if _, err := conn.Exec(ctx, `INSERT INTO stores (name, city) VALUES ($1, $2)`,
				fmt.Sprintf("store-%03d", i), cities[i%len(cities)]); err != nil {
				return err
			}
		}
		if _, err := conn.Exec(ctx, `INSERT INTO customers (email) SELECT 'c' || g || '@example.com' FROM generate_series(1, 2000) g`); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := addReceipts(ctx, conn, r, dir, n); err != nil {
		return err
	}
	if mode == "late" {
		// Late changes: corrections and refunds on existing receipts.
		if _, err := conn.Exec(ctx, `UPDATE receipts SET total = total + 1, payload = payload || '{"corrected":true}' WHERE id % 97 = 0`); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, `UPDATE receipt_lines SET qty = qty + 1 WHERE receipt_id % 89 = 0`); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, `DELETE FROM receipt_lines WHERE receipt_id % 211 = 0 AND line_no > 1`); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, `INSERT INTO customers (email) VALUES ('late-' || extract(epoch from now()) || '@example.com')`); err != nil {
			return err
		}
	}
	fmt.Printf("demodata %s: %d receipts (files and rows) in %.1fs\n", mode, n, time.Since(start).Seconds())
	return nil
}

func addReceipts(ctx context.Context, conn *pgx.Conn, r *rand.Rand, dir string, n int) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		store := 1 + r.IntN(25)
		issued := base.Add(time.Duration(r.Int64N(int64(24 * time.Hour * 24))))
		id := fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())
		rel := fmt.Sprintf("store-%03d/%04d/%02d/%02d/%s.json", store, issued.Year(), issued.Month(), issued.Day(), id)
		lines := 1 + r.IntN(5)
		total := 0.0
		type line struct {
			Product string  `json:"product"`
			Qty     int     `json:"qty"`
			Price   float64 `json:"price"`
		}
		var ls []line
		for l := 0; l < lines; l++ {
			ln := line{Product: products[r.IntN(len(products))], Qty: 1 + r.IntN(3), Price: float64(25+r.IntN(50)) + 0.5}
			total += float64(ln.Qty) * ln.Price
			ls = append(ls, ln)
		}
		doc := map[string]any{"receipt_id": id, "store": store, "issued_at": issued, "lines": ls, "total": total,
			"footer": "Tack för ditt köp! Välkommen åter."}
		body, _ := json.MarshalIndent(doc, "", "  ")
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			return err
		}
		var cust *int64
		if r.IntN(3) > 0 {
			c := int64(1 + r.IntN(2000))
			cust = &c
		}
		payload, _ := json.Marshal(map[string]any{"lines": ls, "channel": []string{"pos", "app"}[r.IntN(2)]})
		var rid int64
		if err := tx.QueryRow(ctx, `INSERT INTO receipts (store_id, customer_id, issued_at, total, payload, file_key)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, store, cust, issued, total, payload, rel).Scan(&rid); err != nil {
			return err
		}
		for l, ln := range ls {
			if _, err := tx.Exec(ctx, `INSERT INTO receipt_lines VALUES ($1, $2, $3, $4, $5)`, rid, l+1, ln.Product, ln.Qty, ln.Price); err != nil {
				return err
			}
		}
	}
	return tx.Commit(ctx)
}

// createDB (re)creates database name and prints its URL.
func createDB(ctx context.Context, admin, name string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return err
	}
	cfg := conn.Config()
	fmt.Printf("postgres://%s:%s@%s:%d/%s?sslmode=disable\n", cfg.User, url.QueryEscape(cfg.Password), cfg.Host, cfg.Port, name)
	return nil
}

// mkbucket creates a bucket on $AWS_ENDPOINT_URL (the demo's versitygw).
func mkbucket(ctx context.Context, name string) error {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return err
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name})
	return err
}

// compare prints, per table, row counts and a content hash on both sides,
// and fails if any differ. (kwickmig verify db is the real proof; this is
// the demo's independent cross-check.)
func compare(ctx context.Context, srcURL, dstURL string) error {
	src, err := pgx.Connect(ctx, srcURL)
	if err != nil {
		return err
	}
	defer src.Close(ctx)
	dst, err := pgx.Connect(ctx, dstURL)
	if err != nil {
		return err
	}
	defer dst.Close(ctx)
	rows, err := src.Query(ctx, `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'kwickmig') ORDER BY 1`)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	bad := 0
	for _, t := range tables {
		q := "SELECT count(*), coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)), '') FROM " + t + " x"
		var n1, n2 int64
		var h1, h2 string
		if err := src.QueryRow(ctx, q).Scan(&n1, &h1); err != nil {
			return fmt.Errorf("source %s: %w", t, err)
		}
		if err := dst.QueryRow(ctx, q).Scan(&n2, &h2); err != nil {
			return fmt.Errorf("target %s: %w", t, err)
		}
		status := "identical"
		if n1 != n2 || h1 != h2 {
			status = "DIFFERENT"
			bad++
		}
		fmt.Printf("  %-28s source %7d rows  target %7d rows  %s\n", t, n1, n2, status)
	}
	if bad > 0 {
		return fmt.Errorf("%d table(s) differ", bad)
	}
	return nil
}
