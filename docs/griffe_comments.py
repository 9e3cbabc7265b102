"""A griffe extension: ``#:`` comments above an assignment are that attribute's docstring.

importstate documents its constants and aliases as Sphinx does (``#: what it is`` on the lines
before), so the API reference shows them without a second copy in string literals.
"""

from __future__ import annotations

import ast
from pathlib import Path

import griffe


class CommentDocstrings(griffe.Extension):
    """Give an attribute without a docstring the ``#:`` lines just above it."""

    def on_attribute_instance(
        self,
        *,
        node: ast.AST | griffe.ObjectNode,  # noqa: ARG002 - griffe passes every argument by name
        attr: griffe.Attribute,
        agent: griffe.Visitor | griffe.Inspector,  # noqa: ARG002
        **kwargs: object,  # noqa: ARG002
    ) -> None:
        """Read the comment block that ends on the line before ``attr``."""
        if attr.docstring is not None or attr.lineno is None or not isinstance(attr.filepath, Path):
            return
        try:
            lines = attr.lines_collection[attr.filepath]
        except KeyError:
            return
        comment: list[str] = []
        index = attr.lineno - 2
        while index >= 0 and lines[index].lstrip().startswith("#:"):
            comment.insert(0, lines[index].lstrip()[2:].strip())
            index -= 1
        if comment:
            attr.docstring = griffe.Docstring(
                " ".join(comment), lineno=index + 2, endlineno=attr.lineno - 1, parent=attr,
            )
