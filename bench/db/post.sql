-- After the load: keys, secondary indexes, foreign keys, sequences, a view.
-- The index builds of receipts and receipt_lines run in two sessions
-- (post-receipts.sql, post-lines.sql); this part needs both.
SET maintenance_work_mem = '256MB';
ALTER TABLE stores ADD PRIMARY KEY (id);
ALTER TABLE products ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX products_sku_key ON products (sku);
ALTER TABLE customers ADD PRIMARY KEY (id);
CREATE INDEX customers_email_idx ON customers (email);
CREATE INDEX audit_at_idx ON audit (at);
ALTER TABLE receipts ADD FOREIGN KEY (store_id) REFERENCES stores,
	ADD FOREIGN KEY (customer_id) REFERENCES customers;
ALTER TABLE receipt_lines ADD FOREIGN KEY (receipt_id) REFERENCES receipts,
	ADD FOREIGN KEY (product_id) REFERENCES products;
SELECT setval(pg_get_serial_sequence('receipts', 'id'), (SELECT max(id) FROM receipts));
SELECT setval(pg_get_serial_sequence('customers', 'id'), (SELECT max(id) FROM customers));
SELECT setval('export_batch_seq', 42);
CREATE VIEW receipt_summary AS
	SELECT r.id, r.store_id, s.city, r.issued_at, r.total, count(l.line_no) AS lines, sum(l.qty) AS items
	FROM receipts r JOIN stores s ON s.id = r.store_id LEFT JOIN receipt_lines l ON l.receipt_id = r.id
	GROUP BY r.id, s.city;
