#!/bin/sh
# Back up a whistle instance into one timestamped archive of ciphertext and public data.
#
#   deploy/backup.sh [--instance DIR] [--out DIR]
#
# The archive (whistle-backup-YYYYMMDDTHHMMSSZ.tar, mode 0600) holds:
#   database.pgdump or database.sqlite3  pg_dump custom format, or a consistent SQLite copy
#                                        taken with SQLite's online backup API (safe while
#                                        the service runs)
#   blobs/                               the sealed files
#   public-keys/                         one .pub file per registered key, and list.txt;
#                                        the trust anchor and the audit trail's anchors
#   config-public.toml                   the settings, without secret_key and the URLs
#   FORMAT, MANIFEST.sha256              SHA-256 of every other file (sha256sum format)
# It never holds a private key or the secret key: tips are sealed to the officers' and
# the recovery key, whose private halves live with the officers and offline, and the
# secret key only signs visits' cookies (restore.sh makes a new one). Everything in the
# archive is ciphertext, hashes or public data, so copying it off-site is safe.
#
# Reads the instance like the app: --instance, else $WHISTLE_INSTANCE, else ./instance;
# the database from $WHISTLE_DATABASE_URL, else the instance's config.toml.
# Output folder: --out, else $WHISTLE_BACKUP_DIR, else ./backups.
# Python: $WHISTLE_PYTHON, else the project's .venv, else python3.
# See docs/operations.md.
set -eu
umask 077

. "$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)/common.sh"
out=${WHISTLE_BACKUP_DIR:-backups}

usage() { echo "usage: $0 [--instance DIR] [--out DIR]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --instance) [ $# -ge 2 ] || usage; instance=$2; shift 2 ;;
        --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) usage ;;
    esac
done
WHISTLE_INSTANCE=$instance
export WHISTLE_INSTANCE

settings=$("$py" -m whistle.backup settings)
eval "$settings"

mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
archive=$out/whistle-backup-$stamp.tar
[ ! -e "$archive" ] || { echo "error: $archive exists already" >&2; exit 1; }
stage=$(mktemp -d "$out/.whistle-backup.XXXXXX")
trap 'rm -rf "$stage"' EXIT
trap 'exit 130' INT TERM

# The database first: a sealed file it names is in the store before its row is committed,
# so every file the copy names is there when the files are read next.
case $WB_DB_KIND in
    sqlite)
        "$py" -m whistle.backup sqlite-copy "$WB_SQLITE_PATH" "$stage/database.sqlite3" ;;
    postgresql)
        command -v pg_dump >/dev/null || { echo "error: pg_dump is not installed" >&2; exit 1; }
        pg_dump --format=custom --no-owner --no-privileges --file="$stage/database.pgdump" ;;
esac
"$py" -m whistle.backup public-keys "$stage/public-keys"
"$py" -m whistle.backup config-public "$stage/config-public.toml"
sum=$("$py" -m whistle.backup pack "$stage" "$WB_BLOB_DIR" "$archive")
printf '%s  %s\n' "$sum" "$(basename "$archive")" > "$archive.sha256"

echo "$archive"
echo "SHA-256 $sum (also in $archive.sha256; keep a copy apart from the archive)" >&2
