"""GraphiQL in a real browser: Debian's Chromium, driven by Playwright, against a production server.

The server is the shipped one (gunicorn, config/gunicorn.py, production settings, static
files collected and served by WhiteNoise) with GRAPHIQL and GRAPHQL_INTROSPECTION on, spoken
to as a TLS-terminating proxy would (X-Forwarded-Proto). The browser signs in by typing
`tokenAuth` into the editor, puts the token into the headers editor and reads `me` in the
result pane; on the way, every request the page or its workers make is recorded and must go
to the server itself, the page must break no rule of its Content-Security-Policy, and no
token may be left in the browser's storage. The screenshot is saved as
artifacts/graphiql.png (gitignored).
"""

import json
from urllib.parse import urlsplit

import pytest
import requests

from tests.live import ROOT, production_server, system_chromium

PROXY = {"X-Forwarded-Proto": "https"}
ARTIFACTS = ROOT / "artifacts"
PASSWORD = "correct-horse-battery-staple"
# Collected before any script of the page runs (an init script is not subject to the page's CSP).
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.effectiveDirective} ${event.blockedURI} ${event.sourceFile}`);
});
"""


@pytest.fixture(scope="module")
def chromium():
    """The system Chromium, launched by Playwright (which cannot download a browser here)."""
    with system_chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The base URL of a production server of this module's own, with GraphiQL on."""
    tmp = tmp_path_factory.mktemp("graphiql-live")
    # Introspection feeds the docs and explorer panels and the editor's completion.
    with production_server(tmp, GRAPHIQL="true", GRAPHQL_INTROSPECTION="true") as (base, _env):
        yield base


def register(base: str, username: str) -> None:
    answer = requests.post(
        f"{base}/graphql",
        json={
            "query": "mutation($u: String!, $e: String!, $p: String!) "
            "{ register(username: $u, email: $e, password: $p) { user { username } errors { code } } }",
            "variables": {"u": username, "e": f"{username}@example.com", "p": PASSWORD},
        },
        headers=PROXY,
        timeout=30,
    )
    assert answer.json() == {"data": {"register": {"user": {"username": username}, "errors": []}}}


def replace_text(page, editor, text: str) -> None:
    """Replace the whole content of a Monaco editor with `text`, as if typed in one go."""
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def posting(text: str):
    """Match the response to the page's POST whose body contains `text`."""
    return lambda response: response.request.method == "POST" and text in (response.request.post_data or "")


def pane_text(locator) -> str:
    # Monaco draws spaces as no-break spaces.
    return locator.inner_text().replace("\u00a0", " ")


def test_graphiql_signs_in_and_reads_me_with_the_token_in_the_headers_editor(chromium, server):
    base = server
    register(base, "grace")
    context = chromium.new_context(extra_http_headers=PROXY, viewport={"width": 1400, "height": 900})
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    try:
        # when: a browser opens GraphiQL and its schema arrives
        with page.expect_response(posting("__schema")):
            page_response = page.goto(f"{base}/graphql")
        query_editor = page.locator(".graphiql-query-editor .monaco-editor")
        query_editor.wait_for()

        # then: the page is sent with its policy
        policy = page_response.headers["content-security-policy"]
        directives = {part.split()[0]: part.split()[1:] for part in policy.split(";")}
        assert directives["default-src"] == directives["script-src"] == ["'self'"]
        assert directives["connect-src"] == directives["font-src"] == directives["worker-src"] == ["'self'"]
        assert directives["style-src"][0] == "'self'"
        assert directives["style-src"][1].startswith("'nonce-")
        assert len(directives["style-src"]) == 2
        # Monaco's line layout and error underlines (schema/views.py says why)
        assert directives["style-src-attr"] == ["'unsafe-inline'"]
        assert directives["img-src"] == ["'self'", "data:"]
        assert directives["frame-ancestors"] == directives["base-uri"] == directives["object-src"] == ["'none'"]
        assert page_response.headers["cache-control"] == "no-store"

        # and the docs panel shows the schema
        page.get_by_role("button", name="Show Documentation Explorer").click()
        plugin = page.locator(".graphiql-plugin")
        plugin.get_by_role("link", name="Mutation").click()
        plugin.get_by_text("tokenAuth", exact=True).first.wait_for()
        # and so does the explorer
        page.get_by_role("button", name="Show GraphiQL Explorer").click()
        plugin.get_by_text("me", exact=True).first.wait_for()

        # when: a tokenAuth mutation is typed into the editor and run
        replace_text(
            page,
            query_editor,
            f'mutation SignIn {{ tokenAuth(username: "grace", password: "{PASSWORD}") {{ token }} }}',
        )
        # GraphiQL reads the operation name from the editor a moment later; the tab shows it then.
        page.locator(".graphiql-tab-active").get_by_text("SignIn").wait_for()
        with page.expect_response(posting("SignIn")) as signed_in:
            page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
        token = signed_in.value.json()["data"]["tokenAuth"]["token"]
        response_pane = page.locator(".graphiql-response")
        response_pane.get_by_text('"tokenAuth"').wait_for()

        # and the token goes into the headers editor, and `me` is run
        page.get_by_role("button", name="Headers").click()
        headers_editor = page.locator('.graphiql-editor-tool .monaco-editor[data-uri$="headers.json"]')
        replace_text(page, headers_editor, json.dumps({"Authorization": f"Bearer {token}"}))
        replace_text(page, query_editor, "query Me { me { username } }")
        page.locator(".graphiql-tab-active").get_by_text("Me", exact=True).wait_for()
        with page.expect_response(posting("query Me")) as me:
            page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()

        # then: the request carried the header, and the result pane shows the account
        assert me.value.request.headers["authorization"] == f"Bearer {token}"
        assert me.value.json() == {"data": {"me": {"username": "grace"}}}
        response_pane.get_by_text('"grace"').wait_for()
        assert '"username": "grace"' in pane_text(response_pane)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "graphiql.png")

        # and the token was not kept in the browser's storage
        stored = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}])")
        assert token not in stored
        assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0
        # and nothing broke the page's policy
        assert page.evaluate("() => window.__cspViolations") == []
    finally:
        context.close()

    # and every request went to the server itself: no CDN, no font service
    assert requested
    assert {urlsplit(url).netloc for url in requested} == {urlsplit(base).netloc}, requested
    # with the page's scripts, styles, fonts and workers all among Gatehouse's static files
    assert any(urlsplit(url).path.startswith("/static/graphiql/graphiql.") for url in requested)
