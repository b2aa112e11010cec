-- The databases and roles of the chart's PostgreSQL (docs/chart.md "Databases and secrets").
--
-- Run once, by the superuser, on a new server: the chart's postgres pod mounts this file into
-- /docker-entrypoint-initdb.d, where the image's entrypoint runs it with psql on first start.
-- tests/integration/test_database_roles.py runs this very file on a real PostgreSQL. For an
-- external server, run it the same way (psql 15 or later, for \getenv):
--     psql -v ON_ERROR_STOP=1 --no-psqlrc -h HOST -U ADMIN -d postgres -f postgres-roles.sql
-- Every name and password comes from the environment (SIMMATE_PG_*), so no password is in a
-- ConfigMap or on a command line; the pod gets them from its Secrets.
--
--   prefect_role  owns Prefect's database (hasura, graphql, Prefect's migration Job, retention)
--   owner_role    owns the results database and its schema: the only one running DDL there
--                 (the chart's results-schema Job, `simmate-k8s db upgrade`)
--   writer_role   reads and writes rows of the results tables: workers, flow-run pods, Jobs,
--                 the test pod. No DDL, no DELETE, not a superuser, no other database
--   reader_role   reads the results tables, for analysis
\set ON_ERROR_STOP on

\set prefect_db ''        \getenv prefect_db SIMMATE_PG_PREFECT_DB
\set results_db ''        \getenv results_db SIMMATE_PG_RESULTS_DB
\set prefect_role ''      \getenv prefect_role SIMMATE_PG_PREFECT_ROLE
\set owner_role ''        \getenv owner_role SIMMATE_PG_OWNER_ROLE
\set writer_role ''       \getenv writer_role SIMMATE_PG_WRITER_ROLE
\set reader_role ''       \getenv reader_role SIMMATE_PG_READER_ROLE
\set prefect_password ''  \getenv prefect_password SIMMATE_PG_PREFECT_PASSWORD
\set owner_password ''    \getenv owner_password SIMMATE_PG_OWNER_PASSWORD
\set writer_password ''   \getenv writer_password SIMMATE_PG_WRITER_PASSWORD
\set reader_password ''   \getenv reader_password SIMMATE_PG_READER_PASSWORD

-- An unset variable must stop everything, not make a role without a password.
SELECT string_agg(name, ', ') AS missing FROM (VALUES
    ('SIMMATE_PG_PREFECT_DB', :'prefect_db'), ('SIMMATE_PG_RESULTS_DB', :'results_db'),
    ('SIMMATE_PG_PREFECT_ROLE', :'prefect_role'), ('SIMMATE_PG_OWNER_ROLE', :'owner_role'),
    ('SIMMATE_PG_WRITER_ROLE', :'writer_role'), ('SIMMATE_PG_READER_ROLE', :'reader_role'),
    ('SIMMATE_PG_PREFECT_PASSWORD', :'prefect_password'),
    ('SIMMATE_PG_OWNER_PASSWORD', :'owner_password'),
    ('SIMMATE_PG_WRITER_PASSWORD', :'writer_password'),
    ('SIMMATE_PG_READER_PASSWORD', :'reader_password')
) AS given (name, value) WHERE value = '' \gset
\if :{?missing}
SET simmate.missing = :'missing';
DO $$ BEGIN
    RAISE EXCEPTION 'postgres-roles.sql: set %', current_setting('simmate.missing');
END $$;
\endif

-- Login roles without any of the attributes that reach beyond their databases (the defaults,
-- spelled out because they are the point).
CREATE ROLE :"prefect_role" LOGIN PASSWORD :'prefect_password'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
CREATE ROLE :"owner_role" LOGIN PASSWORD :'owner_password'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
CREATE ROLE :"writer_role" LOGIN PASSWORD :'writer_password'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
CREATE ROLE :"reader_role" LOGIN PASSWORD :'reader_password'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;

-- Prefect's database, owned by Prefect's role. PUBLIC's CONNECT and TEMPORARY are revoked: no
-- other role (the results writer above all) may even connect.
CREATE DATABASE :"prefect_db" OWNER :"prefect_role";
ALTER DATABASE :"prefect_db" SET timezone TO 'UTC';
REVOKE ALL ON DATABASE :"prefect_db" FROM PUBLIC;

-- The results database, owned by the owner; the writer and reader may connect, nobody else.
CREATE DATABASE :"results_db" OWNER :"owner_role";
ALTER DATABASE :"results_db" SET timezone TO 'UTC';
REVOKE ALL ON DATABASE :"results_db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"results_db" TO :"writer_role", :"reader_role";

\connect :prefect_db
-- Extensions Prefect Server needs, made by the superuser; the schema belongs to Prefect's role.
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
ALTER SCHEMA public OWNER TO :"prefect_role";
REVOKE ALL ON SCHEMA public FROM PUBLIC;

\connect :results_db
-- Only the owner may create objects; the writer and reader may use what is there.
ALTER SCHEMA public OWNER TO :"owner_role";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"writer_role", :"reader_role";
-- Tables and sequences the owner creates later (the migrations) are granted as they are made.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE ON TABLES TO :"writer_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"writer_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT SELECT ON TABLES TO :"reader_role";
