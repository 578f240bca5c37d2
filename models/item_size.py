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

import json
from collections.abc import Callable
from typing import Any

ITEM_MAX = 400 * 1024  # bytes, one item, names included
TRANSACTION_MAX = 4 * 1024 * 1024  # bytes, all items of one TransactWriteItems
TRANSACTION_ITEMS_MAX = 100


def _number(value: Any) -> int:
    digits = sum(c.isdigit() for c in str(value).lower().split("e", 1)[0])
    return min(21, (digits + 1) // 2 + 1)


def _binary(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value)
    return (len(str(value)) * 3 + 3) // 4  # base64 text (the wire form): at most this many bytes


def _string(value: Any) -> int:
    return len(str(value).encode("utf-8"))


def _list(values: Any) -> int:
    return 3 + sum(1 + value_size(v) for v in values)


def _map(values: Any) -> int:
    return 3 + sum(1 + _string(k) + value_size(v) for k, v in values.items())


_SIZES: dict[str, Callable[[Any], int]] = {
    "S": _string,
    "N": _number,
    "B": _binary,
    "BOOL": lambda _: 1,
    "NULL": lambda _: 1,
    "SS": lambda vs: sum(_string(v) for v in vs),
    "NS": lambda vs: sum(_number(v) for v in vs),
    "BS": lambda vs: sum(_binary(v) for v in vs),
    "L": _list,
    "M": _map,
}


def value_size(value: Any) -> int:
    """Size of one attribute value in DynamoDB JSON form ({"S": ...}, {"B": ...}, ...);
    binary values may be bytes (as PynamoDB holds them) or base64 text (as sent)."""
    if not isinstance(value, dict) or len(value) != 1:
        return len(json.dumps(value, default=str))
    ((kind, inner),) = value.items()
    size = _SIZES.get(kind)
    return size(inner) if size is not None else len(json.dumps(inner, default=str))


def item_size(attributes: dict[str, Any]) -> int:
    """Size of a whole item given as {name: DynamoDB-typed value}."""
    return sum(_string(name) + value_size(v) for name, v in attributes.items())
