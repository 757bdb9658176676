"""JWT_CLAIMS_PRESET=hasura: Hasura's namespaced claims in user tokens, and nothing without it."""

import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from accounts.tokens import HASURA_CLAIMS, jwt_decode, jwt_payload
from tests.conftest import PASSWORD
from tests.signing_keys import key_pair, signing_with

pytestmark = pytest.mark.django_db

TOKEN_AUTH = "mutation($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { token refreshToken } }"
REFRESH = "mutation($r: String) { refreshToken(refreshToken: $r) { token } }"
ME = "{ me { username } }"
HASURA = override_settings(JWT_CLAIMS_PRESET="hasura")
REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def sign_in(gql, email="alice@example.com") -> dict:
    body = gql(TOKEN_AUTH, {"e": email, "p": PASSWORD})
    assert "errors" not in body, body
    return body["data"]["tokenAuth"]


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_without_a_preset_tokens_carry_only_the_standard_claims(gql, user):
    token = sign_in(gql)["token"]
    assert set(claims_of(token)) == {"sub", "iat", "exp", "jti", "iss", "aud", "token_type", "sid"}


@HASURA
def test_a_users_token_names_the_user_and_the_user_role(gql, user):
    # when
    token = sign_in(gql)["token"]
    # then
    assert claims_of(token)[HASURA_CLAIMS] == {
        "x-hasura-user-id": str(user.pk),
        "x-hasura-default-role": "user",
        "x-hasura-allowed-roles": ["user"],
    }
    assert claims_of(token)[HASURA_CLAIMS]["x-hasura-user-id"] == claims_of(token)["sub"]
    # and Gatehouse itself still accepts the token
    assert gql(ME, token=token) == {"data": {"me": {"username": "alice"}}}
    assert jwt_decode(token)[HASURA_CLAIMS]["x-hasura-user-id"] == str(user.pk)


@HASURA
def test_staff_and_groups_are_allowed_roles(gql, make_user):
    # given: a staff member in two groups, one of them named like a built-in role
    member = make_user(email="staff@example.com", is_staff=True)
    editors, _ = Group.objects.get_or_create(name="editors")
    user_group, _ = Group.objects.get_or_create(name="user")
    auditors, _ = Group.objects.get_or_create(name="auditors")
    member.groups.add(editors, user_group, auditors)
    # when
    roles = claims_of(sign_in(gql, "staff@example.com")["token"])[HASURA_CLAIMS]["x-hasura-allowed-roles"]
    # then: user first, staff, then each group once (sorted)
    assert roles == ["user", "staff", "auditors", "editors"]


@HASURA
def test_a_refresh_reads_the_roles_again(gql, user):
    tokens = sign_in(gql)
    assert claims_of(tokens["token"])[HASURA_CLAIMS]["x-hasura-allowed-roles"] == ["user"]
    group, _ = Group.objects.get_or_create(name="reviewers")
    user.groups.add(group)
    refreshed = gql(REFRESH, {"r": tokens["refreshToken"]})["data"]["refreshToken"]["token"]
    assert claims_of(refreshed)[HASURA_CLAIMS]["x-hasura-allowed-roles"] == ["user", "reviewers"]


@HASURA
def test_hasura_verifies_the_claims_with_the_published_key(gql, user, tmp_path):
    # The gateway's view: an RS256 token, checked with the JWKS key, carrying the namespace.
    private, _ = key_pair(tmp_path, "RS256")
    with signing_with("RS256", private):
        from accounts.keys import published_jwks

        token = sign_in(gql)["token"]
        key = jwt.PyJWK.from_dict(published_jwks()["keys"][0]).key
    claims = jwt.decode(token, key, algorithms=["RS256"], audience=settings.GRAPHQL_JWT["JWT_AUDIENCE"])
    assert claims[HASURA_CLAIMS]["x-hasura-default-role"] == "user"


def test_an_unknown_preset_is_refused(user):
    with override_settings(JWT_CLAIMS_PRESET="auth0"), pytest.raises(ImproperlyConfigured, match="JWT_CLAIMS_PRESET"):
        jwt_payload(user, session_id="0" * 32)


@pytest.mark.parametrize(("value", "refused"), [("hasura", False), ("HASURA", False), ("", False), ("auth0", True)])
def test_the_preset_from_the_environment(value, refused):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JWT_"))}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.local", JWT_CLAIMS_PRESET=value)
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
         "print(repr(settings.JWT_CLAIMS_PRESET))"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if refused:
        assert result.returncode != 0
        assert "ImproperlyConfigured: JWT_CLAIMS_PRESET must be one of hasura" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == repr(value.lower())
