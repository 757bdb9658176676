"""Cookie mode in a real browser: a SPA on another origin of the same site, in Debian's Chromium.

Laid out as the README says to deploy it: the API at https://api.example.com and the app at
https://app.example.com, two origins of one site, so the `SameSite` refresh cookie travels
with the app's credentialed requests; the app's origin is the one CORS_ALLOWED_ORIGINS lists.
Chromium maps every *.example.com, *.example.net and *.example.org name to the loopback address.

Both speak real HTTPS, and Gatehouse runs with its production settings untouched
(SECURE_SSL_REDIRECT and HSTS on): gunicorn terminates TLS itself with a certificate made
for the test, so the browser connects with `https` as it would through a TLS-terminating
proxy, and no header a browser cannot send (X-Forwarded-Proto) is injected. The
certificate is self-signed, so the browser context ignores certificate errors; nothing else
about the connection is special. The app's pages (tests/cookie_spa/) come from a small
HTTPS static server of the test's own, which also serves them for two origins that are not
allowed: https://evil.example.com (same site: the browser does attach the cookie to its
requests) and https://www.example.net (another site: it does not); and for
https://app.example.org, an app of another site that CORS does allow, to show that the
browser never keeps the cookie for it.

Cookie attributes are read from the browser's own cookie store, never from response headers.
Both cookie layouts run: the defaults (`SameSite=Lax`, path `/graphql`, `__Secure-`) and the
strictest (`SameSite=Strict`, path `/`, `__Host-`).
"""

import datetime
import functools
import http.server
import ipaddress
import secrets
import ssl
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.live import free_port, gunicorn_serving, manage, production_env, system_chromium

SPA_FILES = Path(__file__).resolve().parent / "cookie_spa"
START_DEADLINE = 40
PASSWORD = "correct-horse-battery-staple"
API_HOST = "api.example.com"
APP_HOST = "app.example.com"
# Not in CORS_ALLOWED_ORIGINS: one of the same site (its requests carry the SameSite cookie)
# and one of another site (they do not).
SAME_SITE_HOST = "evil.example.com"
CROSS_SITE_HOST = "www.example.net"
# Allowed by CORS, but of another site: cookie mode cannot work for it (SameSite).
OTHER_SITE_APP_HOST = "app.example.org"
# The browser resolves every name below these to 127.0.0.1.
SITES = ("example.com", "example.net", "example.org")


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """Write a certificate (and its key) for every host name of the test and 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, API_HOST)])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName(host) for host in (API_HOST, APP_HOST, SAME_SITE_HOST, CROSS_SITE_HOST, OTHER_SITE_APP_HOST)]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([*names, x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def chromium():
    """The system Chromium, launched by Playwright, resolving the test's host names to loopback."""
    with system_chromium("--host-resolver-rules=" + ", ".join(f"MAP *.{site} 127.0.0.1" for site in SITES)) as browser:
        yield browser


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return self_signed_certificate(tmp_path_factory.mktemp("cookie-tls"))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def pages(tls):
    """Serve tests/cookie_spa/ over HTTPS on a port of its own; return the port."""
    cert_file, key_file = tls
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(SPA_FILES))
    )
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class Gatehouse:
    """A running server: its public base URL, access log, certificate and cookie layout."""

    def __init__(self, base: str, log: Path, certificate: Path, samesite: str, path: str, cookie_name: str):
        self.base, self.log, self.certificate = base, log, certificate
        self.samesite, self.path, self.cookie_name = samesite, path, cookie_name

    def graphql_posts(self) -> int:
        """Return how many POSTs to /graphql the server has received (its access log).

        The access log line of a request is written after its response: a marker request is
        sent and awaited first, and the one sync worker serves requests in turn, so every
        earlier request's line is in the file by then.
        """
        marker = f"/log-marker-{secrets.token_hex(8)}"
        local = self.base.replace(API_HOST, "127.0.0.1")
        assert requests.get(f"{local}{marker}", timeout=10, verify=str(self.certificate)).status_code == 404
        deadline = time.monotonic() + 10
        while marker not in (text := self.log.read_text()):
            assert time.monotonic() < deadline, text[-3000:]
            time.sleep(0.02)
        return text.count('"POST /graphql"')


# The defaults, and the strictest layout (the cookie on every path of the API's host only).
LAYOUTS = {
    "lax-graphql-path": ("Lax", "/graphql", "__Secure-gatehouse_refresh"),
    "strict-root-path": ("Strict", "/", "__Host-gatehouse_refresh"),
}


@pytest.fixture(scope="module")
def static_root(tmp_path_factory) -> Path:
    """The static files, collected once (the Dockerfile's build step) for both servers."""
    tmp = tmp_path_factory.mktemp("cookie-static")
    manage(production_env(tmp), "collectstatic", "--noinput", "-v0")
    return tmp / "static"


@pytest.fixture(scope="module", params=LAYOUTS.values(), ids=LAYOUTS.keys())
def gatehouse(request, chromium, tmp_path_factory, tls, pages, static_root):
    """A production server in cookie mode behind its own TLS, allowing the app's origin.

    It asks for `chromium` first so that a missing browser skips (or fails, in CI) before
    any server is started.
    """
    samesite, path, cookie_name = request.param
    cert_file, key_file = tls
    tmp = tmp_path_factory.mktemp("cookie-live")
    port = free_port()
    env = production_env(
        tmp,
        port=port,
        DJANGO_ALLOWED_HOSTS=f"{API_HOST},127.0.0.1",
        PUBLIC_URL=f"https://{API_HOST}:{port}",
        REFRESH_TOKEN_COOKIE="true",
        REFRESH_TOKEN_COOKIE_SAMESITE=samesite,
        REFRESH_TOKEN_COOKIE_PATH=path,
        CORS_ALLOWED_ORIGINS=f"https://{APP_HOST}:{pages},https://{OTHER_SITE_APP_HOST}:{pages}",
        STATIC_ROOT=str(static_root),
    )
    manage(env, "migrate", "--noinput", "-v0")
    log = tmp / "server.log"
    with gunicorn_serving(
        env,
        log,
        ready_url=f"https://127.0.0.1:{port}/readyz",
        gunicorn_args=("--certfile", str(cert_file), "--keyfile", str(key_file)),
        ssl_context=ssl.create_default_context(cafile=str(cert_file)),
        start_deadline=START_DEADLINE,
    ):
        yield Gatehouse(f"https://{API_HOST}:{port}", log, cert_file, samesite, path, cookie_name)


@pytest.fixture
def context(chromium):
    # The certificate is the test's own; the connection is otherwise ordinary HTTPS.
    context = chromium.new_context(ignore_https_errors=True)
    context.set_default_timeout(20_000)
    try:
        yield context
    finally:
        context.close()


def register(gatehouse: Gatehouse, username: str) -> None:
    """Create an account straight through the API (no browser, no Origin, no cookie used)."""
    local = gatehouse.base.replace(API_HOST, "127.0.0.1")
    answer = requests.post(
        f"{local}/graphql",
        json={
            "query": "mutation($u: String!, $e: String!, $p: String!) "
            "{ register(username: $u, email: $e, password: $p) { user { username } errors { code } } }",
            "variables": {"u": username, "e": f"{username}@example.com", "p": PASSWORD},
        },
        timeout=30,
        verify=str(gatehouse.certificate),
    )
    assert answer.json() == {"data": {"register": {"user": {"username": username}, "errors": []}}}


def page_url(host: str, port: int, gatehouse: Gatehouse, page: str = "index.html") -> str:
    return f"https://{host}:{port}/{page}?api={gatehouse.base}"


def refresh_cookies(context, gatehouse: Gatehouse) -> list[dict]:
    """Return the browser's stored refresh cookies (any host, any path)."""
    return [cookie for cookie in context.cookies() if cookie["name"] == gatehouse.cookie_name]


def signed_in(context, gatehouse: Gatehouse, pages: int, username: str):
    """Open the app, sign in from its script and return the page and the stored refresh cookie."""
    register(gatehouse, username)
    page = context.new_page()
    page.goto(page_url(APP_HOST, pages, gatehouse))
    result = page.evaluate("([u, p]) => spa.signIn(u, p)", [username, PASSWORD])
    assert result["blocked"] is False, result
    payload = result["body"]["data"]["tokenAuth"]
    assert payload["token"]
    # cookie mode: the refresh token is not in the body
    assert payload["refreshToken"] is None
    (cookie,) = refresh_cookies(context, gatehouse)
    return page, cookie


def test_sign_in_sets_an_httponly_cookie_a_reload_refreshes_with_and_revoke_deletes(context, gatehouse, pages):
    # when: the app signs in with fetch(credentials: "include")
    page, cookie = signed_in(context, gatehouse, pages, "ada")
    first_token = page.evaluate("() => spa.accessToken()")

    # then: the browser stored the refresh cookie for the API's host alone, with every protection
    assert cookie["domain"] == API_HOST  # host-only: no Domain attribute
    assert cookie["path"] == gatehouse.path
    assert cookie["httpOnly"] is True
    assert cookie["secure"] is True
    assert cookie["sameSite"] == gatehouse.samesite
    assert cookie["expires"] > time.time() + 60
    assert cookie["value"]
    # and nothing else: no session or CSRF cookie on the API paths
    device_name = gatehouse.cookie_name.replace("refresh", "device")
    assert sorted(stored["name"] for stored in context.cookies()) == sorted([gatehouse.cookie_name, device_name])
    # the device cookie (sign-in budget) is stored with the same attributes
    (device,) = [stored for stored in context.cookies() if stored["name"] == device_name]
    assert (device["domain"], device["path"], device["httpOnly"], device["secure"], device["sameSite"]) == (
        API_HOST, gatehouse.path, True, True, gatehouse.samesite
    )  # fmt: skip
    # and no script can read it: not the app's (another host), not even one on the API's host
    # within the cookie's path (HttpOnly), where document.cookie would otherwise show it
    assert cookie["value"] not in page.evaluate("() => document.cookie")
    api_page = context.new_page()
    api_page.goto(f"{gatehouse.base}/graphql")
    assert api_page.evaluate("() => location.pathname") == "/graphql"
    assert api_page.evaluate("() => document.cookie") == ""
    api_page.close()

    # when: the page is reloaded (the access token in memory is gone) and refreshes with no argument
    page.reload()
    assert page.evaluate("() => spa.accessToken()") is None
    result = page.evaluate("() => spa.refresh()")

    # then: a new access token arrives, the refresh token again only as a (rotated) cookie
    assert result["blocked"] is False, result
    refreshed = result["body"]["data"]["refreshToken"]
    assert refreshed["token"]
    assert refreshed["token"] != first_token
    assert refreshed["refreshToken"] is None
    (rotated,) = refresh_cookies(context, gatehouse)
    assert rotated["value"] != cookie["value"]
    assert page.evaluate("() => spa.accessToken()") == refreshed["token"]
    # and it is the account's: the app sends it as a Bearer token
    assert page.evaluate("() => spa.me()")["body"] == {"data": {"me": {"username": "ada"}}}

    # when: the app revokes its session with no argument
    result = page.evaluate("() => spa.revoke()")

    # then: the session ended and the browser deleted the cookie
    revoked_at = result["body"]["data"]["revokeToken"]["revoked"]
    assert abs(revoked_at - time.time()) < 60
    assert refresh_cookies(context, gatehouse) == []
    # and a refresh now has nothing to send
    result = page.evaluate("() => spa.refresh()")
    assert result["body"]["data"] == {"refreshToken": None}, result
    assert [error["extensions"]["code"] for error in result["body"]["errors"]] == ["UNAUTHENTICATED"], result


@pytest.mark.parametrize("host", [SAME_SITE_HOST, CROSS_SITE_HOST])
def test_a_page_of_an_origin_that_is_not_allowed_cannot_refresh(context, gatehouse, pages, host):
    page, cookie = signed_in(context, gatehouse, pages, f"eve-{host.split('.')[0]}")
    posts_before = gatehouse.graphql_posts()

    # when: a page of an origin not in CORS_ALLOWED_ORIGINS runs the app's refresh
    stranger = context.new_page()
    stranger.goto(page_url(host, pages, gatehouse, "attacker.html"))
    result = stranger.evaluate("() => spa.refresh()")

    # then: the browser blocks it (the preflight is not answered for that origin), so the
    # POST never reaches Gatehouse and no token reaches the page
    assert result["blocked"] is True, result
    assert result["error"].startswith("TypeError")
    assert stranger.evaluate("() => spa.accessToken()") is None
    assert gatehouse.graphql_posts() == posts_before
    # and the session is untouched: the cookie is the same and still works from the app
    assert refresh_cookies(context, gatehouse) == [cookie]
    assert page.evaluate("() => spa.refresh()")["body"]["data"]["refreshToken"]["token"]
    # (and the log does count a POST that arrives)
    assert gatehouse.graphql_posts() == posts_before + 1


# A form post needs no preflight, from any page. The browser attaches the SameSite cookie
# when the page is of the API's site (another origin of it, or even the allowed app), never
# to a POST from another site: only the content-type refusal protects the first two.
FORM_ATTACKS = [
    pytest.param(SAME_SITE_HOST, True, id="same-site-origin"),
    pytest.param(CROSS_SITE_HOST, False, id="cross-site-origin"),
    pytest.param(APP_HOST, True, id="allowed-origin"),
]


@pytest.mark.parametrize(("host", "cookie_sent"), FORM_ATTACKS)
def test_a_text_plain_form_post_changes_nothing(context, gatehouse, pages, host, cookie_sent):
    page, cookie = signed_in(context, gatehouse, pages, f"mallory-{host.split('.')[0]}")
    attacker = context.new_page()

    for mutation in ("mutation { revokeToken { revoked } }", "mutation { refreshToken { token } }"):
        # when: a page submits a text/plain form whose body is a JSON mutation (no preflight)
        attacker.goto(page_url(host, pages, gatehouse, "attacker.html"))
        with attacker.expect_navigation() as navigation:
            attacker.evaluate("([action, query]) => postForm(action, query)", [f"{gatehouse.base}/graphql", mutation])
        response = navigation.value

        # then: the browser sent it (with the cookie when same-site) and Gatehouse refused to run it
        sent = response.request.all_headers()
        assert sent["content-type"] == "text/plain"
        assert (f"{gatehouse.cookie_name}={cookie['value']}" in sent.get("cookie", "")) is cookie_sent
        assert response.status == 415
        assert response.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"

    # and nothing changed: the same cookie is stored (no rotation) and the session still refreshes
    assert refresh_cookies(context, gatehouse) == [cookie]
    result = page.evaluate("() => spa.refresh()")
    assert result["body"]["data"]["refreshToken"]["token"], result


def test_an_allowed_origin_of_another_site_gets_no_cookie(context, gatehouse, pages):
    """CORS may allow an app on another site, but its browser never stores a SameSite cookie for it."""
    register(gatehouse, "otto")
    page = context.new_page()
    page.goto(page_url(OTHER_SITE_APP_HOST, pages, gatehouse))

    # when: the app signs in; CORS lets it read the answer
    result = page.evaluate("([u, p]) => spa.signIn(u, p)", ["otto", PASSWORD])
    assert result["body"]["data"]["tokenAuth"]["token"], result
    assert result["body"]["data"]["tokenAuth"]["refreshToken"] is None

    # then: the browser refused the cookie (set by a cross-site request), so after a reload
    # there is nothing to refresh with: cookie mode needs the app and the API on one site
    assert refresh_cookies(context, gatehouse) == []
    page.reload()
    result = page.evaluate("() => spa.refresh()")
    assert [error["extensions"]["code"] for error in result["body"]["errors"]] == ["UNAUTHENTICATED"], result
