SET maintenance_work_mem = '256MB';
ALTER TABLE receipts ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX receipts_file_key_key ON receipts (file_key);
CREATE INDEX receipts_store_issued_idx ON receipts (store_id, issued_at);
CREATE INDEX receipts_customer_idx ON receipts (customer_id);
