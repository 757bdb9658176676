"""Limits on a parsed document, checked before validation and execution.

Depth, aliases, directives, operations, root fields, sensitive root fields and
selections are counted on the AST with fragments expanded (each fragment once per
spread, cycles cut), so a cheap request cannot ask for expensive work, and neither
can validation: graphql-core's OverlappingFieldsCanBeMerged compares every pair of
fields that share a response name in a merged selection set, so its cost grows with
the square of a set's size. Bounding the selections per merged set (`max_selections_per_set`)
and in all (`max_selections`) bounds that work before the standard rules run.

Standard introspection queries (graphql-js's `getIntrospectionQuery`, graphql-core's
`get_introspection_query`, with any of their options) nest up to 14 levels, deeper
than any real query of the schema. A field that lies on the path shape those queries
use (`_INTROSPECTION_SHAPE`) is exempt from the depth limit; any other field counts as
usual, at its real depth, and every other limit counts introspection like any field. So
GraphiQL, codegen and Apollo Sandbox can load the schema, while introspection built into
deep or fanning-out documents (`type { fields { type { fields … } } }`) is still refused.
Whether introspection is allowed at all is the validator's decision
(NoSchemaIntrospectionCustomRule), which then refuses with its own, accurate message.
"""

from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)


@dataclass(frozen=True)
class DocumentLimits:
    max_depth: int
    max_aliases: int
    max_directives: int
    max_operations: int
    max_root_fields: int
    sensitive_root_fields: frozenset[str]
    max_selections: int
    max_selections_per_set: int
    max_field_pairs: int


class LimitExceeded(Exception):
    """A document asks for more than the limits allow; the message names which limit."""


# The standard introspection query's fields that have a selection set, as a grammar:
# state -> {field name: state of its selection set}. `ofType` chains are bounded apart.
_TYPE_REF = "TypeRef"
_INTROSPECTION_SHAPE: dict[str, dict[str, str]] = {
    "Query": {"__schema": "__Schema", "__type": "FullType"},
    "__Schema": {
        "types": "FullType",
        "queryType": _TYPE_REF,
        "mutationType": _TYPE_REF,
        "subscriptionType": _TYPE_REF,
        "directives": "__Directive",
    },
    "__Directive": {"args": "__InputValue"},
    "FullType": {
        "fields": "__Field",
        "inputFields": "__InputValue",
        "interfaces": _TYPE_REF,
        "possibleTypes": _TYPE_REF,
        "enumValues": "__EnumValue",
    },
    "__Field": {"args": "__InputValue", "type": _TYPE_REF},
    "__InputValue": {"type": _TYPE_REF},
    "__EnumValue": {},
}
# `ofType` levels in the standard queries: the default `typeDepth` of graphql-js and graphql-core.
_TYPE_REF_DEPTH = 9


def _shape_of(parent: tuple[str, int] | None, field: str) -> tuple[str, int] | None:
    """Return the shape state of `field` selected under `parent`, or None when off the shape."""
    if parent is None:
        return None
    state, of_types = parent
    if state == _TYPE_REF:
        return (_TYPE_REF, of_types + 1) if field == "ofType" and of_types < _TYPE_REF_DEPTH else None
    child = _INTROSPECTION_SHAPE[state].get(field)
    return None if child is None else (child, 0)


_ROOT_SHAPE = ("Query", 0)


def check_document_limits(document: DocumentNode, limits: DocumentLimits) -> None:
    """Raise LimitExceeded when `document` breaks one of `limits`."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    if len(operations) > limits.max_operations:
        raise LimitExceeded(f"A document may hold at most {limits.max_operations} operations.")
    counter = _Counter(fragments, limits)
    for operation in operations:
        counter.count_directives(operation)
        root = counter.new_set()
        shape = _ROOT_SHAPE if operation.operation is OperationType.QUERY else None
        counter.walk(operation.selection_set, depth=0, visiting=frozenset(), merged=root, shape=shape)
        root_fields = counter.root_fields.pop(root)
        if len(root_fields) > limits.max_root_fields:
            raise LimitExceeded(f"An operation may select at most {limits.max_root_fields} root fields.")
        for name in limits.sensitive_root_fields:
            if root_fields.count(name) > 1:
                raise LimitExceeded(f"`{name}` may be selected only once per operation.")


class _Counter:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode], limits: DocumentLimits):
        self.fragments = fragments
        self.limits = limits
        self.aliases = 0
        self.directives = 0
        self.selections = 0
        # Merged selection sets: the children of every field with one response path are one
        # set, as the executor merges them and as the overlap rule compares them.
        self.set_ids: dict[tuple[int, str], int] = {}
        self.set_sizes: list[int] = []
        # Fields per (merged set, response name): the overlap rule compares each pair of them.
        self.copies: dict[tuple[int, str], int] = {}
        self.field_pairs = 0
        self.root_fields: dict[int, list[str]] = {}

    def new_set(self) -> int:
        self.set_sizes.append(0)
        self.root_fields[len(self.set_sizes) - 1] = []
        return len(self.set_sizes) - 1

    def child_set(self, merged: int, response_name: str) -> int:
        key = (merged, response_name)
        set_id = self.set_ids.get(key)
        if set_id is None:
            set_id = self.set_ids[key] = len(self.set_sizes)
            self.set_sizes.append(0)
        return set_id

    def count_selection(self) -> None:
        # Fragments spread inside fragments expand exponentially; stop counting early.
        self.selections += 1
        if self.selections > self.limits.max_selections:
            raise LimitExceeded(
                f"A document may make at most {self.limits.max_selections} selections, with fragments expanded."
            )

    def count_field(self, merged: int, response_name: str) -> None:
        self.set_sizes[merged] += 1
        if self.set_sizes[merged] > self.limits.max_selections_per_set:
            raise LimitExceeded(
                f"A selection set may hold at most {self.limits.max_selections_per_set} fields,"
                " with fragments expanded and fields of the same name merged."
            )
        key = (merged, response_name)
        earlier = self.copies.get(key, 0)
        self.copies[key] = earlier + 1
        self.field_pairs += earlier
        if self.field_pairs > self.limits.max_field_pairs:
            raise LimitExceeded(
                f"A document may repeat fields at most {self.limits.max_field_pairs} times, counted as pairs"
                " of fields with the same name in one selection set, with fragments expanded."
            )

    def count_directives(self, node) -> None:
        self.directives += len(getattr(node, "directives", None) or ())
        if self.directives > self.limits.max_directives:
            raise LimitExceeded(f"A document may use at most {self.limits.max_directives} directives.")

    def walk(
        self,
        selection_set: SelectionSetNode | None,
        depth: int,
        visiting: frozenset[str],
        merged: int,
        shape: tuple[str, int] | None,
    ) -> None:
        if selection_set is None:
            return
        for selection in selection_set.selections:
            self.count_selection()
            self.count_directives(selection)
            if isinstance(selection, FieldNode):
                response_name = (selection.alias or selection.name).value
                self.count_field(merged, response_name)
                if depth == 0:
                    self.root_fields[merged].append(selection.name.value)
                if selection.alias is not None:
                    self.aliases += 1
                    if self.aliases > self.limits.max_aliases:
                        raise LimitExceeded(f"A document may use at most {self.limits.max_aliases} aliases.")
                if selection.selection_set is not None:
                    field_shape = _shape_of(shape, selection.name.value)
                    if depth + 1 > self.limits.max_depth and field_shape is None:
                        raise LimitExceeded(f"Queries may nest at most {self.limits.max_depth} levels deep.")
                    child = self.child_set(merged, response_name)
                    self.walk(selection.selection_set, depth + 1, visiting, child, field_shape)
            elif isinstance(selection, InlineFragmentNode):
                self.walk(selection.selection_set, depth, visiting, merged, shape)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                # Unknown fragments and cycles are the validator's to report.
                if fragment is not None and name not in visiting:
                    self.count_directives(fragment)
                    self.walk(fragment.selection_set, depth, visiting | {name}, merged, shape)


def fragment_errors(document: DocumentNode) -> list[GraphQLError]:
    """Return the errors of fragments defined twice or spread by no operation (names only).

    The limits walk what the operations select; such fragments would escape them, and
    graphql-core's overlap rule would still compare their fields pairwise. graphql-core's
    own rules for them (UniqueFragmentNames, NoUnusedFragments) give the same verdicts and
    messages, but run inside its type-tracking visitor, which costs tens of milliseconds on
    a large document: this is one plain pass over the nodes.
    """
    fragments = [d for d in document.definitions if isinstance(d, FragmentDefinitionNode)]
    errors, first = [], {}
    for fragment in fragments:
        name = fragment.name.value
        if name in first:
            errors.append(GraphQLError(f"There can be only one fragment named '{name}'.", [first[name], fragment.name]))
        else:
            first[name] = fragment.name
    by_name = {fragment.name.value: fragment for fragment in fragments}
    reachable: set[str] = set()
    pending = [d.selection_set for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in by_name and name not in reachable:
                    reachable.add(name)
                    pending.append(by_name[name].selection_set)
            elif selection.selection_set is not None:
                pending.append(selection.selection_set)
    errors += [
        GraphQLError(f"Fragment '{fragment.name.value}' is never used.", fragment)
        for fragment in fragments
        if fragment.name.value not in reachable
    ]
    return errors
