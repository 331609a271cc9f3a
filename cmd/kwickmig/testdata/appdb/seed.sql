-- Two months of trading for schema.sql.
INSERT INTO shop.stores (id, code, name, opened_on, tags) VALUES
	(1, 'PAR1', 'Paris Bastille', '2019-03-01', '{city,flagship}'),
	(2, 'LYO1', 'Lyon Part-Dieu', '2021-06-15', '{city}'),
	(3, 'ANN1', 'Annecy', '2024-11-02', '{}');
INSERT INTO shop.customers (email, full_name, city, home_store, tier, fav_items, prefs, avatar)
	SELECT 'c' || g || '@example.org', 'Customer ' || g, (ARRAY['Paris', 'Lyon', 'Annecy', NULL])[g % 4 + 1],
		CASE WHEN g % 5 <> 0 THEN g % 3 + 1 END, g % 3, ARRAY[g % 17, g % 23], jsonb_build_object('news', g % 2 = 0, 'lang', 'fr'),
		CASE WHEN g % 4 = 0 THEN decode(md5(g::text), 'hex') END
	FROM generate_series(1, 300) g;
INSERT INTO shop.receipts (id, sold_on, store_id, customer_id, paid_with, total, sold_at, signature)
	SELECT g, DATE '2026-01-01' + g % 59, g % 3 + 1, CASE WHEN g % 6 <> 0 THEN g % 300 + 1 END,
		(enum_range(NULL::shop.pay_method))[g % 4 + 1], (g % 97) * 1.25,
		(DATE '2026-01-01' + g % 59) + make_interval(hours => 8 + g % 12, mins => g % 60), decode(md5('r' || g), 'hex')
	FROM generate_series(1, 800) g;
SELECT setval('shop.receipt_no', 800);
INSERT INTO shop.receipt_lines (receipt_id, sold_on, line_no, sku, qty, unit_price, discounts)
	SELECT r.id, r.sold_on, l, 'SKU-' || (r.id * l) % 211, l * 0.5, (r.id % 40) + 0.99, CASE WHEN l = 2 THEN ARRAY[0.10, 0.05] END
	FROM shop.receipts r, generate_series(1, 2) l;
REFRESH MATERIALIZED VIEW shop.daily_sales;
