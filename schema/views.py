"""The GraphQL-over-HTTP endpoint.

graphene-django's GraphQLView parses and validates every request from scratch, answers
a deeply nested JSON body with a 500 (it does not catch RecursionError), formats raw
exception text into responses, and executes mutations sent with form content types.
This view serves its own GraphiQL page (Gatehouse's static files only, under a strict
Content-Security-Policy) and replaces the request handling:

- POST with `Content-Type: application/json` only: a browser cannot send that cross-site
  without a CORS preflight, so form posts are refused (415) like Apollo's CSRF prevention;
  GET runs queries only (mutations: 405) and needs a header a browser would preflight;
- every malformed body gets a 4xx with a GraphQL-shaped `{"errors": [...]}`;
- the document is parsed, limit-checked and validated once per distinct query text and
  cached, with the standard validation rules always kept;
- each error carries `extensions.code`, and unexpected exceptions are masked;
- responses are `Cache-Control: no-store`: they carry tokens and personal data.
"""

import hashlib
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpResponse
from django.template import engines
from django.views.decorators.csrf import csrf_exempt
from graphene_django.settings import graphene_settings
from graphene_django.views import GraphQLView as GrapheneGraphQLView
from graphene_django.views import get_accepted_content_types
from graphql import GraphQLError, OperationType, execute, get_operation_ast, parse, specified_rules, validate
from graphql.validation import NoSchemaIntrospectionCustomRule

from schema.errors import RequestErrorCode, format_error
from schema.limits import DocumentLimits, LimitExceeded, check_document_limits, fragment_errors
from schema.schema import schema

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
# Headers a browser only sends cross-site after a CORS preflight (Apollo's CSRF prevention).
PREFLIGHT_HEADERS = ("HTTP_APOLLO_REQUIRE_PREFLIGHT", "HTTP_X_APOLLO_OPERATION_NAME")


# GraphiQL's page: scripts, stylesheets, fonts, workers and requests from this origin only.
# Two exceptions, both forced by Monaco (GraphiQL's editor) and neither able to load anything
# from elsewhere: `style-src-attr 'unsafe-inline'`, because Monaco draws every line as HTML
# with a `style="top:…"` attribute (attributes alone: they cannot select other elements, and
# <style> elements still need the nonce); and `data:` images, the error and warning
# underlines it draws as SVG in the theme's colours. Scripts stay 'self' only.
GRAPHIQL_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)
GRAPHIQL_TEMPLATE = Path(__file__).resolve().parent / "templates" / "graphene" / "graphiql.html"


def graphiql_template():
    """Return our GraphiQL template, which loads only Gatehouse's static files (no CDN).

    Read from this app's folder by path: graphene_django comes before this app in
    INSTALLED_APPS, so a lookup by name would find graphene-django's CDN template first.
    Not cached: the page is for people, a few requests, and an edit shows at once.
    """
    return engines["django"].from_string(GRAPHIQL_TEMPLATE.read_text())


class PersistedQueries:
    """Apollo's automatic persisted queries, remembered per process in a bounded LRU.

    Deliberately not in the shared cache: anyone may register a query, and writes that a
    client controls must never evict rate-limit counters or fill Redis. Only documents
    that parsed and validated are kept. A process that does not know a hash answers
    PERSISTED_QUERY_NOT_FOUND and the client resends the text, as Apollo's link does.
    """

    def __init__(self, size: int):
        self.size = size
        self._queries: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> str | None:
        with self._lock:
            query = self._queries.get(digest)
            if query is not None:
                self._queries.move_to_end(digest)
            return query

    def put(self, digest: str, query: str) -> None:
        with self._lock:
            self._queries[digest] = query
            self._queries.move_to_end(digest)
            while len(self._queries) > self.size:
                self._queries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._queries.clear()


persisted_queries = PersistedQueries(size=512)


class HttpProblem(Exception):
    """A request refused before execution: an HTTP status and one coded error."""

    def __init__(self, status: int, code: RequestErrorCode, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass(frozen=True)
class Policy:
    """Everything document preparation depends on, so cached results never go stale."""

    introspection: bool
    max_query_length: int
    max_tokens: int
    limits: DocumentLimits


@dataclass(frozen=True)
class Prepared:
    """A parsed, limit-checked and validated document, or the errors that stopped it."""

    document: object | None
    errors: tuple[GraphQLError, ...] = ()
    code: RequestErrorCode | None = None


@lru_cache(maxsize=1)
def current_policy() -> Policy:
    config = settings.GATEHOUSE
    return Policy(
        introspection=config["INTROSPECTION"],
        max_query_length=config["MAX_QUERY_LENGTH"],
        max_tokens=config["MAX_TOKENS"],
        limits=DocumentLimits(
            max_depth=config["MAX_DEPTH"],
            max_aliases=config["MAX_ALIASES"],
            max_directives=config["MAX_DIRECTIVES"],
            max_operations=config["MAX_OPERATIONS"],
            max_root_fields=config["MAX_ROOT_FIELDS"],
            sensitive_root_fields=frozenset(config["SENSITIVE_ROOT_FIELDS"]),
            max_selections=config["MAX_SELECTIONS"],
            max_selections_per_set=config["MAX_SELECTIONS_PER_SET"],
            max_field_pairs=config["MAX_FIELD_PAIRS"],
        ),
    )


@lru_cache(maxsize=512)
def prepare(query: str, policy: Policy) -> Prepared:
    """Parse, limit-check and validate `query` once; the result is cached per query text.

    Validation is the costliest step of a small request and its result depends only on
    the text, the schema and the policy, so repeated documents skip it.
    """
    try:
        document = parse(query, no_location=False, max_tokens=policy.max_tokens)
    except GraphQLError as error:
        return Prepared(None, (error,), RequestErrorCode.GRAPHQL_PARSE_FAILED)
    # A fragment no operation spreads, or a second one of the same name, would escape the
    # limits (they walk what operations select): such documents are refused first.
    errors = fragment_errors(document)
    if errors:
        return Prepared(None, tuple(errors), RequestErrorCode.GRAPHQL_VALIDATION_FAILED)
    try:
        check_document_limits(document, policy.limits)
    except LimitExceeded as exc:
        return Prepared(None, (GraphQLError(str(exc)),), RequestErrorCode.QUERY_TOO_COMPLEX)
    # Custom rules are added to the specified ones, never substituted for them.
    rules = list(specified_rules)
    if not policy.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    errors = validate(
        schema.graphql_schema,
        document,
        rules,
        max_errors=graphene_settings.MAX_VALIDATION_ERRORS,
        hide_suggestions=not policy.introspection,
    )
    if errors:
        return Prepared(None, tuple(errors), RequestErrorCode.GRAPHQL_VALIDATION_FAILED)
    return Prepared(document)


@receiver(setting_changed)
def _reset_policy(*, setting, **kwargs):
    if setting == "GATEHOUSE":
        current_policy.cache_clear()


def _response_type(request) -> str:
    """Return the media type to answer with: graphql-response+json when the client prefers it."""
    if "HTTP_ACCEPT" not in request.META:
        return JSON
    accepted = get_accepted_content_types(request)
    if GRAPHQL_RESPONSE in accepted and (
        JSON not in accepted or accepted.index(GRAPHQL_RESPONSE) < accepted.index(JSON)
    ):
        return GRAPHQL_RESPONSE
    return JSON


def _json_object(raw, name: str) -> dict | None:
    """Return a JSON-object parameter (given as an object, or as a string in a GET URL)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise HttpProblem(400, RequestErrorCode.BAD_REQUEST, f"`{name}` must be a JSON object.") from None
    if raw is not None and not isinstance(raw, dict):
        raise HttpProblem(400, RequestErrorCode.BAD_REQUEST, f"`{name}` must be a JSON object.")
    return raw


class GraphQLView(GrapheneGraphQLView):
    """Serve the schema over HTTP (POST and GET) and GraphiQL to browsers when enabled.

    One instance serves every request (see `graphql_view`): nothing here keeps state
    between requests, and graphene's constructor is not cheap.
    """

    def __init__(self, **kwargs):
        super().__init__(schema=schema, **kwargs)

    def dispatch(self, request, *args, **kwargs):
        response_type = _response_type(request)
        try:
            if request.method == "GET" and self._wants_graphiql(request):
                return self._graphiql(request)
            params = self._params(request)
            body, status = self._execute(request, response_type, *params)
        except HttpProblem as problem:
            body = {"errors": [{"message": problem.message, "extensions": {"code": problem.code.value}}]}
            response = self._respond(body, problem.status, response_type)
            for header, value in problem.headers.items():
                response[header] = value
            return response
        return self._respond(body, status, response_type)

    def _respond(self, body: dict, status: int, response_type: str) -> HttpResponse:
        response = HttpResponse(orjson.dumps(body), status=status, content_type=response_type)
        # What patch_cache_control(no_store=True) writes on a fresh response, without parsing it first.
        response["Cache-Control"] = "no-store"
        return response

    def _wants_graphiql(self, request) -> bool:
        return settings.GATEHOUSE["GRAPHIQL"] and "query" not in request.GET and self.request_wants_html(request)

    def _graphiql(self, request):
        """Serve GraphiQL: Gatehouse's own static files only, under a strict Content-Security-Policy."""
        # A fresh nonce per response lets the bundle's own <style> elements (Monaco's themes)
        # apply without allowing inline styles in general (frontend/graphiql/src/style-nonce.js).
        nonce = secrets.token_urlsafe(18)
        response = HttpResponse(graphiql_template().render({"style_nonce": nonce}))
        response["Content-Security-Policy"] = GRAPHIQL_CSP.format(nonce=nonce)
        # The page is the same for everyone but its nonce must never be reused.
        response["Cache-Control"] = "no-store"
        return response

    def _params(self, request) -> tuple[str, dict | None, str | None, bool, str | None]:
        """Return (query, variables, operation name, is GET, persisted hash to remember)."""
        if request.method == "GET":
            data = request.GET.dict()
        elif request.method == "POST":
            data = self._post_body(request)
        else:
            raise HttpProblem(
                405, RequestErrorCode.METHOD_NOT_ALLOWED, "Use POST (or GET for queries).", {"Allow": "GET, POST"}
            )
        query, operation_name = data.get("query"), data.get("operationName")
        variables = _json_object(data.get("variables"), "variables")
        extensions = _json_object(data.get("extensions"), "extensions")
        if operation_name is not None and not isinstance(operation_name, str):
            raise HttpProblem(400, RequestErrorCode.BAD_REQUEST, "`operationName` must be a string.")
        query, remember = self._persisted_query(query, extensions)
        if not isinstance(query, str) or not query.strip():
            raise HttpProblem(400, RequestErrorCode.BAD_REQUEST, "`query` must be a non-empty string.")
        return query, variables, operation_name, request.method == "GET", remember

    def _post_body(self, request) -> dict:
        content_type = request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
        if content_type != JSON:
            raise HttpProblem(415, RequestErrorCode.UNSUPPORTED_MEDIA_TYPE, "Send the request as application/json.")
        if "HTTP_TRANSFER_ENCODING" in request.META:
            # Django reads a body framed by Transfer-Encoding (chunked, which gunicorn passes
            # through without a Content-Length) as empty; say so instead of calling valid JSON invalid.
            raise HttpProblem(
                411,
                RequestErrorCode.LENGTH_REQUIRED,
                "Send the body with a Content-Length header: chunked request bodies are not supported.",
            )
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise HttpProblem(400, RequestErrorCode.BAD_REQUEST, "The Content-Length header is not a number.") from None
        if declared > limit:
            raise HttpProblem(413, RequestErrorCode.PAYLOAD_TOO_LARGE, f"The request body exceeds {limit} bytes.")
        try:
            body = request.body
        except RequestDataTooBig:
            raise HttpProblem(
                413, RequestErrorCode.PAYLOAD_TOO_LARGE, f"The request body exceeds {limit} bytes."
            ) from None
        try:
            # orjson refuses invalid UTF-8 and nesting deeper than 1024 without recursing in Python.
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise HttpProblem(400, RequestErrorCode.BAD_REQUEST, "The request body is not valid JSON.") from None
        if isinstance(data, list):
            raise HttpProblem(400, RequestErrorCode.BAD_REQUEST, "Batched requests are not supported.")
        if not isinstance(data, dict):
            raise HttpProblem(400, RequestErrorCode.BAD_REQUEST, "The request body must be a JSON object.")
        return data

    def _persisted_query(self, query, extensions: dict | None) -> tuple[str | None, str | None]:
        """Resolve Apollo's automatic persisted queries: return (query text, hash to remember)."""
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            return query, None
        digest = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        if not isinstance(digest, str) or len(digest) != 64 or persisted.get("version") != 1:
            raise HttpProblem(400, RequestErrorCode.BAD_REQUEST, "Unsupported persisted query.")
        digest = digest.lower()
        if query is None:
            query = persisted_queries.get(digest)
            if query is None:
                raise HttpProblem(200, RequestErrorCode.PERSISTED_QUERY_NOT_FOUND, "PersistedQueryNotFound")
            return query, None
        if not isinstance(query, str) or hashlib.sha256(query.encode()).hexdigest() != digest:
            raise HttpProblem(400, RequestErrorCode.BAD_REQUEST, "The persisted query hash does not match the query.")
        return query, digest

    def _execute(self, request, response_type, query, variables, operation_name, is_get, remember) -> tuple[dict, int]:
        # With application/json, request errors are still HTTP 200 (GraphQL over HTTP, legacy);
        # with graphql-response+json, a response without data is a 4xx.
        request_error_status = 400 if response_type == GRAPHQL_RESPONSE else 200
        policy = current_policy()
        if len(query) > policy.max_query_length:
            raise HttpProblem(
                request_error_status,
                RequestErrorCode.QUERY_TOO_COMPLEX,
                f"The query exceeds {policy.max_query_length} characters.",
            )
        prepared = prepare(query, policy)
        if prepared.document is None:
            errors = [format_error(error, prepared.code) for error in prepared.errors]
            return {"errors": errors}, request_error_status
        if remember is not None:
            persisted_queries.put(remember, query)
        operation = get_operation_ast(prepared.document, operation_name)
        if operation is None:
            raise HttpProblem(
                request_error_status,
                RequestErrorCode.BAD_USER_INPUT,
                "Name the operation to run with `operationName`."
                if operation_name is None
                else "No operation in the document has that name.",
            )
        if is_get and operation.operation is not OperationType.QUERY:
            raise HttpProblem(405, RequestErrorCode.METHOD_NOT_ALLOWED, "Send mutations with POST.", {"Allow": "POST"})
        if is_get and not any(request.META.get(header) for header in PREFLIGHT_HEADERS):
            # A cross-site page can make a browser send a GET; these headers it cannot add.
            raise HttpProblem(
                400,
                RequestErrorCode.BAD_REQUEST,
                "GET requests must carry an `Apollo-Require-Preflight` or `X-Apollo-Operation-Name` header.",
            )
        result = execute(
            schema.graphql_schema,
            prepared.document,
            context_value=request,
            variable_values=variables,
            operation_name=operation_name,
        )
        if result.data is None and result.errors and all(error.path is None for error in result.errors):
            # Variable coercion failed: nothing ran.
            errors = [format_error(error, RequestErrorCode.BAD_USER_INPUT) for error in result.errors]
            return {"errors": errors}, request_error_status
        body: dict = {}
        if result.errors:
            body["errors"] = [format_error(error, RequestErrorCode.INTERNAL_SERVER_ERROR) for error in result.errors]
        body["data"] = result.data
        return body, 200


_view = GraphQLView()


@csrf_exempt
def graphql_view(request):
    """The endpoint: GraphQLView's handling, without a view instance per request.

    Exempt from Django's CSRF middleware: it authenticates by Bearer header only, which a
    browser never attaches on its own, and it refuses every content type a cross-site
    form could send.
    """
    return _view.dispatch(request)
