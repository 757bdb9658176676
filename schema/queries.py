"""Root query fields."""

import graphene

from schema.types import Node, UserType
from schema.viewer import viewer


class Query(graphene.ObjectType):
    """Read the signed-in user and the objects they may see."""

    me = graphene.Field(UserType, description="The signed-in user; null for a request without a token.")
    node = Node.Field(description="Fetch an object by its global ID: your own user, or anyone's for staff.")

    @staticmethod
    def resolve_me(root, info):
        return viewer(info)
