"""DynamoDB's size of an item, computed the way DynamoDB bills and limits it.

DynamoDB refuses an item over 400 KB and a transaction whose items add up to
more than 4 MB; moto enforces neither, so the unit of work checks both before it
sends anything (models/uow.py). The rules (DynamoDB developer guide, "Item
sizes and formats"): an attribute costs the UTF-8 length of its name plus its
value; strings are their UTF-8 length, binary its raw length, booleans and
nulls 1 byte, numbers about one byte per two significant digits plus one
(at most 21), sets the sum of their elements, lists and maps 3 bytes plus 1 byte
per element plus the elements (and, for maps, their key names). Where the rule
is approximate the figure here errs on the large side, never below.
"""

from __future__ import annotations

from typing import Any

ITEM_MAX = 400 * 1024  # bytes, one item, names included
TRANSACTION_MAX = 4 * 1024 * 1024  # bytes, all items of one TransactWriteItems
TRANSACTION_ITEMS_MAX = 100


def _number(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").split("e")[0].split("E")[0].strip("0")
    return min(21, (len(digits) + 1) // 2 + 1)


def value_size(value: dict[str, Any]) -> int:
    """Size of one attribute value in DynamoDB JSON form ({"S": ...}, {"B": ...}, ...)."""
    (kind, inner), = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "B":
        return len(inner) if isinstance(inner, bytes | bytearray) else len(str(inner).encode())
    if kind == "N":
        return _number(str(inner))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode()) for s in inner)
    if kind == "NS":
        return sum(_number(str(n)) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in inner.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(attributes: dict[str, dict[str, Any]]) -> int:
    """Size of a whole item given as {name: DynamoDB-typed value}."""
    return sum(len(name.encode()) + value_size(v) for name, v in attributes.items())
