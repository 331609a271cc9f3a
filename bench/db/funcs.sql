-- Deterministic value formulas for the generated receipts database, as
-- session-local (pg_temp) SQL functions so that nothing of the generator is
-- left in the database the tools copy. Every value is a function of the row
-- number g (hashint8 is stable for a given PostgreSQL major version).
CREATE FUNCTION pg_temp.b_product(g bigint, k int) RETURNS int
	LANGUAGE sql IMMUTABLE AS $$ SELECT 1 + (abs(hashint8(g * 4 + k)) % 5000)::int $$;
CREATE FUNCTION pg_temp.b_qty(g bigint, k int) RETURNS int
	LANGUAGE sql IMMUTABLE AS $$ SELECT 1 + (abs(hashint8(-(g * 4 + k))) % 4)::int $$;
CREATE FUNCTION pg_temp.b_price(p int) RETURNS numeric
	LANGUAGE sql IMMUTABLE AS $$ SELECT round(5 + ((p::bigint * 7907) % 20000) / 100.0, 2) $$;
CREATE FUNCTION pg_temp.b_store(g bigint) RETURNS int
	LANGUAGE sql IMMUTABLE AS $$ SELECT 1 + (abs(hashint8(g)) % 200)::int $$;
CREATE FUNCTION pg_temp.b_uuid(g bigint) RETURNS text
	LANGUAGE sql IMMUTABLE AS $$ SELECT md5('receipt' || g)::uuid::text $$;
