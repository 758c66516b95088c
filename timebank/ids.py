"""Time-ordered identifiers (UUID version 7, RFC 9562) generated in the application."""

from __future__ import annotations

import os
import threading
import time
import uuid

# Random bits come from the operating system's CSPRNG, fetched in blocks: one getrandom() call
# per id was a tenth of a posting's Python time on a virtual machine, where system calls are dear.
_BLOCK = 4000
_lock = threading.Lock()
_pool = b""
_offset = 0
_last_ms = 0
_counter = 0


def _forget_after_fork() -> None:
    # A forked child must not hand out the random bits its parent holds.
    global _pool, _offset, _lock
    _lock = threading.Lock()
    _pool, _offset = b"", 0


os.register_at_fork(after_in_child=_forget_after_fork)


def uuid7() -> uuid.UUID:
    """A UUIDv7: 48-bit Unix milliseconds, a 12-bit counter for order within one millisecond, random.

    Monotonic within a process, so ids generated in order sort in order.
    """
    global _pool, _offset, _last_ms, _counter
    with _lock:
        if _offset + 10 > len(_pool):
            _pool, _offset = os.urandom(_BLOCK), 0
        rand = int.from_bytes(_pool[_offset : _offset + 10], "big")  # 80 bits: 62 + 10 used
        _offset += 10
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            now_ms = _last_ms
        else:
            _last_ms = now_ms
            _counter = (rand >> 62) & 0x3FF  # a random start leaves room to count up
        counter = _counter
    tail = rand & ((1 << 62) - 1)
    value = (now_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | tail
    return uuid.UUID(int=value)
