-- Repeatable (README, "Functions, triggers and views"): edit in place, keep every statement re-runnable.
--
-- Foundation: time-ordered ids. EXECUTE stays with the default privileges (everyone).

-- UUID version 7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Works on PostgreSQL 14+.
CREATE OR REPLACE FUNCTION tb_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;
