"""Service clients: the services, the createclient and disableclient commands, and the admin."""

import hashlib
import io
import json
import re

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from accounts.models import AuthEvent, AuthEventKind, ServiceClient, User
from accounts.services import client_authenticate, client_create, client_disable, client_secret_rotate
from accounts.services.clients import CLIENT_ID, scopes_clean
from tests.conftest import PASSWORD
from tests.oauth import TOKEN_URL, basic, fixed_settings, post_form

CHANGELIST = reverse("admin:accounts_serviceclient_changelist")
ADD = reverse("admin:accounts_serviceclient_add")


@pytest.fixture(autouse=True)
def _fixed_settings(settings):
    fixed_settings(settings)


def events(kind) -> list[AuthEvent]:
    return list(AuthEvent.objects.filter(kind=kind).order_by("pk"))


# Services -------------------------------------------------------------------------


def test_client_create_stores_only_a_digest_of_a_256_bit_secret_and_audits(db, user):
    # when
    client, secret = client_create(name="  billing  ", scopes="tokens:introspect users:read", actor=user)
    # then
    client.refresh_from_db()
    assert client.name == "billing"
    assert CLIENT_ID.fullmatch(client.client_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret)  # 32 random bytes, base64url
    assert client.secret_digest == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(ServiceClient.objects.filter(pk=client.pk).values().get())
    assert client.scopes == "users:read tokens:introspect"  # canonical order
    assert client.is_active
    assert client.last_used_at is None
    (event,) = events(AuthEventKind.CLIENT_CREATED)
    assert event.identifier == f"client:{client.client_id}"
    assert event.detail == f"by user {user.pk}"
    assert secret not in f"{event.identifier} {event.detail}"


def test_client_ids_and_secrets_are_unique(db):
    made = [client_create(name=f"c{n}", scopes="users:read") for n in range(20)]
    assert len({client.client_id for client, _ in made}) == 20
    assert len({secret for _, secret in made}) == 20


@pytest.mark.parametrize(
    ("name", "scopes", "fields"),
    [
        ("", "users:read", {"name"}),
        ("x" * 101, "users:read", {"name"}),
        ("bad\x00name", "users:read", {"name"}),
        ("ok", "", {"scopes"}),
        ("ok", "users:read admin", {"scopes"}),
        ("ok", "Users:Read", {"scopes"}),
        ("", "nope", {"name", "scopes"}),
    ],
)
def test_client_create_refuses_bad_input_and_writes_nothing(db, name, scopes, fields):
    with pytest.raises(ValidationError) as refused:
        client_create(name=name, scopes=scopes)
    assert set(refused.value.message_dict) == fields
    assert not ServiceClient.objects.exists()
    assert not AuthEvent.objects.exists()


def test_scopes_clean_names_the_unknown_scope_and_the_known_ones():
    with pytest.raises(ValidationError) as refused:
        scopes_clean("users:read superuser")
    message = refused.value.message_dict["scopes"][0]
    assert "superuser" in message
    assert "users:read, users:write, tokens:introspect" in message


def test_rotation_replaces_the_secret_and_audits(db, user):
    client, old = client_create(name="billing", scopes="users:read")
    changed = client.secret_changed_at
    # when
    new = client_secret_rotate(client=client, actor=user)
    # then
    client.refresh_from_db()
    assert new != old
    assert client.secret_digest == hashlib.sha256(new.encode()).hexdigest()
    assert client.secret_changed_at > changed
    assert client_authenticate(client_id=client.client_id, client_secret=new) == client
    with pytest.raises(Exception, match="invalid_client"):
        client_authenticate(client_id=client.client_id, client_secret=old)
    (event,) = events(AuthEventKind.CLIENT_SECRET_ROTATED)
    assert (event.identifier, event.detail) == (f"client:{client.client_id}", f"by user {user.pk}")


def test_a_disabled_client_cannot_be_rotated(db):
    client, _ = client_create(name="billing", scopes="users:read")
    client_disable(client=client)
    digest = ServiceClient.objects.get(pk=client.pk).secret_digest
    with pytest.raises(ValidationError):
        client_secret_rotate(client=client)
    assert ServiceClient.objects.get(pk=client.pk).secret_digest == digest
    assert not events(AuthEventKind.CLIENT_SECRET_ROTATED)


def test_disabling_is_audited_once(db, user):
    client, secret = client_create(name="billing", scopes="users:read")
    assert client_disable(client=client, actor=user) is True
    assert client_disable(client=client, actor=user) is False
    assert not ServiceClient.objects.get(pk=client.pk).is_active
    assert len(events(AuthEventKind.CLIENT_DISABLED)) == 1
    with pytest.raises(Exception, match="invalid_client"):
        client_authenticate(client_id=client.client_id, client_secret=secret)


# Commands -------------------------------------------------------------------------


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_createclient_prints_the_client_and_its_secret_once(db):
    output = run("createclient", "billing", "--scope", "users:read users:write tokens:introspect")
    client = ServiceClient.objects.get()
    secret = re.search(r"client_secret: +(\S+)", output).group(1)
    assert client.client_id in output
    assert "users:read users:write tokens:introspect" in output
    assert client.secret_digest == hashlib.sha256(secret.encode()).hexdigest()
    (event,) = events(AuthEventKind.CLIENT_CREATED)
    assert event.detail == "by manage.py createclient"


def test_createclient_json_prints_exactly_one_line_that_gets_a_token(client, db):
    # when
    output = run("createclient", "billing", "--scope", "users:read", "--json")
    # then
    assert output.count("\n") == 1
    assert output.endswith("\n")
    data = json.loads(output)
    assert list(data) == ["client_id", "client_secret", "scope"]
    assert data["scope"] == "users:read"
    response = post_form(
        client,
        TOKEN_URL,
        {"grant_type": "client_credentials"},
        authorization=basic(data["client_id"], data["client_secret"]),
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "users:read"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["billing", "--scope", "users:read admin"], "Unknown scope(s): admin"),
        (["billing", "--scope", ""], "at least one scope"),
        (["", "--scope", "users:read"], "name"),
    ],
)
def test_createclient_refuses_bad_input_clearly_and_creates_nothing(db, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("createclient", *args)
    assert not ServiceClient.objects.exists()
    assert not AuthEvent.objects.exists()


def test_createclient_requires_a_scope(db):
    with pytest.raises(CommandError, match="--scope"):
        run("createclient", "billing")
    assert not ServiceClient.objects.exists()


def test_disableclient_disables_the_client_and_audits(db):
    client, _ = client_create(name="billing", scopes="users:read")
    output = run("disableclient", client.client_id)
    assert "Disabled" in output
    assert not ServiceClient.objects.get(pk=client.pk).is_active
    (event,) = events(AuthEventKind.CLIENT_DISABLED)
    assert event.detail == "by manage.py disableclient"
    # again: nothing more happens
    assert "already disabled" in run("disableclient", client.client_id)
    assert len(events(AuthEventKind.CLIENT_DISABLED)) == 1


@pytest.mark.parametrize("client_id", ["svc_" + "Q" * 24, "nonsense", "svc_"])
def test_disableclient_refuses_an_unknown_client(db, client_id):
    client_create(name="billing", scopes="users:read")
    with pytest.raises(CommandError, match="No service client has the client_id"):
        run("disableclient", client_id)
    assert ServiceClient.objects.get().is_active
    assert not events(AuthEventKind.CLIENT_DISABLED)


# Admin ----------------------------------------------------------------------------


@pytest.fixture
def admin_user(db):
    return User.objects.create_superuser(username="root", email="root@example.com", password=PASSWORD)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def shown_secret(response) -> str:
    return re.search(r'<code id="client-secret">([A-Za-z0-9_-]{43})</code>', response.content.decode()).group(1)


def test_admin_creates_a_client_and_shows_its_secret_once(admin_client, admin_user):
    # when
    response = admin_client.post(ADD, {"name": "billing", "scopes": ["users:read", "tokens:introspect"]})
    # then: the answer to the POST itself shows the secret, never cached, never in a cookie
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = shown_secret(response)
    assert all(secret not in morsel.value for morsel in response.cookies.values())
    client = ServiceClient.objects.get()
    assert client.scopes == "users:read tokens:introspect"
    assert client.secret_digest == hashlib.sha256(secret.encode()).hexdigest()
    (event,) = events(AuthEventKind.CLIENT_CREATED)
    assert event.detail == f"by user {admin_user.pk}"
    # and nowhere else: the change page does not show it
    page = admin_client.get(reverse("admin:accounts_serviceclient_change", args=[client.pk]))
    assert page.status_code == 200
    assert secret not in page.content.decode()
    assert client.client_id in page.content.decode()


@pytest.mark.parametrize(
    "data",
    [{"name": "", "scopes": ["users:read"]}, {"name": "billing"}, {"name": "billing", "scopes": ["root"]}],
)
def test_admin_refuses_a_bad_client_and_writes_nothing(admin_client, data):
    response = admin_client.post(ADD, data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert not ServiceClient.objects.exists()
    assert not AuthEvent.objects.exists()


def test_admin_rotates_a_secret_and_shows_the_new_one_once(admin_client, admin_user):
    # given
    client, old = client_create(name="billing", scopes="users:read")
    # when
    response = admin_client.post(CHANGELIST, {"action": "rotate_secret", "_selected_action": [client.pk]})
    # then
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    new = shown_secret(response)
    assert new != old
    assert client_authenticate(client_id=client.client_id, client_secret=new).pk == client.pk
    (event,) = events(AuthEventKind.CLIENT_SECRET_ROTATED)
    assert event.detail == f"by user {admin_user.pk}"


def test_admin_rotates_only_one_client_at_a_time(admin_client):
    made = [client_create(name=f"c{n}", scopes="users:read")[0] for n in range(2)]
    digests = list(ServiceClient.objects.order_by("pk").values_list("secret_digest", flat=True))
    response = admin_client.post(
        CHANGELIST, {"action": "rotate_secret", "_selected_action": [c.pk for c in made]}, follow=True
    )
    assert "Select exactly one client" in response.content.decode()
    assert list(ServiceClient.objects.order_by("pk").values_list("secret_digest", flat=True)) == digests
    assert not events(AuthEventKind.CLIENT_SECRET_ROTATED)


def test_admin_disables_clients_and_audits_each(admin_client, admin_user):
    made = [client_create(name=f"c{n}", scopes="users:read")[0] for n in range(2)]
    response = admin_client.post(
        CHANGELIST, {"action": "disable_clients", "_selected_action": [c.pk for c in made]}, follow=True
    )
    assert "Disabled 2 client(s)." in response.content.decode()
    assert not ServiceClient.objects.filter(is_active=True).exists()
    assert [event.detail for event in events(AuthEventKind.CLIENT_DISABLED)] == [f"by user {admin_user.pk}"] * 2


def test_admin_cannot_delete_a_client_nor_edit_its_scopes_or_state(admin_client):
    client, _ = client_create(name="billing", scopes="users:read")
    change = reverse("admin:accounts_serviceclient_change", args=[client.pk])
    # when
    admin_client.post(change, {"name": "renamed", "scopes": "users:read users:write", "is_active": ""})
    # then: the name changed, nothing else
    client.refresh_from_db()
    assert (client.name, client.scopes, client.is_active) == ("renamed", "users:read", True)
    assert admin_client.get(reverse("admin:accounts_serviceclient_delete", args=[client.pk])).status_code == 403
    assert ServiceClient.objects.filter(pk=client.pk).exists()


def test_a_non_staff_user_cannot_create_a_client(client, user):
    client.force_login(user)
    response = client.post(ADD, {"name": "billing", "scopes": ["users:read"]})
    assert response.status_code == 302
    assert not ServiceClient.objects.exists()


def test_admin_refuses_to_rotate_a_disabled_client(admin_client):
    client, _ = client_create(name="billing", scopes="users:read")
    client_disable(client=client)
    digest = ServiceClient.objects.get(pk=client.pk).secret_digest
    response = admin_client.post(CHANGELIST, {"action": "rotate_secret", "_selected_action": [client.pk]}, follow=True)
    assert "A disabled client cannot get a new secret." in response.content.decode()
    assert ServiceClient.objects.get(pk=client.pk).secret_digest == digest
    assert not events(AuthEventKind.CLIENT_SECRET_ROTATED)


def test_admin_lists_clients_without_their_secrets(admin_client):
    client, secret = client_create(name="billing", scopes="users:read")
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    page = response.content.decode()
    assert client.client_id in page
    assert secret not in page
    assert client.secret_digest not in page
