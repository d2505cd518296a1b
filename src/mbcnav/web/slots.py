"""Pre-rendered HTML with named slots, filled per request by one join.

A long page rendered by Jinja costs milliseconds; the parts of it that differ between visitors
(the CSRF token, the guide panel, whether a button says "Add" or "Remove") are small. So the
page is rendered once with slot markers in those places, split at the markers, and each request
joins the literal parts with its own values: no template work and no search through the page.

A marker is `@@mbcnav-NONCE:NAME@@`. It has no character that HTML escaping changes, so a marker
passed as a plain template value comes out of autoescaping intact. NONCE is random per process
and never leaves it (every marker is filled before a page is sent): text a visitor typed, such as
a medicine name shown back in a warning, can look like a marker but cannot be one.
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from threading import Lock
from typing import Generic, TypeVar

_NONCE = secrets.token_hex(8)
_MARKER = re.compile(rf"(@@mbcnav-{_NONCE}:[A-Za-z0-9_.:-]+@@)")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def slot(name: str) -> str:
    return f"@@mbcnav-{_NONCE}:{name}@@"


class Slotted:
    """A text split at its slot markers and kept as UTF-8 (what the response sends).

    Literal parts sit at even indices, marker names at odd ones. The parts are encoded once: a
    long page with a few non-ASCII characters costs more to encode per request than to join.
    """

    __slots__ = ("_markers", "_parts", "names")

    def __init__(self, text: str) -> None:
        split = _MARKER.split(text)
        self._markers = split[1::2]
        self._parts = [p.encode() if i % 2 == 0 else b"" for i, p in enumerate(split)]
        self.names = frozenset(self._markers)

    def fill(self, values: Mapping[str, str | bytes], default: Callable[[str], str | bytes] | None = None) -> bytes:
        """Join the parts with each marker's value; `default(marker)` answers markers not in `values`."""
        parts = self._parts[:]
        for n, marker in enumerate(self._markers):
            found = values.get(marker)
            if found is None:
                if default is None:
                    raise KeyError(f"no value for slot {marker}")
                found = default(marker)
            parts[2 * n + 1] = found.encode() if isinstance(found, str) else found
        return b"".join(parts)


class Lru(Generic[K, V]):
    """A small thread-safe LRU: `get(key, make)` returns the cached value or stores `make()`."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = Lock()

    def get(self, key: K, make: Callable[[], V]) -> V:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        value = make()      # outside the lock: two threads may both build; both results are equal
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)
