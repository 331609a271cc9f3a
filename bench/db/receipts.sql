-- One chunk of receipts: rows :lo .. :hi; :customers customers exist.
\ir funcs.sql
INSERT INTO receipts (id, store_id, customer_id, file_key, issued_at, total, payload)
SELECT g, s, c, format('store-%s/%s/%s.json', lpad(s::text, 3, '0'), to_char(t AT TIME ZONE 'UTC', 'YYYY/MM/DD'), pg_temp.b_uuid(g)),
	t, q1 * pg_temp.b_price(p1) + q2 * pg_temp.b_price(p2) + q3 * pg_temp.b_price(p3),
	jsonb_build_object(
		'receipt', g, 'store', s, 'terminal', 'T' || (g % 7), 'cashier', g % 97,
		'issued', to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
		'items', jsonb_build_array(
			jsonb_build_object('sku', 'SKU-' || lpad(p1::text, 6, '0'), 'qty', q1, 'price', pg_temp.b_price(p1)),
			jsonb_build_object('sku', 'SKU-' || lpad(p2::text, 6, '0'), 'qty', q2, 'price', pg_temp.b_price(p2)),
			jsonb_build_object('sku', 'SKU-' || lpad(p3::text, 6, '0'), 'qty', q3, 'price', pg_temp.b_price(p3))),
		'payment', jsonb_build_object('method', (ARRAY['card','cash','swish','invoice'])[1 + g % 4],
			'last4', lpad((g % 10000)::text, 4, '0'), 'auth', substr(md5('auth' || g), 1, 16)),
		'loyalty', CASE WHEN c IS NULL THEN NULL ELSE jsonb_build_object('member', c, 'points', g % 500) END,
		'vat', jsonb_build_object('25', round((q1 * pg_temp.b_price(p1) + q3 * pg_temp.b_price(p3)) * 0.2, 2),
			'12', round(q2 * pg_temp.b_price(p2) * 0.107, 2)),
		'signature', md5('sig' || g))
FROM (
	SELECT g, pg_temp.b_store(g) AS s,
		CASE WHEN g % 10 < 3 THEN NULL ELSE 1 + abs(hashint8(-g)) % :customers END AS c,
		timestamptz '2025-01-01 00:00:00+00' + g * interval '15 s' AS t,
		pg_temp.b_product(g, 1) AS p1, pg_temp.b_product(g, 2) AS p2, pg_temp.b_product(g, 3) AS p3,
		pg_temp.b_qty(g, 1) AS q1, pg_temp.b_qty(g, 2) AS q2, pg_temp.b_qty(g, 3) AS q3
	FROM generate_series(:lo::bigint, :hi::bigint) g
) x;
