-- Run on the primary once the standby streams (setup-standby.sh, then start the standby):
-- every commit then waits for the standby named lakehouse_standby to flush it.
--   psql -h PRIMARY -U postgres -f infra/postgres/synchronous.sql
-- To degrade to asynchronous replication while the standby is down (commits stop waiting,
-- a failover in that window can lose the newest commits):
--   ALTER SYSTEM SET synchronous_standby_names = ''; SELECT pg_reload_conf();
ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (lakehouse_standby)';
SELECT pg_reload_conf();
