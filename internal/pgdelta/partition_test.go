package pgdelta

import (
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// TestPartitionedTable: changes to a partitioned table are captured once,
// on the parent, including rows that move between partitions and TRUNCATE.
func TestPartitionedTable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `CREATE TABLE sales (id int, day date, amount numeric, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
		CREATE TABLE sales_2024 PARTITION OF sales FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
		CREATE TABLE sales_2025 PARTITION OF sales FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO sales SELECT g, '2024-06-01'::date + g, g FROM generate_series(1, 100) g`)
	res := e.install(InstallOptions{})
	if len(res.Tables) != 1 {
		t.Fatalf("captured %v, want the parent only", res.Tables)
	}
	e.bulkCopy(nil)
	kmtest.Exec(t, e.SourceURL,
		`INSERT INTO sales VALUES (1000, '2025-03-01', 5)`,
		`UPDATE sales SET day = day + 365 WHERE id <= 10`, // moves rows to sales_2025
		`DELETE FROM sales WHERE id BETWEEN 50 AND 60`,
		`UPDATE sales SET amount = -amount WHERE id > 90`)
	e.finalDelta(Options{})
	e.assertSame()
	kmtest.Exec(t, e.SourceURL, `TRUNCATE sales_2024`, `INSERT INTO sales VALUES (1, '2024-01-01', 1)`)
	e.finalDelta(Options{})
	e.assertSame()
	kmtest.Exec(t, e.SourceURL, `TRUNCATE sales`, `INSERT INTO sales VALUES (2, '2025-01-01', 1)`)
	e.finalDelta(Options{})
	e.assertSame()
}
