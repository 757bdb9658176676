"""Limits on a parsed document, checked before validation and execution.

Depth, aliases, directives, operations, root fields and sensitive root fields are
counted on the AST with fragments expanded (each fragment once per path, cycles cut),
so a cheap request cannot ask for expensive work.
"""

from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

# Selections visited with fragments expanded; far above any real client's document.
_MAX_VISITS = 5_000


@dataclass(frozen=True)
class DocumentLimits:
    max_depth: int
    max_aliases: int
    max_directives: int
    max_operations: int
    max_root_fields: int
    sensitive_root_fields: frozenset[str]


class LimitExceeded(Exception):
    """A document asks for more than the limits allow; the message names which limit."""


def check_document_limits(document: DocumentNode, limits: DocumentLimits) -> None:
    """Raise LimitExceeded when `document` breaks one of `limits`."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    if len(operations) > limits.max_operations:
        raise LimitExceeded(f"A document may hold at most {limits.max_operations} operations.")
    counter = _Counter(fragments, limits)
    for operation in operations:
        counter.count_directives(operation)
        root_fields = counter.root_fields(operation.selection_set, set())
        if len(root_fields) > limits.max_root_fields:
            raise LimitExceeded(f"An operation may select at most {limits.max_root_fields} root fields.")
        for name in limits.sensitive_root_fields:
            if root_fields.count(name) > 1:
                raise LimitExceeded(f"`{name}` may be selected only once per operation.")
        counter.walk(operation.selection_set, depth=0, visiting=frozenset())
    if counter.aliases > limits.max_aliases:
        raise LimitExceeded(f"A document may use at most {limits.max_aliases} aliases.")


class _Counter:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode], limits: DocumentLimits):
        self.fragments = fragments
        self.limits = limits
        self.aliases = 0
        self.directives = 0
        self.visits = 0

    def visit(self) -> None:
        # Fragments spread inside fragments expand exponentially; stop counting early.
        self.visits += 1
        if self.visits > _MAX_VISITS:
            raise LimitExceeded("The document selects too many fields.")

    def count_directives(self, node) -> None:
        self.directives += len(getattr(node, "directives", None) or ())
        if self.directives > self.limits.max_directives:
            raise LimitExceeded(f"A document may use at most {self.limits.max_directives} directives.")

    def root_fields(self, selection_set: SelectionSetNode, visiting: set[str]) -> list[str]:
        """Return the names of the fields selected at the root, through fragments."""
        names = []
        for selection in selection_set.selections:
            self.visit()
            if isinstance(selection, FieldNode):
                names.append(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                names.extend(self.root_fields(selection.selection_set, visiting))
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in visiting:
                    names.extend(self.root_fields(fragment.selection_set, visiting | {name}))
        return names

    def walk(self, selection_set: SelectionSetNode | None, depth: int, visiting: frozenset[str]) -> None:
        if selection_set is None:
            return
        for selection in selection_set.selections:
            self.visit()
            self.count_directives(selection)
            if isinstance(selection, FieldNode):
                if selection.alias is not None:
                    self.aliases += 1
                    if self.aliases > self.limits.max_aliases:
                        raise LimitExceeded(f"A document may use at most {self.limits.max_aliases} aliases.")
                if selection.selection_set is not None:
                    if depth + 1 > self.limits.max_depth:
                        raise LimitExceeded(f"Queries may nest at most {self.limits.max_depth} levels deep.")
                    self.walk(selection.selection_set, depth + 1, visiting)
            elif isinstance(selection, InlineFragmentNode):
                self.walk(selection.selection_set, depth, visiting)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                # Unknown fragments and cycles are the validator's to report.
                if fragment is not None and name not in visiting:
                    self.count_directives(fragment)
                    self.walk(fragment.selection_set, depth, visiting | {name})
