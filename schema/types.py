"""GraphQL object types. Fields are allow-listed: nothing private is ever exposed."""

import binascii
import uuid

import graphene
from graphene import relay
from graphene_django import DjangoObjectType
from graphql_relay import from_global_id

from accounts.models import Session, User
from accounts.scopes import USERS_READ
from accounts.selectors import (
    caller_scope_require,
    session_get_live,
    session_list_visible,
    user_get_visible,
)
from schema.errors import RequestErrorCode, coded_error
from schema.viewer import service_caller, viewer


def object_id_of(global_id, graphene_type) -> str | None:
    """Return the object id a global ID gives for `graphene_type`, or None (malformed, or another type's)."""
    try:
        type_name, object_id = from_global_id(global_id)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        return None
    return object_id if type_name == graphene_type._meta.name else None


class Node(relay.Node):
    """An object with a global ID."""

    class Meta:
        name = "Node"

    @classmethod
    def get_node_from_global_id(cls, info, global_id, only_type=None):
        """Return the object a global ID names if the viewer may see it, else null.

        A malformed ID is BAD_USER_INPUT; an ID of a type that is not a node is null, like
        an object that does not exist or is not yours. A service token needs `users:read`
        (else FORBIDDEN), and then sees any user, as staff do, and no session.
        """
        caller = service_caller(info)
        if caller is not None:
            caller_scope_require(caller, USERS_READ)
        try:
            type_name, object_id = from_global_id(global_id)
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
            type_name, object_id = "", ""
        if not type_name or not object_id:
            raise coded_error("Invalid global ID.", RequestErrorCode.BAD_USER_INPUT)
        graphql_type = info.schema.get_type(type_name)
        graphene_type = getattr(graphql_type, "graphene_type", None)
        if graphene_type is None or cls not in getattr(graphene_type._meta, "interfaces", ()):
            return None
        # graphene passes only_type=False, not None, for the untyped `node` field.
        if only_type and graphene_type is not only_type:
            return None
        return graphene_type.get_node(info, object_id)


class CountedConnection(relay.Connection):
    """A Relay connection that also says how many items match."""

    class Meta:
        abstract = True

    @classmethod
    def __init_subclass_with_meta__(cls, node=None, name=None, **options):
        options.setdefault("description", f"A page of {node._meta.name} items, with the total count.")
        super().__init_subclass_with_meta__(node=node, name=name, **options)

    total_count = graphene.Int(required=True, description="How many items match, on every page together.")

    @staticmethod
    def resolve_total_count(connection, info):
        return connection.length


class UserType(DjangoObjectType):
    """An account. You can see your own; staff can see anyone's."""

    class Meta:
        model = User
        name = "User"
        interfaces = (Node,)
        connection_class = CountedConnection
        # An explicit allow-list: never the password hash, permissions or staff flags.
        fields = ("id", "username", "email", "date_joined", "last_login", "is_email_verified")

    username = graphene.String(required=True, description="Public handle, unique ignoring case.")
    email = graphene.String(required=True, description="Login address, lowercased.")
    date_joined = graphene.DateTime(required=True, description="When the account was created.")
    last_login = graphene.DateTime(description="When the account last signed in; null if never.")
    is_email_verified = graphene.Boolean(required=True, description="Whether the email address has been confirmed.")
    sessions = graphene.List(
        graphene.NonNull(lambda: SessionType),
        description="Your live sessions (sign-ins), most recently used first, at most 100; "
        "null for anyone else's account.",
    )

    @classmethod
    def get_node(cls, info, id):
        try:
            user_id = int(id)
        except (TypeError, ValueError):
            return None
        if not 0 < user_id < 2**63:
            return None
        return user_get_visible(viewer=viewer(info), user_id=user_id, caller=service_caller(info))

    @staticmethod
    def resolve_sessions(user, info):
        return session_list_visible(viewer=viewer(info), user=user)


def session_uuid(value) -> uuid.UUID | None:
    """Return the session UUID a string names (hex or canonical form), or None."""
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


class SessionType(DjangoObjectType):
    """One sign-in of your account: a device or browser holding a refresh token."""

    class Meta:
        model = Session
        name = "Session"
        interfaces = (Node,)
        fields = ("id", "created_at", "last_used_at", "expires_at", "user_agent", "ip_address")

    created_at = graphene.DateTime(required=True, description="When you signed in.")
    last_used_at = graphene.DateTime(required=True, description="When the session was opened or last refreshed.")
    expires_at = graphene.DateTime(
        required=True, description="When the session ends unless refreshed first (its idle or absolute end)."
    )
    user_agent = graphene.String(required=True, description="The browser or app that signed in, as it named itself.")
    ip_address = graphene.String(description="The client address at sign-in; null if unknown.")
    current = graphene.Boolean(required=True, description="Whether this is the session of the request's token.")

    @staticmethod
    def resolve_expires_at(session, info):
        return session.ends_at()

    @staticmethod
    def resolve_current(session, info):
        claims = info.context.auth.claims
        return claims is not None and claims.session_id == session.id.hex

    @classmethod
    def get_node(cls, info, id):
        session_id, user = session_uuid(id), viewer(info)
        if session_id is None or user is None:
            return None
        return session_get_live(user=user, session_id=session_id)


class ServiceClientType(graphene.ObjectType):
    """A server calling Gatehouse with a service token (OAuth 2.0 client credentials)."""

    class Meta:
        name = "ServiceClient"

    client_id = graphene.String(required=True, description="The client's public `client_id` (the token's `sub`).")
    name = graphene.String(required=True, description="The client's name, as its administrator gave it.")
    scopes = graphene.List(
        graphene.NonNull(graphene.String),
        required=True,
        description="What this request's token may do: its scopes, all of which the client still holds.",
    )

    @staticmethod
    def resolve_client_id(caller, info):
        return caller.client.client_id

    @staticmethod
    def resolve_name(caller, info):
        return caller.client.name

    @staticmethod
    def resolve_scopes(caller, info):
        return list(caller.scopes)
