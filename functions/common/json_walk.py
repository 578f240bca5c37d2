"""One bounded, iterative walk over a JSON body, shared by the body reader
(functions/common/http.py: duplicate keys, refused numbers, unpaired surrogates)
and resource validation (functions/engine/validation.py: forbidden characters).

Both need the same things: a nesting bound checked without recursion (so no depth
can overflow the stack), a fast pass that only says "clean" or not, and, for a
body that is not clean, issues that name each element at fault as a FHIRPath-like
expression (never its value), at most `limit` of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from functions.common.errors import Issue

MAX_JSON_DEPTH = 64  # objects and arrays nested in one body
_ELEMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

NodeIssues = Callable[[Any, str], list[Issue]]


def child_path(path: str, key: str | int) -> str:
    """`path.key` or `path[n]`; a key that is no element name is not echoed."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if _ELEMENT_NAME.fullmatch(key) else path


def clean(
    body: dict[str, Any], text_ok: Callable[[str], bool], refused: tuple[type, ...] = ()
) -> bool:
    """The fast pass: every node within the depth bound, none of a `refused` type,
    and `text_ok` of all keys and strings joined (one call, not one per node)."""
    texts: list[str] = []
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        kind = type(node)
        if depth > MAX_JSON_DEPTH or kind in refused:
            return False
        if kind is str:
            texts.append(node)
        elif isinstance(node, dict):
            texts.extend(node)
            stack.extend((child, depth + 1) for child in node.values())
        elif kind is list:
            stack.extend((child, depth + 1) for child in node)
    return text_ok("\n".join(texts))


def issues(body: dict[str, Any], root: str, node_issues: NodeIssues, limit: int) -> list[Issue]:
    """At most `limit` issues: one per top-level element nested too deeply, and
    whatever `node_issues(node, path)` finds in each node within the bound."""
    found: list[Issue] = []
    stack: list[tuple[Any, str, int, str]] = [(body, root, 1, root)]
    while stack and len(found) < limit:
        node, path, depth, top = stack.pop()
        if depth > MAX_JSON_DEPTH:
            if not any(top in i.expression for i in found):
                message = f"Nested more than {MAX_JSON_DEPTH} levels deep."
                found.append(Issue("structure", message, [top]))
            continue
        found.extend(node_issues(node, path))
        children: list[tuple[str | int, Any]] = []
        if isinstance(node, dict):
            children = list(node.items())
        elif isinstance(node, list):
            children = list(enumerate(node))
        for key, child in reversed(children):
            at = child_path(path, key)
            stack.append((child, at, depth + 1, at if depth == 1 else top))
    return found[:limit]
