"""Errors Django handles outside the GraphQL view answer JSON, never an HTML page."""

import pytest
from django.test import Client, override_settings

from accounts.error_codes import AuthErrorCode
from schema.errors import RequestErrorCode


def assert_json_error(response, status, code):
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    assert body == {"errors": [{"message": body["errors"][0]["message"], "extensions": {"code": code.value}}]}
    assert b"secret" not in response.content
    assert b"<html" not in response.content.lower()


@pytest.fixture
def faulty_client():
    with override_settings(ROOT_URLCONF="tests.urls_faults"):
        yield Client(HTTP_HOST="localhost", raise_request_exception=False)


def test_a_crash_outside_graphql_is_a_json_500(faulty_client, db):
    assert_json_error(faulty_client.get("/crash"), 500, RequestErrorCode.INTERNAL_SERVER_ERROR)


def test_permission_denied_outside_graphql_is_a_json_403(faulty_client, db):
    assert_json_error(faulty_client.get("/deny"), 403, AuthErrorCode.FORBIDDEN)


@pytest.mark.parametrize("path", ["/nowhere", "/graphql/extra", "/admin-typo"])
def test_unknown_paths_are_a_json_404(client, db, path):
    assert_json_error(client.get(path), 404, RequestErrorCode.NOT_FOUND)


def test_a_host_that_is_not_allowed_is_a_json_400(client, db, settings):
    settings.ALLOWED_HOSTS = ["auth.example.com"]
    response = client.post(
        "/graphql", {"query": "{ __typename }"}, content_type="application/json", HTTP_HOST="evil.example"
    )
    assert_json_error(response, 400, RequestErrorCode.BAD_REQUEST)
