"""Flows on one account racing each other: one lock order, no deadlock, no internal error,
and no session opened with a password outliving a change of that password (Postgres).

Every flow that touches an account and its sessions locks the account's row first
(FOR NO KEY UPDATE), then its sessions, then their refresh tokens and emailed links;
the single-session flows (refresh, logout) lock one session, then its refresh token;
audit entries take no lock at all. These tests race the flows in pairs through the
real request stack, each in its own thread and database connection.
"""

import re
from dataclasses import dataclass, field

import pytest
from django.core import mail
from django.db import connection
from django.test import Client, RequestFactory
from django.urls import reverse
from graphql_relay import to_global_id

from accounts.error_codes import AuthErrorCode
from accounts.models import AccountToken, RefreshToken, Session, User
from accounts.services import account_delete, password_change, password_reset, password_reset_request, session_open
from accounts.tokens import access_token_verify
from tests.conftest import error_codes
from tests.races import post, race_with_held_transaction, run_in_parallel

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent connections (Postgres)"),
]

OLD = "the-Old-passphrase-1"
CHANGED = "the-Changed-passphrase-2"
RESET_TO = "the-Reset-passphrase-3"
ADMIN_SET = "the-Admin-passphrase-4"
PASSWORDS = {"old": OLD, "passwordChange": CHANGED, "passwordReset": RESET_TO, "admin:password": ADMIN_SET}

TOKEN_AUTH = "mutation($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { token payload } }"
CHANGE = """
mutation($o: String!, $n: String!) {
  passwordChange(oldPassword: $o, newPassword: $n) { success token errors { field code } }
}
"""
RESET = """
mutation($t: String!, $n: String!) { passwordReset(token: $t, newPassword: $n) { success errors { field code } } }
"""
LOGOUT_ALL = "mutation { logoutAll { success revokedSessions } }"
REVOKE_SESSION = "mutation($id: ID!) { revokeSession(id: $id) { success errors { field code } } }"
REVOKE_TOKEN = "mutation($r: String!) { revokeToken(refreshToken: $r) { revoked } }"
REFRESH = "mutation($r: String!) { refreshToken(refreshToken: $r) { token refreshToken } }"
DELETE = "mutation($p: String!) { deleteAccount(password: $p) { success errors { field code } } }"
UPDATE = "mutation($u: String!) { updateAccount(username: $u) { success errors { field code } } }"
RESET_LINK = re.compile(r"reset-password\?token=([A-Za-z0-9_-]{43})")


def request():
    return RequestFactory().post("/graphql", REMOTE_ADDR="192.0.2.10")


def open_session(user):
    """Open a session of `user` (as a sign-in with its current password would); return its tokens."""
    return session_open(user=user)


def session_of(tokens) -> Session:
    return Session.objects.get(pk=access_token_verify(tokens.token).session_id)


def reset_link(user) -> str:
    mail.outbox.clear()
    password_reset_request(request=request(), email=user.email)
    (message,) = [message for message in mail.outbox if message.to == [user.email]]
    return RESET_LINK.search(message.body).group(1)


def internal_errors(result) -> bool:
    """Whether an HTTP result is a server failure: a 5xx or an INTERNAL_SERVER_ERROR anywhere."""
    if result["status"] >= 500:
        return True
    body = result.get("body") or {}
    return "INTERNAL_SERVER_ERROR" in error_codes(body) if isinstance(body, dict) else False


# --- the rule: no session opened with a password survives a change of that password -----------


def test_a_sign_in_waiting_on_a_password_change_is_refused_once_the_change_commits(make_user):
    # given: a password change holds the account, not yet committed
    user = make_user(email="alice@example.com", password=OLD)
    tokens = open_session(user)

    def change():
        return password_change(
            request=request(),
            user=user,
            session_id=access_token_verify(tokens.token).session_id,
            old_password=OLD,
            new_password=CHANGED,
        )

    # when: a sign-in with the old password arrives and is seen waiting on the account's row
    result = race_with_held_transaction(
        change, lambda: post({"query": TOKEN_AUTH, "variables": {"e": user.email, "p": OLD}}), lock="the account row"
    )
    # then: it saw the changed password; no session came out of it
    assert error_codes(result["body"]) == [AuthErrorCode.INVALID_CREDENTIALS.value]
    assert Session.objects.filter(user=user, revoked_at__isnull=True).count() == 1  # the changer's own


def test_a_sign_in_waiting_on_a_password_reset_is_refused_once_the_reset_commits(make_user):
    user = make_user(email="alice@example.com", password=OLD)
    link = reset_link(user)
    result = race_with_held_transaction(
        lambda: password_reset(request=request(), token=link, new_password=RESET_TO),
        lambda: post({"query": TOKEN_AUTH, "variables": {"e": user.email, "p": OLD}}),
        lock="the account row",
    )
    assert error_codes(result["body"]) == [AuthErrorCode.INVALID_CREDENTIALS.value]
    assert not Session.objects.filter(user=user, revoked_at__isnull=True).exists()


def test_a_sign_in_waiting_on_the_accounts_deletion_is_invalid_credentials_not_an_internal_error(make_user):
    # given: the account's deletion holds its row, not yet committed
    user = make_user(email="alice@example.com", password=OLD)
    result = race_with_held_transaction(
        lambda: account_delete(
            request=request(),
            user=user,
            session_id=access_token_verify(open_session(user).token).session_id,
            password=OLD,
        ),
        lambda: post({"query": TOKEN_AUTH, "variables": {"e": user.email, "p": OLD}}),
        lock="the account row",
    )
    # then: the sign-in found no account (before: a foreign-key violation, INTERNAL_SERVER_ERROR)
    assert result["status"] == 200
    assert error_codes(result["body"]) == [AuthErrorCode.INVALID_CREDENTIALS.value]
    assert not User.objects.filter(pk=user.pk).exists()
    assert not Session.objects.filter(user_id=user.pk).exists()


@pytest.fixture
def production_hasher(settings):
    # Production's Argon2id: the sign-in spends its real time between reading the account
    # and opening the session, which is where the race used to be.
    settings.PASSWORD_HASHERS = ["accounts.hashers.Argon2idPasswordHasher"]


@pytest.mark.parametrize("offset_ms", [0, 2, 5, 10, 20])
def test_sign_ins_racing_a_password_change_never_keep_a_session(make_user, production_hasher, offset_ms):
    # given: an account signed in on one device, whose owner changes the password, while
    # someone signs in with the old one a few milliseconds later (several rounds)
    survivors, rounds = [], 3
    for round_ in range(rounds):
        user = make_user(email=f"racer{offset_ms}-{round_}@example.com", password=OLD)
        tokens = open_session(user)
        run = run_in_parallel(
            [
                lambda tokens=tokens: post({"query": CHANGE, "variables": {"o": OLD, "n": CHANGED}}, tokens.token),
                lambda user=user: post({"query": TOKEN_AUTH, "variables": {"e": user.email, "p": OLD}}),
            ],
            delays=[0, offset_ms / 1000],
        )
        assert not run.errors, run
        assert not run.hung, run
        changed, signed_in = run.results
        assert changed["body"]["data"]["passwordChange"]["success"] is True
        assert not internal_errors(signed_in), signed_in
        # then: whatever the interleaving, the only live session is the changer's own
        live = set(Session.objects.filter(user=user, revoked_at__isnull=True).values_list("pk", flat=True))
        if live != {session_of(tokens).pk}:
            survivors.append(round_)
    assert survivors == [], f"{len(survivors)} of {rounds} races kept a session opened with the old password"


def test_logout_everywhere_racing_a_password_change_never_deadlocks(make_user):
    # given: forty rounds of "sign out everywhere" and a password change on one account at
    # once, half with the right old password and half with a wrong one
    failures = []
    for round_ in range(40):
        user = make_user(email=f"both{round_}@example.com", password=OLD)
        changer, logger_out = open_session(user), open_session(user)
        old = OLD if round_ % 2 == 0 else "not-the-password"
        run = run_in_parallel(
            [
                lambda t=changer.token, old=old: post({"query": CHANGE, "variables": {"o": old, "n": CHANGED}}, t),
                lambda t=logger_out.token: post({"query": LOGOUT_ALL}, t),
            ]
        )
        if run.errors or run.hung or any(internal_errors(result) for result in run.results):
            failures.append((round_, run))
            continue
        logged_out = run.results[1]["body"]
        # then: the user who pressed "sign out everywhere" is signed out everywhere
        assert logged_out["data"]["logoutAll"]["success"] is True, logged_out
        assert (
            not Session.objects.filter(user=user, revoked_at__isnull=True).exclude(pk=session_of(changer).pk).exists()
        )
    assert failures == [], f"{len(failures)} of 40 rounds deadlocked or failed: {failures[:2]}"


def test_a_failure_recording_the_sign_in_leaves_no_session_behind(make_user):
    # given: the audit trail refuses the success entry (a real fault, from the database)
    user = make_user(email="alice@example.com", password=OLD)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_login_event() RETURNS trigger AS $$ BEGIN "
            "IF NEW.kind = 'login_succeeded' THEN RAISE EXCEPTION 'audit trail unavailable'; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_login_event BEFORE INSERT ON accounts_authevent "
            "FOR EACH ROW EXECUTE FUNCTION refuse_login_event()"
        )
    try:
        # when
        result = post({"query": TOKEN_AUTH, "variables": {"e": user.email, "p": OLD}})
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER refuse_login_event ON accounts_authevent")
            cursor.execute("DROP FUNCTION refuse_login_event()")
    # then: the answer is an error, and no session was committed behind it
    assert error_codes(result["body"]) == ["INTERNAL_SERVER_ERROR"]
    assert result["body"]["data"] == {"tokenAuth": None}
    assert not Session.objects.filter(user=user).exists()
    user.refresh_from_db()
    assert user.last_login is None


# --- every pair of flows on one account -----------------------------------------------------------


@dataclass
class Contender:
    """One flow of a pair: what it needs prepared, and how it ran."""

    name: str
    run: object = None
    result: dict | None = None
    tokens: object = None  # the session this flow acts from, if any
    extra: dict = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return _succeeded(self.name, self.result)


def _payload(result, field_name):
    return ((result or {}).get("body") or {}).get("data", {}) and result["body"]["data"].get(field_name)


def _succeeded(name, result) -> bool:
    if result is None:
        return False
    if name.startswith("admin:"):
        return result["status"] == 302
    field_name, check = {
        "logoutAll": ("logoutAll", lambda p: p["success"]),
        "revokeSession": ("revokeSession", lambda p: p["success"]),
        "revokeToken": ("revokeToken", lambda p: p["revoked"] > 0),
        "refreshToken": ("refreshToken", lambda p: bool(p["token"])),
        "passwordChange": ("passwordChange", lambda p: p["success"]),
        "passwordChangeWrong": ("passwordChange", lambda p: p["success"]),
        "passwordReset": ("passwordReset", lambda p: p["success"]),
        "deleteAccount": ("deleteAccount", lambda p: p["success"]),
        "updateAccount": ("updateAccount", lambda p: p["success"]),
        "tokenAuth": ("tokenAuth", lambda p: bool(p["token"])),
    }[name]
    payload = _payload(result, field_name)
    return bool(payload) and bool(check(payload))


FLOWS = [
    "logoutAll",
    "revokeSession",
    "revokeToken",
    "refreshToken",
    "passwordChange",
    "passwordChangeWrong",
    "passwordReset",
    "deleteAccount",
    "updateAccount",
    "tokenAuth",
    "admin:endAllSessions",
    "admin:endSessions",
    "admin:password",
    "admin:deactivate",
    "admin:delete",
]
PAIRS = [(a, b) for i, a in enumerate(FLOWS) for b in FLOWS[i:]]


def _admin_client(staff) -> Client:
    client = Client(HTTP_HOST="localhost")
    client.force_login(staff)
    return client


def _change_form_data(client, user) -> dict:
    """The user change form as a browser posts it, with `is_active` unticked."""
    form = client.get(reverse("admin:accounts_user_change", args=[user.pk])).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update({"groups": [], "user_permissions": [], "_save": "Save"})
    for flag in ("is_active", "is_staff", "is_superuser", "is_email_verified"):
        data.pop(flag, None)
        if flag != "is_active" and form.initial.get(flag):
            data[flag] = "on"
    for name in ("date_joined", "last_login"):
        data.pop(name, None)
    return data


def prepare(name: str, user, staff, slot: int) -> Contender:
    """Set up what flow `name` needs before the race; return it ready to run."""
    flow = Contender(name)
    if name in {
        "logoutAll",
        "revokeSession",
        "passwordChange",
        "passwordChangeWrong",
        "deleteAccount",
        "updateAccount",
    }:
        flow.tokens = open_session(user)
    token = flow.tokens.token if flow.tokens else None
    if name == "logoutAll":
        flow.run = lambda: post({"query": LOGOUT_ALL}, token)
    elif name == "revokeSession":
        victim = session_of(open_session(user))
        flow.extra["victim"] = victim.pk
        flow.run = lambda: post(
            {"query": REVOKE_SESSION, "variables": {"id": to_global_id("Session", str(victim.pk))}}, token
        )
    elif name in {"revokeToken", "refreshToken"}:
        flow.tokens = open_session(user)
        query = REVOKE_TOKEN if name == "revokeToken" else REFRESH
        flow.run = lambda: post({"query": query, "variables": {"r": flow.tokens.refresh_token}})
    elif name == "passwordChange":
        flow.run = lambda: post({"query": CHANGE, "variables": {"o": OLD, "n": CHANGED}}, token)
    elif name == "passwordChangeWrong":
        flow.run = lambda: post({"query": CHANGE, "variables": {"o": "not-the-password", "n": CHANGED}}, token)
    elif name == "passwordReset":
        link = reset_link(user) if slot == 0 or "link" not in _shared else _shared["link"]
        _shared["link"] = link
        flow.run = lambda: post({"query": RESET, "variables": {"t": link, "n": RESET_TO}})
    elif name == "deleteAccount":
        flow.run = lambda: post({"query": DELETE, "variables": {"p": OLD}}, token)
    elif name == "updateAccount":
        flow.extra["username"] = f"renamed{slot}x{user.pk}"
        flow.run = lambda: post({"query": UPDATE, "variables": {"u": flow.extra["username"]}}, token)
    elif name == "tokenAuth":
        flow.run = lambda: post({"query": TOKEN_AUTH, "variables": {"e": user.email, "p": OLD}})
    elif name == "admin:endAllSessions":
        client = _admin_client(staff)
        data = {"action": "end_all_sessions", "_selected_action": [str(user.pk)]}
        flow.run = lambda: _status(client.post(reverse("admin:accounts_user_changelist"), data))
    elif name == "admin:endSessions":
        client = _admin_client(staff)
        ids = [str(pk) for pk in Session.objects.filter(user=user).values_list("pk", flat=True)]
        data = {"action": "end_sessions", "_selected_action": ids}
        flow.extra["sessions"] = set(ids)
        flow.run = lambda: _status(client.post(reverse("admin:accounts_session_changelist"), data))
    elif name == "admin:password":
        client = _admin_client(staff)
        data = {"password1": ADMIN_SET, "password2": ADMIN_SET, "usable_password": "true"}
        flow.run = lambda: _status(client.post(reverse("admin:auth_user_password_change", args=[user.pk]), data))
    elif name == "admin:deactivate":
        client = _admin_client(staff)
        data = _change_form_data(client, user)
        flow.run = lambda: _status(client.post(reverse("admin:accounts_user_change", args=[user.pk]), data))
    elif name == "admin:delete":
        client = _admin_client(staff)
        data = {"action": "delete_selected", "_selected_action": [str(user.pk)], "post": "yes"}
        flow.run = lambda: _status(client.post(reverse("admin:accounts_user_changelist"), data))
    return flow


_shared: dict = {}


def _status(response) -> dict:
    return {"status": response.status_code, "body": None}


def _password_now(user_id) -> str | None:
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        return None
    matches = [label for label, password in PASSWORDS.items() if user.check_password(password)]
    return matches[0] if matches else "none"


def check_rules(first: Contender, second: Contender, user_id: int, before: set) -> list[str]:
    """Return the rules the outcome of one race breaks (empty when it keeps them all)."""
    broken = []
    flows = (first, second)
    succeeded = {flow.name for flow in flows if flow.succeeded}
    exists = User.objects.filter(pk=user_id).exists()
    sessions = Session.objects.filter(user_id=user_id)
    live = set(sessions.filter(revoked_at__isnull=True).values_list("pk", flat=True))
    if "deleteAccount" in succeeded or not exists:
        if exists or sessions.exists() or RefreshToken.objects.filter(session__user_id=user_id).exists():
            broken.append("a deleted account left its row or sessions behind")
        if not exists and not ({"deleteAccount", "admin:delete"} & {flow.name for flow in flows}):
            broken.append("the account vanished without a deletion")
        return broken
    kept = {session_of(flow.tokens).pk for flow in flows if flow.name == "passwordChange" and flow.succeeded}
    password = _password_now(user_id)
    changers = succeeded & {"passwordChange", "passwordReset", "admin:password"}
    if password != "old":
        if not changers:
            broken.append(f"the password changed ({password}) without a successful change")
        # No session opened with the old password survives; only a changer's own may live on,
        # and only if nothing changed the password after it.
        if live - (kept if password == "passwordChange" else set()):
            broken.append(f"{len(live)} live session(s) survived a change of the password to {password}")
    elif changers:
        broken.append(f"{sorted(changers)} reported success but the old password still works")
    user = User.objects.get(pk=user_id)
    if "admin:deactivate" in succeeded and (user.is_active or live):
        broken.append("a deactivated account is active or has live sessions")
    for ender in ("logoutAll", "admin:endAllSessions"):
        if ender in succeeded and live & before:
            broken.append(f"{ender} succeeded but {len(live & before)} earlier session(s) are live")
    for flow in flows:
        if flow.name == "admin:endSessions" and flow.succeeded and {str(pk) for pk in live} & flow.extra["sessions"]:
            broken.append("admin:endSessions succeeded but a selected session is live")
        if flow.name == "revokeSession" and flow.succeeded and flow.extra["victim"] in live:
            broken.append("revokeSession succeeded but the session is live")
        if flow.name in {"revokeToken", "logoutAll"} and flow.succeeded and session_of(flow.tokens).pk in live:
            broken.append(f"{flow.name} succeeded but its own session is live")
        if (
            flow.name == "updateAccount"
            and flow.succeeded
            and "admin:deactivate" not in succeeded  # a stale admin form writes its username back
            and user.username != flow.extra["username"]
            and {f.name for f in flows} != {"updateAccount"}
        ):
            broken.append("updateAccount succeeded but the username is not the new one")
    return broken


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_two_flows_on_one_account_at_once(make_user, first, second):
    # given: a staff member and an account with sessions, rounds with the second flow
    # starting 0, 2 and 5 ms after the first
    staff = make_user(username="root", email="root@example.com", is_staff=True, is_superuser=True)
    failures = []
    for round_, offset in enumerate((0, 0.002, 0.005)):
        _shared.clear()
        user = make_user(email=f"pair{round_}@example.com", password=OLD)
        open_session(user)  # a device that no flow of the pair acts from
        flows = [prepare(first, user, staff, 0), prepare(second, user, staff, 1)]
        before = set(Session.objects.filter(user=user).values_list("pk", flat=True))
        # when
        run = run_in_parallel([flow.run for flow in flows], delays=[0, offset])
        # then: both answered, neither with an internal error, and the rules hold
        if run.errors or run.hung:
            failures.append(f"round {round_}: raised {run.errors} / hung {run.hung}")
            continue
        for flow, result in zip(flows, run.results, strict=True):
            flow.result = result
            if internal_errors(result):
                failures.append(f"round {round_}: {flow.name} answered {result}")
        failures += [f"round {round_}: {rule}" for rule in check_rules(*flows, user.pk, before)]
    assert failures == []


def test_two_administrators_editing_each_other_at_once_never_deadlock(make_user):
    # given: two administrators, each about to change the other's email in the admin
    failures = []
    for round_ in range(10):
        first = make_user(email=f"first{round_}@example.com", is_staff=True, is_superuser=True)
        second = make_user(email=f"second{round_}@example.com", is_staff=True, is_superuser=True)
        clients = [_admin_client(first), _admin_client(second)]
        forms = []
        for client, target in zip(clients, (second, first), strict=True):
            data = _change_form_data(client, target)
            data["is_active"] = "on"
            data["email"] = f"renamed-{target.pk}@example.com"
            forms.append((client, reverse("admin:accounts_user_change", args=[target.pk]), data))
        # when
        run = run_in_parallel([lambda c=c, u=u, d=d: _status(c.post(u, d)) for c, u, d in forms])
        # then: both edits saved, neither failed
        if run.errors or run.hung or [result["status"] for result in run.results] != [302, 302]:
            failures.append((round_, run.errors, run.hung, run.results))
        elif set(User.objects.filter(pk__in=[first.pk, second.pk]).values_list("email", flat=True)) != {
            f"renamed-{first.pk}@example.com",
            f"renamed-{second.pk}@example.com",
        }:
            failures.append((round_, "an edit was lost"))
    assert failures == []


@pytest.mark.parametrize("deletion", ["delete", "deactivate"])
def test_a_reset_request_waiting_on_the_accounts_deletion_mails_nobody(make_user, settings, caplog, deletion):
    # given: the account's deletion holds its row while a reset request's job looks it up
    settings.ACCOUNT_DELETION = deletion
    user = make_user(email="victim@example.com", password=OLD)
    session_id = access_token_verify(open_session(user).token).session_id
    mail.outbox.clear()
    result = race_with_held_transaction(
        lambda: account_delete(request=request(), user=user, session_id=session_id, password=OLD),
        lambda: password_reset_request(request=request(), email="victim@example.com"),
        lock="the account row",
    )
    # then: the job saw the account gone: no mail, no link, no error
    assert result is None
    assert mail.outbox == []
    assert not AccountToken.objects.filter(user_id=user.pk).exists()
    assert not [record for record in caplog.records if record.levelname == "ERROR"]
