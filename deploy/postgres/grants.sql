-- What leakguard's service role may do, given by the role that owns the
-- tables. Run it as that owner after every `leakguard migrate` (it is
-- idempotent), e.g.
--
--   psql "postgres://leakguard_owner@db.example.com/leakguard?sslmode=verify-full" \
--        -v ON_ERROR_STOP=1 -f deploy/postgres/grants.sql
--
-- The service role (leakguard_app here) owns nothing, so it cannot disable,
-- drop or replace the triggers that keep the audit trail append-only and
-- its head moving forward only. docs/OPERATIONS.md has the whole set-up;
-- tests/integration/api_audit.rs runs leakguard under exactly these grants.

GRANT USAGE ON SCHEMA public TO leakguard_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO leakguard_app;
-- The trail is the service's to add to and read, never to change; the
-- migration history is the owner's.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM leakguard_app;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON _sqlx_migrations FROM leakguard_app;
