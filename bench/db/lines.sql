-- The receipt_lines of receipts :lo .. :hi (3 each, same products as the payload).
\ir funcs.sql
INSERT INTO receipt_lines (receipt_id, line_no, product_id, qty, price)
SELECT g, k, p, pg_temp.b_qty(g, k), pg_temp.b_price(p)
FROM generate_series(:lo::bigint, :hi::bigint) g, generate_series(1, 3) k, LATERAL (SELECT pg_temp.b_product(g, k) AS p) x;
