"""The User model and its manager: canonical forms, hashing, createsuperuser and the
database constraints that decide uniqueness whatever path writes a row."""

import pytest
from django.contrib.auth import authenticate
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from accounts.error_codes import UserErrorCode
from accounts.models import User
from tests.conftest import PASSWORD

# --- the manager ---------------------------------------------------------------------------


def test_login_field_is_email_and_username_is_required():
    assert User.USERNAME_FIELD == "email"
    assert User.EMAIL_FIELD == "email"
    assert User.REQUIRED_FIELDS == ["username"]


def test_create_user_hashes_the_password_and_lowercases_the_whole_email(db):
    # when
    user = User.objects.create_user(username="bob", email="Bob@Example.COM", password=PASSWORD)
    # then
    stored = User.objects.get(pk=user.pk)
    assert stored.email == "bob@example.com"
    assert stored.username == "bob"
    assert stored.password != PASSWORD
    assert PASSWORD not in stored.password
    assert stored.check_password(PASSWORD)
    assert not stored.check_password(PASSWORD.upper())
    assert stored.is_active
    assert not stored.is_staff
    assert not stored.is_superuser
    assert not stored.is_email_verified


def test_create_user_trims_the_email_and_normalises_the_username(db):
    # given: "alice" in fullwidth letters
    fullwidth = "\uff41\uff4c\uff49\uff43\uff45"
    # when
    user = User.objects.create_user(username=fullwidth, email="  Alice@Example.org ", password=PASSWORD)
    # then
    stored = User.objects.get(pk=user.pk)
    assert (stored.username, stored.email) == ("alice", "alice@example.org")


def test_create_user_keeps_the_case_of_the_username(db):
    # Usernames are public handles: stored as typed, unique ignoring case.
    user = User.objects.create_user(username="Alice", email="alice@example.com", password=PASSWORD)
    assert User.objects.get(pk=user.pk).username == "Alice"


def test_create_user_without_a_password_has_an_unusable_one(db):
    user = User.objects.create_user(username="bob", email="bob@example.com")
    stored = User.objects.get(pk=user.pk)
    assert not stored.has_usable_password()
    assert not stored.check_password("")
    assert not stored.check_password(None)


@pytest.mark.parametrize("username", [None, ""])
def test_create_user_without_a_username_is_a_value_error(db, username):
    with pytest.raises(ValueError, match="username"):
        User.objects.create_user(username=username, email="bob@example.com", password=PASSWORD)
    assert User.objects.count() == 0


@pytest.mark.parametrize("email", [None, ""])
def test_create_user_without_an_email_is_a_value_error(db, email):
    with pytest.raises(ValueError, match="email"):
        User.objects.create_user(username="bob", email=email, password=PASSWORD)
    assert User.objects.count() == 0


@pytest.mark.parametrize("username", [None, ""])
def test_create_superuser_without_a_username_is_a_value_error(db, username):
    with pytest.raises(ValueError, match="username"):
        User.objects.create_superuser(username=username, email="root@example.com", password=PASSWORD)
    assert User.objects.count() == 0


@pytest.mark.parametrize("email", [None, ""])
def test_create_superuser_without_an_email_is_a_value_error(db, email):
    with pytest.raises(ValueError, match="email"):
        User.objects.create_superuser(username="root", email=email, password=PASSWORD)
    assert User.objects.count() == 0


def test_create_user_refuses_an_invalid_email_and_writes_nothing(db):
    # when
    with pytest.raises(ValidationError) as excinfo:
        User.objects.create_user(username="bob", email="not-an-address", password=PASSWORD)
    # then
    errors = excinfo.value.error_dict
    assert list(errors) == ["email"]
    assert len(errors["email"]) == 1
    assert errors["email"][0].code == UserErrorCode.INVALID.value
    assert User.objects.count() == 0


def test_create_user_refuses_a_lookalike_username_and_writes_nothing(db):
    # given: the first letter is CYRILLIC SMALL LETTER A
    with pytest.raises(ValidationError) as excinfo:
        User.objects.create_user(username="\u0430lice", email="bob@example.com", password=PASSWORD)
    # then
    errors = excinfo.value.error_dict
    assert list(errors) == ["username"]
    assert len(errors["username"]) == 1
    assert errors["username"][0].code == UserErrorCode.INVALID.value
    assert User.objects.count() == 0


def test_create_superuser_sets_the_staff_and_superuser_flags(db):
    # when
    root = User.objects.create_superuser(username="root", email="Root@Example.com", password=PASSWORD)
    # then
    stored = User.objects.get(pk=root.pk)
    assert stored.is_staff
    assert stored.is_superuser
    assert stored.is_active
    assert stored.email == "root@example.com"
    assert stored.password != PASSWORD
    assert stored.check_password(PASSWORD)


@pytest.mark.parametrize("flag", ["is_staff", "is_superuser"])
def test_create_superuser_refuses_a_false_flag(db, flag):
    with pytest.raises(ValueError, match=flag):
        User.objects.create_superuser(username="root", email="root@example.com", password=PASSWORD, **{flag: False})
    assert User.objects.count() == 0


@pytest.mark.parametrize(
    "typed", ["alice@example.com", "ALICE@EXAMPLE.COM", "Alice@Example.Com", "  alice@example.COM  "]
)
def test_get_by_natural_key_finds_the_user_whatever_the_case(user, typed):
    assert User.objects.get_by_natural_key(typed).pk == user.pk


@pytest.mark.parametrize("typed", ["bob@example.com", "not an email", "", "alice\x00@example.com"])
def test_get_by_natural_key_of_an_unknown_or_invalid_address_does_not_exist(user, typed):
    with pytest.raises(User.DoesNotExist):
        User.objects.get_by_natural_key(typed)


def test_the_model_backend_authenticates_an_email_typed_in_another_case(user):
    # ModelBackend looks the user up through get_by_natural_key.
    assert authenticate(request=None, email="ALICE@Example.com", password=PASSWORD) == user
    assert authenticate(request=None, email="ALICE@Example.com", password="wrong-password") is None


def test_str_is_the_username(user):
    assert str(user) == "alice"


# --- createsuperuser ---------------------------------------------------------------------


def test_createsuperuser_noinput_creates_a_staff_superuser(db, monkeypatch, capsys):
    # given
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    # when
    call_command("createsuperuser", "--noinput", "--email", "Root@Example.COM", "--username", "root")
    # then
    root = User.objects.get()
    assert root.username == "root"
    assert root.email == "root@example.com"
    assert root.is_staff
    assert root.is_superuser
    assert root.is_active
    assert root.has_usable_password()
    assert root.password != PASSWORD
    assert root.check_password(PASSWORD)
    assert PASSWORD not in capsys.readouterr().out


def test_createsuperuser_noinput_refuses_an_email_taken_in_another_case(user, monkeypatch):
    # given: alice@example.com exists
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    # when
    with pytest.raises(CommandError):
        call_command("createsuperuser", "--noinput", "--email", "ALICE@example.com", "--username", "root")
    # then
    assert User.objects.count() == 1
    assert User.objects.get().username == "alice"
    assert not User.objects.get().is_superuser


def test_createsuperuser_noinput_refuses_a_username_taken_in_another_case(user, monkeypatch):
    # An operator should get a CommandError, not an IntegrityError traceback.
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    with pytest.raises(CommandError):
        call_command("createsuperuser", "--noinput", "--email", "root@example.com", "--username", "ALICE")
    assert list(User.objects.values_list("email", flat=True)) == ["alice@example.com"]


def test_createsuperuser_noinput_refuses_an_invalid_username(db, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    with pytest.raises(CommandError):
        call_command("createsuperuser", "--noinput", "--email", "root@example.com", "--username", "ro ot")
    assert User.objects.count() == 0


def test_createsuperuser_noinput_refuses_a_password_the_validators_reject(db, monkeypatch):
    # SECURITY.md: "Django's password validators on every path that sets a password".
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "123")
    with pytest.raises(CommandError):
        call_command("createsuperuser", "--noinput", "--email", "root@example.com", "--username", "root")
    assert User.objects.count() == 0


# --- database constraints (the database decides, whoever writes) -------------------------


def test_db_refuses_a_username_differing_only_in_case(user):
    # given: alice exists; when: a row is saved without the manager or any validation
    with pytest.raises(IntegrityError), transaction.atomic():
        User(username="ALICE", email="other@example.com", password="x").save()
    # then
    assert list(User.objects.values_list("username", flat=True)) == ["alice"]


def test_db_refuses_a_username_differing_only_in_case_in_bulk_create(user):
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.bulk_create([User(username="Alice", email="other@example.com", password="x")])
    assert User.objects.count() == 1


def test_db_refuses_an_uppercase_email_written_by_update(user):
    # when: the canonicalisation is bypassed by a queryset update
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.filter(pk=user.pk).update(email="Alice@example.com")
    # then
    user.refresh_from_db()
    assert user.email == "alice@example.com"


def test_db_refuses_an_uppercase_email_written_by_bulk_create(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.bulk_create([User(username="bob", email="Bob@example.com", password="x")])
    assert User.objects.count() == 0


def test_db_refuses_a_duplicate_email(user):
    with pytest.raises(IntegrityError), transaction.atomic():
        User(username="bob", email="alice@example.com", password="x").save()
    assert list(User.objects.values_list("username", flat=True)) == ["alice"]


def test_db_accepts_distinct_users_written_directly(user):
    # The constraints above refuse only what they should.
    User.objects.bulk_create([User(username="bob", email="bob@example.com", password="x")])
    assert sorted(User.objects.values_list("username", flat=True)) == ["alice", "bob"]


def test_full_clean_reports_a_username_taken_in_another_case(user):
    # The admin and other form paths validate the constraint before the database does.
    # An expression constraint has no field, so Django reports it as a non-field error.
    candidate = User(username="ALICE", email="other@example.com")
    with pytest.raises(ValidationError) as excinfo:
        candidate.full_clean(exclude=["password"])
    assert list(excinfo.value.error_dict) == [NON_FIELD_ERRORS]
    assert len(excinfo.value.error_dict[NON_FIELD_ERRORS]) == 1
    assert User.objects.count() == 1


def test_full_clean_reports_an_email_taken_in_another_case(user):
    candidate = User(username="bob", email="ALICE@example.com")
    with pytest.raises(ValidationError) as excinfo:
        candidate.full_clean(exclude=["password"])
    errors = excinfo.value.error_dict
    assert list(errors) == ["email"]
    assert len(errors["email"]) == 1
    assert errors["email"][0].code == UserErrorCode.UNIQUE.value
    assert User.objects.count() == 1


class FakeTTY:
    """Standard input that says it is a terminal, so createsuperuser prompts."""

    def isatty(self):
        return True


def test_interactive_createsuperuser_asks_again_for_a_username_taken_in_another_case(user, monkeypatch, capsys):
    # given: the operator types ALICE (taken as alice), then a free name; answers go to the prompts
    answers = iter(["root@example.com", "ALICE", "root"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    monkeypatch.setattr("getpass.getpass", lambda prompt="": PASSWORD)
    # when
    call_command("createsuperuser", interactive=True, stdin=FakeTTY())
    # then: refused once with a message, then created with the second name
    assert "already taken" in capsys.readouterr().err
    root = User.objects.get(email="root@example.com")
    assert root.username == "root"
    assert root.is_superuser
    assert User.objects.count() == 2
