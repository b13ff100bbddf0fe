-- The role `miky serve` connects as: miky_app.
--
-- Migrations run as the owner of the database (MIGRATE_DATABASE_URL, or
-- DATABASE_URL when that is unset); the app runs as miky_app, which owns
-- nothing, so it can run no DDL (no CREATE on the schema, no ALTER or DROP
-- of tables it does not own), and which may not rewrite money history:
-- credit_ledger, cash_ledger, admin_audit and stripe_events take SELECT
-- and INSERT only.  Foreign-key actions (ON DELETE SET NULL into credit_ledger when
-- an account goes) run as the owner of the referencing table, so they
-- still work.
--
-- The grants are applied by miky_app_grants(), which `miky migrate` calls
-- again after every migration it applies, and once at the end of every
-- run, so a table that a later migration adds gets them too, and drift
-- (a table made by hand, a grant revoked) is repaired by the next run.
-- A migration that adds an append-only table adds it to the list below
-- (CREATE OR REPLACE FUNCTION).
--
-- The role is cluster-wide.  Creating it needs CREATEROLE (or a
-- superuser); an owner without it needs the role made once beforehand by
-- a superuser (docs/deploy.md): CREATE ROLE miky_app LOGIN.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'miky_app') THEN
        BEGIN
            CREATE ROLE miky_app LOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'role miky_app does not exist, and % may not create it', current_user
                USING HINT = 'As a superuser, once: CREATE ROLE miky_app LOGIN';
        END;
    END IF;
END
$$;

-- PostgreSQL 15 no longer lets PUBLIC create in the public schema; a
-- database made by an older version still may.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

CREATE FUNCTION miky_app_grants() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    -- Money history: the app appends, never rewrites.
    append_only CONSTANT text[] := ARRAY['credit_ledger', 'cash_ledger',
                                         'admin_audit', 'stripe_events'];
    t text;
BEGIN
    GRANT USAGE ON SCHEMA public TO miky_app;
    FOR t IN SELECT c.relname FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
    LOOP
        EXECUTE format('REVOKE ALL ON public.%I FROM miky_app', t);
        IF t = 'schema_migrations' THEN
            EXECUTE format('GRANT SELECT ON public.%I TO miky_app', t);
        ELSIF t = ANY (append_only) THEN
            EXECUTE format('GRANT SELECT, INSERT ON public.%I TO miky_app', t);
        ELSE
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON public.%I TO miky_app', t);
        END IF;
    END LOOP;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO miky_app;
END;
$$;

SELECT miky_app_grants();
