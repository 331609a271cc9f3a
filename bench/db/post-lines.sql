SET maintenance_work_mem = '256MB';
ALTER TABLE receipt_lines ADD PRIMARY KEY (receipt_id, line_no);
CREATE INDEX receipt_lines_product_idx ON receipt_lines (product_id);
