"""Pages of a listing (AIP-158): ``page_size`` with a default and a cap, and an opaque
``page_token`` that continues after the last item of the previous page (by the item's sort
key, so items added meanwhile neither repeat nor shift the pages)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Callable, Sequence, TypeVar

from services.platform.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
T = TypeVar("T")


def page(items: Sequence[T], key: Callable[[T], str], page_size: int, page_token: str, listing: str,
         descending: bool = False) -> tuple[list[T], str]:
    """The page of ``items`` (sorted by ``key``, descending or not) that ``page_token``
    starts, and the token of the next page ("" after the last)."""
    size = _page_size(page_size)
    start = 0
    if page_token:
        after = _decode(page_token, listing)
        start = next((i for i, item in enumerate(items)
                      if (key(item) < after if descending else key(item) > after)), len(items))
    chunk = list(items[start:start + size])
    more = start + size < len(items)
    return chunk, _encode(listing, key(chunk[-1])) if more and chunk else ""


def _page_size(page_size: int) -> int:
    if page_size < 0:
        raise InvalidArgument.single("page_size", "must not be negative")
    if page_size > MAX_PAGE_SIZE:
        raise InvalidArgument.single("page_size", f"must be at most {MAX_PAGE_SIZE}, got {page_size}")
    return page_size or DEFAULT_PAGE_SIZE


def _encode(listing: str, after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"l": listing, "a": after}).encode()).decode()


def _decode(token: str, listing: str) -> str:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["l"] == listing and isinstance(data["a"], str):
            return data["a"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        pass
    raise InvalidArgument.single("page_token", "is not a token that this listing returned")
