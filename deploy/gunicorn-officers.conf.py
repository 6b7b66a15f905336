"""gunicorn settings for the officers' workspace in production, behind nginx
(deploy/nginx/whistle-officers.conf).

Started by deploy/systemd/whistle-officers.service as

    gunicorn --config deploy/gunicorn-officers.conf.py

A process of its own, apart from the reporters' (deploy/gunicorn.conf.py): the officers'
app (`create_officer_app`) is a different Flask app with its own cookie, and nothing that
serves the reporter host or the onion service can route to it. Everything not set below
is the reporters' file, read from beside this one: the addressless logger and its promise
(no access log, no client address, user agent or referrer in any log line), the timeouts,
the request-line limits, the proxy settings. Command-line flags still win over both.
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path

# Every setting of the reporters' file, then the few that differ.
globals().update(
    {
        name: value
        for name, value in runpy.run_path(str(Path(__file__).with_name("gunicorn.conf.py"))).items()
        if not name.startswith("_")
    }
)

wsgi_app = "whistle:create_officer_app()"
proc_name = "whistle-officers"

# Its own loopback port (the reporters' app is on 8000), which only the officers' server
# block of nginx proxies to. Loopback TCP rather than a unix socket for the same reason as
# the reporters' (a refused connection during a restart is not written to nginx's log).
bind = [os.environ.get("WHISTLE_OFFICER_GUNICORN_BIND", "127.0.0.1:8001")]

# A municipality has a handful of officers, supervisors and admins, not the public: two
# processes are enough and keep one serving while the other decrypts a large case. The
# reporters' WEB_CONCURRENCY does not apply here.
workers = int(os.environ.get("WHISTLE_OFFICER_WORKERS") or 2)
# Threads wait for slow networks (an officer's upload of files to a reporter, a download
# of a decrypted file) as on the reporters' side, but there are few officers.
threads = 16
