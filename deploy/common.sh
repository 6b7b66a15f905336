# Sourced by backup.sh and restore.sh: where the project's Python and the instance are,
# found as the app finds them. Sets $here, $py and $instance.
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
py=${WHISTLE_PYTHON:-}
if [ -z "$py" ]; then
    if [ -x "$here/../.venv/bin/python" ]; then py=$here/../.venv/bin/python; else py=python3; fi
fi
instance=${WHISTLE_INSTANCE:-instance}
