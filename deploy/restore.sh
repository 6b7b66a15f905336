#!/bin/sh
# Restore a whistle backup made by deploy/backup.sh.
#
#   deploy/restore.sh [--force] [--instance DIR] ARCHIVE
#
# 1. Checks every file of the archive against its manifest (SHA-256) before using any:
#    a damaged or altered archive is refused and nothing is changed.
# 2. A new instance folder gets the backed-up settings and a NEW secret key (the secret key
#    only signs visits' cookies; no stored secret depends on it). An instance that has its
#    own config.toml keeps it: set its database_url (or WHISTLE_DATABASE_URL) first.
# 3. Refuses a database or file store that is not empty, unless --force (which replaces
#    them: PostgreSQL objects from the dump are dropped first, sealed files are removed).
# 4. Restores the database (pg_restore into the configured PostgreSQL database, or the
#    SQLite file) and the sealed files, then runs `whistle db upgrade`.
# Stop the service before restoring. The tips then open with the same private keys as
# before; restore.sh prints which. See docs/operations.md.
#
# Instance, database and Python are found as in backup.sh.
set -eu
umask 077

. "$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)/common.sh"
force=0
archive=

usage() { echo "usage: $0 [--force] [--instance DIR] ARCHIVE" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --force) force=1; shift ;;
        --instance) [ $# -ge 2 ] || usage; instance=$2; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        -*) usage ;;
        *) [ -z "$archive" ] || usage; archive=$1; shift ;;
    esac
done
[ -n "$archive" ] || usage
[ -f "$archive" ] || { echo "error: no archive $archive" >&2; exit 1; }
WHISTLE_INSTANCE=$instance
export WHISTLE_INSTANCE

stage=$(mktemp -d "${TMPDIR:-/tmp}/whistle-restore.XXXXXX")
trap 'rm -rf "$stage"' EXIT
trap 'exit 130' INT TERM

"$py" -m whistle.backup unpack "$archive" "$stage"
"$py" -m whistle.backup init-config "$stage/config-public.toml"
"$py" -m whistle.backup instance-files "$stage/public-keys"
settings=$("$py" -m whistle.backup settings)
eval "$settings"

if [ -f "$stage/database.pgdump" ]; then kind=postgresql; else kind=sqlite; fi
if [ "$kind" != "$WB_DB_KIND" ]; then
    echo "error: the archive holds a $kind database but the instance is configured for $WB_DB_KIND" >&2
    exit 1
fi
if [ "$force" = 0 ]; then
    if ! state=$("$py" -m whistle.backup target-state); then
        echo "error: refusing to overwrite: $state. Restore into an empty database and file store, or pass --force." >&2
        exit 1
    fi
fi

case $kind in
    sqlite)
        "$py" -m whistle.backup restore-sqlite "$stage/database.sqlite3" "$WB_SQLITE_PATH" ;;
    postgresql)
        command -v pg_restore >/dev/null || { echo "error: pg_restore is not installed" >&2; exit 1; }
        if [ "$force" = 1 ]; then clean="--clean --if-exists"; else clean=; fi
        # shellcheck disable=SC2086  # $clean is two words or none
        pg_restore --no-owner --no-privileges --exit-on-error --single-transaction $clean \
            --dbname="$PGDATABASE" "$stage/database.pgdump" ;;
esac
if [ "$force" = 1 ]; then
    "$py" -m whistle.backup restore-blobs --replace "$stage/blobs" "$WB_BLOB_DIR"
else
    "$py" -m whistle.backup restore-blobs "$stage/blobs" "$WB_BLOB_DIR"
fi
"$py" -m whistle.cli db upgrade --instance "$instance"
"$py" -m whistle.backup summary
