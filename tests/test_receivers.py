"""The production entry point drops the request receivers that would do nothing (config.receivers)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import signals
from django.core.cache import close_caches
from django.db import close_old_connections, reset_queries
from django.test import override_settings

from config.receivers import drop_idle_request_receivers
from tests.live import production_env

ROOT = Path(__file__).resolve().parent.parent
RECEIVERS = """
import json
import config.wsgi
from django.core import signals
def names(signal):
    return sorted({getattr(r, "__name__", "?") for r in signal._live_receivers(None)[0]})
print(json.dumps({"started": names(signals.request_started), "finished": names(signals.request_finished)}))
"""
LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
REDIS = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/0"}}
REDIS_CLOSING = {
    "default": {**REDIS["default"], "OPTIONS": {"CLOSE_CONNECTION": True}},
}
OTHER = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": "unused"}}


@pytest.fixture
def receivers_restored():
    yield
    signals.request_started.connect(reset_queries)
    signals.request_finished.connect(close_caches)


def connected(signal, receiver) -> bool:
    return receiver in signal._live_receivers(None)[0]


def test_the_production_server_keeps_only_the_connection_recycling(tmp_path):
    # when: the WSGI module gunicorn loads, with the production settings
    env = production_env(tmp_path)
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    result = subprocess.run(  # noqa: S603 (this interpreter, a fixed script)
        [sys.executable, "-c", RECEIVERS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    receivers = json.loads(result.stdout.strip().splitlines()[-1])
    # then
    assert "close_old_connections" in receivers["started"]
    assert "close_old_connections" in receivers["finished"]
    assert "reset_queries" not in receivers["started"]
    assert "close_caches" not in receivers["finished"]


@pytest.mark.usefixtures("receivers_restored")
@pytest.mark.parametrize("caches", [LOCMEM, REDIS], ids=["locmem", "django-redis"])
def test_caches_whose_close_does_nothing_lose_the_receiver(caches):
    with override_settings(CACHES=caches, DEBUG=False):
        assert drop_idle_request_receivers() == ["reset_queries", "close_caches"]
    assert not connected(signals.request_finished, close_caches)
    assert connected(signals.request_finished, close_old_connections)
    assert connected(signals.request_started, close_old_connections)


@pytest.mark.usefixtures("receivers_restored")
@pytest.mark.parametrize("caches", [REDIS_CLOSING, OTHER], ids=["django-redis closing", "another backend"])
def test_caches_that_close_something_keep_it(caches):
    with override_settings(CACHES=caches, DEBUG=False):
        assert drop_idle_request_receivers() == ["reset_queries"]
    assert connected(signals.request_finished, close_caches)


@pytest.mark.usefixtures("receivers_restored")
def test_debug_keeps_the_query_log_reset():
    with override_settings(CACHES=LOCMEM, DEBUG=True):
        assert drop_idle_request_receivers() == ["close_caches"]
    assert connected(signals.request_started, reset_queries)
