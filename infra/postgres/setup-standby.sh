#!/usr/bin/env bash
# Build a hot standby of the lakehouse's PostgreSQL primary (docs/operations.md,
# "PostgreSQL streaming replication").
#
#   setup-standby.sh PRIMARY_HOST PRIMARY_PORT REPLICATION_USER STANDBY_DATA_DIR [NAME]
#
# Takes a base backup over the replication protocol (WAL streamed alongside, so the copy is
# consistent), creates the physical replication slot NAME on the primary, and writes
# standby.signal and primary_conninfo (application_name=NAME, which primary.conf's
# synchronous_standby_names expects; default lakehouse_standby). Run it as the user that
# will own and run the standby's cluster; the password comes from ~/.pgpass or PGPASSWORD,
# never from the command line. Then start the standby (pg_ctl -D STANDBY_DATA_DIR start) and
# run synchronous.sql on the primary.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 PRIMARY_HOST PRIMARY_PORT REPLICATION_USER STANDBY_DATA_DIR [NAME]" >&2
  exit 64
fi
host=$1 port=$2 user=$3 data=$4 name=${5:-lakehouse_standby}
if [ -e "$data" ] && [ -n "$(ls -A "$data" 2>/dev/null)" ]; then
  echo "error: $data is not empty: a standby is built into an empty folder" >&2
  exit 65
fi
bindir=${PG_BINDIR:-$(dirname "$(command -v pg_basebackup 2>/dev/null || ls /usr/lib/postgresql/*/bin/pg_basebackup | sort -V | tail -1)")}
"$bindir/pg_basebackup" \
  --dbname "host=$host port=$port user=$user application_name=$name" \
  --pgdata "$data" --wal-method stream --write-recovery-conf \
  --create-slot --slot "$name" --checkpoint fast --no-password
echo "standby $name ready in $data: start it with $bindir/pg_ctl -D $data start,"
echo "then make replication synchronous on the primary: psql -f infra/postgres/synchronous.sql"
