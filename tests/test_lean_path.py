"""The GraphQL path pays for nothing it does not use; the admin keeps what it needs.

Django's session, CSRF, session-user and message middleware run for the admin only
(config/middleware.py); the document cache is bounded.
"""

import json

import pytest
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.test import Client
from django.utils.module_loading import import_string

from schema.views import current_policy, prepare
from tests.conftest import PASSWORD

ME = json.dumps({"query": "query { me { id username } }"})


def test_each_browser_middleware_is_the_subclass_that_skips_the_api():
    loaded = [import_string(path) for path in settings.MIDDLEWARE]
    for django_class in (SessionMiddleware, CsrfViewMiddleware, AuthenticationMiddleware, MessageMiddleware):
        (used,) = [cls for cls in loaded if issubclass(cls, django_class)]
        assert used.__module__ == "config.middleware", used


@pytest.mark.django_db
def test_a_graphql_request_touches_no_session_and_sets_no_cookie(token):
    # given: a browser that holds a session cookie and a CSRF cookie of the admin
    client = Client(HTTP_HOST="localhost")
    client.cookies["sessionid"] = "x" * 32
    client.cookies["csrftoken"] = "y" * 32

    # when: it sends an authenticated and an anonymous GraphQL request
    answers = [
        client.post("/graphql", ME, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"),
        client.post("/graphql", ME, content_type="application/json"),
    ]

    # then: both are answered, with no cookie set and nothing varying on the cookie
    assert answers[0].json()["data"]["me"]["username"] == "alice"
    assert answers[1].json() == {"data": {"me": None}}
    for response in answers:
        assert not response.cookies
        assert "Cookie" not in response.get("Vary", "")
        # no lazy session user was attached: the Bearer token is the only credential
        assert not hasattr(response.wsgi_request, "session")
        assert not hasattr(response.wsgi_request, "_messages")


@pytest.mark.django_db
def test_the_admin_still_has_sessions_csrf_and_messages(make_user):
    # given: a staff member
    make_user("root", "root@example.com", is_staff=True, is_superuser=True)
    client = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)

    # when: the login form is fetched, then posted without its CSRF token
    form = client.get("/admin/login/")
    refused = client.post("/admin/login/", {"username": "root@example.com", "password": PASSWORD})

    # then: the form set a CSRF cookie, and the post without the token was refused
    assert form.status_code == 200
    assert "csrftoken" in form.cookies
    assert refused.status_code == 403

    # when: posted with the token
    signed_in = client.post(
        "/admin/login/",
        {
            "username": "root@example.com",
            "password": PASSWORD,
            "csrfmiddlewaretoken": form.cookies["csrftoken"].value,
            "next": "/admin/",
        },
    )

    # then: a session is opened, and the admin serves its pages with the session user
    assert signed_in.status_code == 302
    assert "sessionid" in signed_in.cookies
    assert client.get("/admin/").status_code == 200


def test_the_document_cache_is_bounded():
    # given: an empty cache
    prepare.cache_clear()
    policy = current_policy()

    # when: more distinct documents arrive than it holds
    limit = prepare.cache_info().maxsize
    for number in range(limit + 50):
        prepare(f"query Q{number} {{ me {{ id }} }}", policy)

    # then: it holds at most its bound
    assert limit == 512
    assert prepare.cache_info().currsize == limit
    prepare.cache_clear()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("origin", "allowed"),
    [(None, False), ("https://app.example.com", True), ("https://evil.example.net", False)],
)
def test_cors_headers_are_the_libraries_with_or_without_an_origin(settings, origin, allowed):
    # given: one allowed browser origin
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    client = Client(HTTP_HOST="localhost")
    headers = {"HTTP_ORIGIN": origin} if origin else {}

    # when
    response = client.post("/graphql", ME, content_type="application/json", **headers)

    # then: the answer always varies on Origin, and only an allowed origin is named
    assert response.json() == {"data": {"me": None}}
    assert "origin" in response["Vary"].lower()
    assert response.get("Access-Control-Allow-Origin") == (origin if allowed else None)
