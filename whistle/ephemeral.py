"""Short-lived server state: values that must expire and must be shared by every process.

What lives here: the server's half of an officer's unlocked key while their session is
open, the list of reporter case views closed before their time, and login-attempt counts.
Nothing here outlives its time to live, and nothing here names a client's address.

Two backends, chosen by `state_storage_uri` (default: the rate limiter's storage):
`memory://` for one process (the embedded default), `redis://...` when several processes
or machines serve. Keys are namespaced; values are bytes.
"""

from __future__ import annotations

import abc
import threading
import time
from typing import Callable


class StateUnavailable(Exception):
    """The state storage cannot be reached; the request cannot be served safely."""


class EphemeralStore(abc.ABC):
    @abc.abstractmethod
    def put(self, key: str, value: bytes, ttl: float) -> None:
        """Store `value` under `key` for `ttl` seconds (replacing any value)."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes | None:
        """The value, or None if absent or expired."""

    @abc.abstractmethod
    def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    def incr(self, key: str, ttl: float) -> int:
        """Add one to a counter and return it; a new counter lives `ttl` seconds. `get`
        reads a counter as its decimal digits."""


class MemoryStore(EphemeralStore):
    """One process's dictionary, with expiry. For the embedded default and tests."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._data: dict[str, tuple[float, bytes]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def _live(self, key: str) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._data[key]
            return None
        return entry[1]

    def _prune(self) -> None:
        if len(self._data) > 10_000:  # bound memory under a flood of sessions or attempts
            now = self._clock()
            for key in [k for k, (expires, _v) in self._data.items() if expires <= now]:
                del self._data[key]

    def put(self, key: str, value: bytes, ttl: float) -> None:
        with self._lock:
            self._prune()
            self._data[key] = (self._clock() + ttl, bytes(value))

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._live(key)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def incr(self, key: str, ttl: float) -> int:
        with self._lock:
            self._prune()
            value = self._live(key)
            if value is not None:
                expires, count = self._data[key][0], int(value) + 1
            else:
                expires, count = self._clock() + ttl, 1
            self._data[key] = (expires, str(count).encode())  # as Redis keeps a counter
            return count


class RedisStore(EphemeralStore):
    """Redis, shared by every process; a dead Redis is a quick `StateUnavailable`."""

    PREFIX = "whistle:state:"

    def __init__(self, uri: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(uri, socket_connect_timeout=1, socket_timeout=1)
        self._errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError,)

    def _call(self, fn: Callable, *args):
        try:
            return fn(*args)
        except self._errors as exc:
            raise StateUnavailable(type(exc).__name__) from None

    def put(self, key: str, value: bytes, ttl: float) -> None:
        self._call(lambda: self._redis.set(self.PREFIX + key, value, px=max(1, int(ttl * 1000))))

    def get(self, key: str) -> bytes | None:
        return self._call(self._redis.get, self.PREFIX + key)

    def delete(self, key: str) -> None:
        self._call(self._redis.delete, self.PREFIX + key)

    def incr(self, key: str, ttl: float) -> int:
        def run() -> int:
            pipe = self._redis.pipeline()
            pipe.incr(self.PREFIX + key)
            pipe.pexpire(self.PREFIX + key, max(1, int(ttl * 1000)), nx=True)
            return int(pipe.execute()[0])

        return self._call(run)


def from_uri(uri: str, clock: Callable[[], float] = time.time) -> EphemeralStore:
    """The store named by `uri`; `clock` times a memory store's entries (Redis keeps its own)."""
    if uri.startswith(("redis://", "rediss://", "redis+unix://", "unix://")):
        return RedisStore(uri.replace("redis+unix://", "unix://", 1))
    if uri.startswith("memory://"):
        return MemoryStore(clock)
    raise ValueError("state storage must be memory:// or redis://")
