"""Root query fields."""

import graphene
from django.core.exceptions import ValidationError
from graphene_django.fields import DjangoConnectionField
from graphql_relay import cursor_to_offset

from accounts.selectors import USER_ORDERINGS, USER_SEARCH_MAX_LENGTH, user_list
from schema.errors import RequestErrorCode, coded_error, user_errors_from
from schema.types import Node, ServiceClientType, UserType
from schema.viewer import service_caller, viewer

USERS_PAGE_MAX = 100

UserOrderBy = graphene.Enum(
    "UserOrderBy",
    [(name, name) for name in USER_ORDERINGS],
    description="How `users` are ordered; ties are broken by account id.",
)


class Query(graphene.ObjectType):
    """Read the signed-in user (or the calling service client) and the objects they may see."""

    me = graphene.Field(
        UserType, description="The signed-in user; null for a request without a token or with a service token."
    )
    service_client = graphene.Field(
        ServiceClientType,
        description="The service client calling with a service token; null for a user's token and without a token.",
    )
    node = Node.Field(
        description="Fetch an object by its global ID: your own user, or anyone's for staff and for a service "
        "token with `users:read`."
    )
    users = graphene.relay.ConnectionField(
        UserType._meta.connection,
        search=graphene.String(
            description=f"Part of a username or email, any case; at most {USER_SEARCH_MAX_LENGTH} characters."
        ),
        is_active=graphene.Boolean(description="Only active (true) or deactivated (false) accounts."),
        is_staff=graphene.Boolean(description="Only staff (true) or non-staff (false) accounts."),
        is_email_verified=graphene.Boolean(description="Only verified (true) or unverified (false) addresses."),
        joined_after=graphene.DateTime(description="Joined at or after this time."),
        joined_before=graphene.DateTime(description="Joined before this time."),
        order_by=UserOrderBy(default_value="DATE_JOINED_DESC", description="The order; newest first by default."),
        first=graphene.Int(description=f"Page size from the start, at most {USERS_PAGE_MAX} (the default)."),
        last=graphene.Int(description=f"Page size from the end, at most {USERS_PAGE_MAX}."),
        after=graphene.String(description="The `endCursor` of the previous page."),
        before=graphene.String(description="The `startCursor` of the next page, to page backwards."),
        description=f"Accounts, for staff and service tokens with `users:read` only: search, filters and pages of "
        f"at most {USERS_PAGE_MAX}.",
    )

    @staticmethod
    def resolve_me(root, info):
        return viewer(info)

    @staticmethod
    def resolve_service_client(root, info):
        return service_caller(info)

    @staticmethod
    def resolve_users(root, info, order_by=None, **arguments):
        page = {name: arguments.pop(name, None) for name in ("first", "last", "after", "before")}
        for name in ("first", "last"):
            if page[name] is not None and not 0 <= page[name] <= USERS_PAGE_MAX:
                raise coded_error(f"`{name}` must be between 0 and {USERS_PAGE_MAX}.", RequestErrorCode.BAD_USER_INPUT)
        for name in ("after", "before"):
            if page[name] is not None and (cursor_to_offset(page[name]) or 0) < 0:
                raise coded_error(f"`{name}` is not a cursor of this list.", RequestErrorCode.BAD_USER_INPUT)
        try:
            users = user_list(
                viewer=viewer(info),
                caller=service_caller(info),
                order_by=getattr(order_by, "value", order_by),
                **arguments,
            )
        except ValidationError as exc:
            raise coded_error(
                " ".join(error.message for error in user_errors_from(exc)), RequestErrorCode.BAD_USER_INPUT
            ) from None
        args = {name: value for name, value in page.items() if value is not None}
        return DjangoConnectionField.resolve_connection(
            UserType._meta.connection, args, users, max_limit=USERS_PAGE_MAX
        )
