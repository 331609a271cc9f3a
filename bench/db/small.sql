-- stores, products, customers and audit; psql variables :customers, :audit.
\ir funcs.sql
INSERT INTO stores
	SELECT g, 'Kwick ' || g, (ARRAY['Stockholm','Göteborg','Malmö','Uppsala','Umeå','Lund','Örebro'])[1 + g % 7],
		date '2010-01-01' + (g * 13) % 5000
	FROM generate_series(1, 200) g;
INSERT INTO products
	SELECT g, 'SKU-' || lpad(g::text, 6, '0'), 'Product ' || g || ' ' || substr(md5('p' || g), 1, 12), pg_temp.b_price(g)
	FROM generate_series(1, 5000) g;
INSERT INTO customers (id, email, name, created_at)
	SELECT g, 'customer' || g || '@example.com', 'Customer ' || substr(md5('c' || g), 1, 10),
		timestamptz '2020-01-01 00:00:00+00' + g * interval '97 s'
	FROM generate_series(1, :customers) g;
INSERT INTO audit (at, actor, action, receipt_id)
	SELECT timestamptz '2025-01-01 00:00:00+00' + g * interval '61 s', 'user' || (g % 40),
		(ARRAY['login','void','refund','reprint','price-override'])[1 + g % 5], CASE WHEN g % 3 = 0 THEN g * 4 END
	FROM generate_series(1, :audit) g;
