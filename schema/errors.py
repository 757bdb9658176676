"""Errors in GraphQL form: the `UserError` payload type, and top-level errors with codes.

Two kinds of failure reach a client:
- input and business-rule failures are data: a payload's `errors: [UserError!]!`,
  converted from a Django ValidationError by `user_errors_from`;
- authentication, authorization and protocol failures are top-level errors, each with
  `extensions.code`, formatted by `format_error`. Anything unexpected is logged and
  masked as INTERNAL_SERVER_ERROR, never shown.
"""

import logging
import re
from enum import Enum

import graphene
from django.core.exceptions import ValidationError
from graphene.utils.str_converters import to_camel_case
from graphql import GraphQLError

from accounts.error_codes import UserErrorCode
from accounts.exceptions import AuthError
from config.db import database_unavailable, first_line

logger = logging.getLogger("schema.errors")


class RequestErrorCode(Enum):
    """Why the GraphQL layer refused a request before or outside the account rules."""

    BAD_USER_INPUT = "BAD_USER_INPUT"
    BAD_REQUEST = "BAD_REQUEST"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    # A POST body without Content-Length (chunked): WSGI would hand Django an empty body.
    LENGTH_REQUIRED = "LENGTH_REQUIRED"
    # Plain HTTP to an API path in a deployment that requires HTTPS (config/https.py).
    HTTPS_REQUIRED = "HTTPS_REQUIRED"
    NOT_FOUND = "NOT_FOUND"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


UserErrorCodeEnum = graphene.Enum.from_enum(
    UserErrorCode, description="Why an input field was refused.", name="UserErrorCode"
)

# Django's own validator codes that mean the same as ours.
_DJANGO_CODES = {"max_length": UserErrorCode.TOO_LONG, "null_characters_not_allowed": UserErrorCode.INVALID}
_CODES_BY_VALUE = {code.value: code for code in UserErrorCode}


class UserError(graphene.ObjectType):
    """A refused input: which field, why (a stable code), and a message for people."""

    field = graphene.String(description="The camelCase name of the refused argument, or null for the whole input.")
    message = graphene.String(required=True, description="A human-readable explanation, safe to display.")
    code = graphene.Field(UserErrorCodeEnum, required=True, description="A stable, machine-readable reason.")


def user_errors_from(exc: ValidationError) -> list[UserError]:
    """Return one UserError per message of a (possibly field-keyed) ValidationError."""
    by_field = exc.error_dict if hasattr(exc, "error_dict") else {None: exc.error_list}
    errors = []
    for field, field_errors in by_field.items():
        for error in field_errors:
            for item in error.error_list if hasattr(error, "error_list") else [error]:
                code = _CODES_BY_VALUE.get(item.code) or _DJANGO_CODES.get(item.code, UserErrorCode.INVALID)
                message = item.message % item.params if item.params else item.message
                errors.append(UserError(field=to_camel_case(field) if field else None, message=str(message), code=code))
    return errors


def coded_error(message: str, code: Enum, **extensions) -> GraphQLError:
    """Return a top-level GraphQL error carrying `extensions.code`."""
    return GraphQLError(message, extensions={"code": code.value, **extensions})


# graphql-core echoes offending values, from variables and from literals written in the
# document alike; a password or token must never come back in an error.
_ECHOED_VALUES = (
    (
        re.compile(r"^(Variable '\$[_A-Za-z][_0-9A-Za-z]*') got invalid value .*", re.DOTALL),
        r"\1 got an invalid value.",
    ),
    (re.compile(r"(cannot represent (?:a )?non[- ][\w -]*?value): .*", re.DOTALL), r"\1."),
    (re.compile(r"(Expected value of type '[^']+'), found .*", re.DOTALL), r"\1."),
)


# Syntax errors quote the offending token, which may be part of a secret.
_QUOTED = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'")


def _without_values(message: str, code: str) -> str:
    if code == RequestErrorCode.GRAPHQL_PARSE_FAILED.value:
        return _QUOTED.sub("…", message)
    for pattern, replacement in _ECHOED_VALUES:
        message = pattern.sub(replacement, message)
    return message


def format_error(error: GraphQLError, default_code: RequestErrorCode) -> dict:
    """Return the response form of `error`, with a code and nothing internal.

    `default_code` names the phase that produced an error without one (parsing,
    validation, variable coercion).
    """
    original = error.original_error
    if isinstance(original, AuthError):
        return _shape(original.message, error, original.extensions)
    if original is not None and not isinstance(original, GraphQLError):
        if database_unavailable(original):
            # An outage, not a bug: one line per request, with neither traceback nor SQL.
            logger.error("The database is unavailable while resolving %s: %s", error.path, first_line(original))
            return _shape(
                "The service is temporarily unavailable. Try again.",
                error,
                {"code": RequestErrorCode.INTERNAL_SERVER_ERROR.value},
                locations=False,
            )
        # A bug, anything unforeseen: the details go to the log only.
        logger.error("Unexpected error while resolving %s", error.path, exc_info=original)
        return _shape(
            "Internal server error.", error, {"code": RequestErrorCode.INTERNAL_SERVER_ERROR.value}, locations=False
        )
    extensions = dict(error.extensions or {})
    extensions.setdefault("code", default_code.value)
    return _shape(_without_values(error.message, extensions["code"]), error, extensions)


def _shape(message: str, error: GraphQLError, extensions: dict, *, locations: bool = True) -> dict:
    formatted: dict = {"message": message}
    if locations and error.locations:
        formatted["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        formatted["path"] = list(error.path)
    formatted["extensions"] = extensions
    return formatted
