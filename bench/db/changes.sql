-- :changes row changes on a generated receipts database (ids 1..R, 3 lines
-- each), in transactions of 1,000 rows, for the final-delta benchmark:
--   updates  50%: C/4 receipts (total, payload.note), the rest of the half on receipt_lines (qty)
--   inserts  30%: 3C/40 new receipts with 3 lines each
--   deletes  20%: C/20 receipts with their 3 lines each
-- With C = 100,000: 25,000 + 25,000 updates, 7,500 + 22,500 inserts, 5,000 + 15,000 deletes.
-- Order: updates, inserts, deletes (a deleted receipt may have been updated
-- first; every statement hits exactly the rows it names).
SET bench.changes = :changes;
DO $$
DECLARE
	c bigint := current_setting('bench.changes')::bigint;
	r bigint;
	upd_r bigint := c / 4;
	ins_r bigint := c * 3 / 40;
	del_r bigint := c / 20;
	upd_l bigint;
	su bigint; sl bigint; sd bigint;
	b bigint := 1000;
	i bigint; n bigint; done bigint := 0;
BEGIN
	SELECT max(id) INTO r FROM receipts;
	upd_l := c - upd_r - 4 * ins_r - 4 * del_r;
	IF r IS NULL OR r < upd_r + del_r OR r < 3 * del_r OR r < upd_l / 3 + 1 THEN
		RAISE EXCEPTION 'database too small for % changes: % receipts', c, r;
	END IF;
	su := r / upd_r;
	sd := r / del_r;
	sl := r / ((upd_l + 2) / 3);
	i := 0;
	WHILE i < upd_r LOOP
		UPDATE receipts SET total = total + 1, payload = jsonb_set(payload, '{note}', to_jsonb('corrected ' || id))
			WHERE id IN (SELECT r - j * su FROM generate_series(i, least(i + b, upd_r) - 1) j);
		GET DIAGNOSTICS n = ROW_COUNT;
		done := done + n;
		COMMIT;
		i := i + b;
	END LOOP;
	i := 0;
	WHILE i < upd_l LOOP
		UPDATE receipt_lines SET qty = qty + 1
			WHERE (receipt_id, line_no) IN (SELECT 1 + (j / 3) * sl, 1 + (j % 3)::int FROM generate_series(i, least(i + b, upd_l) - 1) j);
		GET DIAGNOSTICS n = ROW_COUNT;
		done := done + n;
		COMMIT;
		i := i + b;
	END LOOP;
	i := 0;
	WHILE i < ins_r LOOP
		WITH nr AS (
			INSERT INTO receipts (store_id, customer_id, file_key, issued_at, total, payload)
			SELECT 1 + j % 200, NULL, format('store-%s/2026/06/01/new-%s.json', lpad((1 + j % 200)::text, 3, '0'), j),
				timestamptz '2026-06-01 00:00:00+00' + j * interval '1 s', 10 + j % 90,
				jsonb_build_object('v', 3, 'new', j, 'items', jsonb_build_array(), 'signature', md5('new' || j))
			FROM generate_series(i, least(i + b / 4, ins_r) - 1) j
			RETURNING id)
		INSERT INTO receipt_lines (receipt_id, line_no, product_id, qty, price)
			SELECT nr.id, k, 1 + (nr.id * k) % 5000, k, 9.90 FROM nr, generate_series(1, 3) k;
		GET DIAGNOSTICS n = ROW_COUNT;
		done := done + n + n / 3;
		COMMIT;
		i := i + b / 4;
	END LOOP;
	i := 0;
	WHILE i < del_r LOOP
		DELETE FROM receipt_lines WHERE receipt_id IN (SELECT 1 + j * sd FROM generate_series(i, least(i + b / 4, del_r) - 1) j);
		GET DIAGNOSTICS n = ROW_COUNT;
		done := done + n;
		DELETE FROM receipts WHERE id IN (SELECT 1 + j * sd FROM generate_series(i, least(i + b / 4, del_r) - 1) j);
		GET DIAGNOSTICS n = ROW_COUNT;
		done := done + n;
		COMMIT;
		i := i + b / 4;
	END LOOP;
	IF done <> c THEN
		RAISE EXCEPTION 'applied % row changes, wanted %', done, c;
	END IF;
	RAISE NOTICE 'applied % row changes (% receipts updated, % lines updated, % + % inserted, % + % deleted)',
		done, upd_r, upd_l, ins_r, 3 * ins_r, del_r, 3 * del_r;
END $$;
