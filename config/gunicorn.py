"""gunicorn settings: the one command the Dockerfile and CI both run.

gunicorn -c config/gunicorn.py config.wsgi:application
"""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104 (inside the container)
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
# A request that runs longer than this is cut off (the worker is restarted).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
# Oversized request lines and headers are refused by gunicorn before Django sees them.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# Recycle workers now and then so that no leak can grow without bound.
max_requests = 10_000
max_requests_jitter = 1_000
accesslog = "-"
errorlog = "-"
# Escapes control characters in every access-log atom and error-log line (config/logs.py):
# a path or header the client sent can never start a line of its own.
logger_class = "config.logs.GunicornLogger"
# Address, method, path (without the query string: a GET may carry variables), status, size,
# timing and user agent. Never the Referer: a page's URL can hold an emailed token.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms "%(a)s"'
# No runtime control socket: Gatehouse does not use it, and its one default path is shared
# by every gunicorn on the host (and not writable for the image's non-root user).
control_socket_disable = True
