"""Liveness and readiness probes: status, methods and caching."""

import logging

import pytest
from django.db import OperationalError, connection

CACHE_DIRECTIVES = {"max-age=0", "no-cache", "no-store", "must-revalidate", "private"}


def cache_directives(response) -> set[str]:
    return {part.strip() for part in response["Cache-Control"].split(",")}


def test_healthz_answers_ok_without_the_database(client):
    # when: no `db` fixture, so any database access would fail the test
    response = client.get("/healthz")
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}
    assert cache_directives(response) == CACHE_DIRECTIVES


def test_readyz_answers_ok_when_the_database_answers(client, db):
    # when
    response = client.get("/readyz")
    # then
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert cache_directives(response) == CACHE_DIRECTIVES


def test_readyz_is_unavailable_when_the_database_fails(client, db, caplog):
    # given: the database refuses every statement
    def unreachable(execute, sql, params, many, context):
        raise OperationalError('could not connect to server: Connection refused (host "db-secret-host")\n\tIs it up?')

    # when
    with caplog.at_level(logging.ERROR), connection.execute_wrapper(unreachable):
        response = client.get("/readyz")
    # then: 503 without the reason; the reason is in the log, on one line, once
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
    assert b"db-secret-host" not in response.content
    assert cache_directives(response) == CACHE_DIRECTIVES
    [record] = [record for record in caplog.records if record.name == "config.health"]
    assert record.getMessage() == (
        "Readiness check failed: the database is unavailable: "
        'could not connect to server: Connection refused (host "db-secret-host")'
    )
    assert record.exc_info is None


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_probes_answer_only_get_and_head(client, db, path, method):
    # when
    response = client.generic(method, path)
    # then
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert "no-store" in cache_directives(response)


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_head_for_monitors_that_probe_with_it(client, db, path):
    response = client.head(path)
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_whatever_host_the_orchestrator_sends(client, db, settings, path):
    # given: a deployment that serves only its public name
    settings.ALLOWED_HOSTS = ["auth.example.com"]
    # when: the container's health check probes by loopback address
    response = client.get(path, HTTP_HOST="127.0.0.1:8000")
    # then
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
