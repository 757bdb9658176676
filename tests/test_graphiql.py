"""GraphiQL's page and static files, through Django's test client: no CDN, no inline script, a strict CSP.

tests/test_graphiql_browser.py runs the same page in Chromium against a production server.
"""

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import override_settings

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "schema" / "static" / "graphiql"
FRONTEND = ROOT / "frontend" / "graphiql"
HTML = "text/html,application/xhtml+xml,*/*;q=0.8"


class Page(HTMLParser):
    """The tags of a page, with their attributes, and the text inside each <script> and <style>."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.inline: list[str] = []
        self._open: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._open = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag):
        self._open = None

    def handle_data(self, data):
        if self._open and data.strip():
            self.inline.append(f"<{self._open}>{data.strip()[:80]}")


def directives(policy: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


@pytest.fixture
def graphiql(client, db):
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "GRAPHIQL": True}):
        yield lambda: client.get("/graphql", HTTP_ACCEPT=HTML)


def test_the_page_loads_only_gatehouses_own_static_files_and_has_no_inline_code(graphiql):
    # when
    response = graphiql()
    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = Page(response.content.decode())
    assert page.inline == []
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)
    scripts = [attrs["src"] for tag, attrs in page.tags if tag == "script"]
    styles = [attrs["href"] for tag, attrs in page.tags if tag == "link" and attrs.get("rel") == "stylesheet"]
    (root,) = [attrs for tag, attrs in page.tags if attrs.get("id") == "graphiql"]
    workers = [root["data-editor-worker"], root["data-json-worker"], root["data-graphql-worker"]]
    assert scripts == ["/static/graphiql/graphiql.js"]
    assert styles == ["/static/graphiql/graphiql.css"]
    loaded = scripts + styles + workers
    assert all(url.startswith("/static/graphiql/") for url in loaded), loaded
    # and nothing on the page names another host
    assert "//" not in re.sub(r"<!--.*?-->", "", response.content.decode(), flags=re.DOTALL)


def test_the_page_is_sent_with_a_strict_content_security_policy(graphiql):
    # when
    first, second = graphiql(), graphiql()
    # then
    policy = directives(first["Content-Security-Policy"])
    assert policy["default-src"] == policy["script-src"] == policy["connect-src"] == ["'self'"]
    assert policy["font-src"] == policy["worker-src"] == ["'self'"]
    assert policy["object-src"] == policy["base-uri"] == policy["frame-ancestors"] == ["'none'"]
    # <style> elements only with this response's nonce; inline style attributes for Monaco's
    # line layout and data: images for its underlines (schema/views.py says why), nothing more
    (root,) = [attrs for _, attrs in Page(first.content.decode()).tags if attrs.get("id") == "graphiql"]
    assert policy["style-src"] == ["'self'", f"'nonce-{root['data-style-nonce']}'"]
    assert len(root["data-style-nonce"]) >= 22
    assert policy["style-src-attr"] == ["'unsafe-inline'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert not any(
        "unsafe" in source for name, sources in policy.items() if name != "style-src-attr" for source in sources
    )
    # and the nonce is never reused, nor the page cached
    assert directives(second["Content-Security-Policy"])["style-src"] != policy["style-src"]
    assert first["Cache-Control"] == "no-store"


def test_the_api_answers_without_the_pages_policy(client, db):
    # when: the same URL, asked for JSON
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "GRAPHIQL": True}):
        response = client.post("/graphql", {"query": "{ me { username } }"}, content_type="application/json")
    # then
    assert response.json() == {"data": {"me": None}}
    assert "Content-Security-Policy" not in response


@pytest.mark.parametrize(
    "name", ["graphiql.js", "graphiql.css", "editor.worker.js", "json.worker.js", "graphql.worker.js"]
)
def test_the_built_files_are_static_files(name):
    found = finders.find(f"graphiql/{name}")
    assert found is not None
    assert Path(found) == STATIC / name
    assert Path(found).stat().st_size > 1000


def test_the_stylesheet_loads_its_fonts_and_images_from_beside_it():
    # given
    css = (STATIC / "graphiql.css").read_text()
    # then: every url() is a relative file that exists, and nothing is imported
    urls = re.findall(r"url\(\s*[\"']?([^\"')]+)", css)
    assert urls
    assert "@import" not in css
    for url in urls:
        assert re.fullmatch(r"assets/[0-9a-f]{16}\.(woff2|woff|ttf|png|svg)", url), url
        assert (STATIC / url).is_file(), url
    # and every asset is used
    assert {f"assets/{path.name}" for path in (STATIC / "assets").iterdir()} == set(urls)


def test_the_bundle_is_built_from_exact_versions_in_the_lockfile():
    # given
    package = json.loads((FRONTEND / "package.json").read_text())
    lock = json.loads((FRONTEND / "package-lock.json").read_text())
    # then: every direct dependency is pinned, and the lockfile has that version
    for name, version in package["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), (name, version)
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    assert {"graphiql", "react", "react-dom", "@graphiql/plugin-explorer", "esbuild"} <= set(package["dependencies"])
    # and every locked package is checked against its digest by `npm ci`
    locked = [entry for path, entry in lock["packages"].items() if path and not entry.get("link")]
    assert locked
    assert all(entry.get("integrity", "").startswith("sha512-") for entry in locked)
