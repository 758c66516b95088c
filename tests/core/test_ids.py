"""Application-side UUIDv7 (timebank.ids)."""

from __future__ import annotations

import os
import uuid
import warnings

from timebank import ids


class TestUuid7:
    def test_version_7_rfc_variant(self) -> None:
        u = ids.uuid7()
        assert u.version == 7
        assert u.variant == uuid.RFC_4122

    def test_ids_made_in_order_sort_in_order_and_never_repeat(self) -> None:
        # several blocks of buffered random bits, many ids per millisecond
        made = [ids.uuid7() for _ in range(5000)]
        assert made == sorted(made, key=lambda u: u.bytes)
        assert len(set(made)) == len(made)

    def test_the_random_part_varies(self) -> None:
        tails = {ids.uuid7().int & ((1 << 62) - 1) for _ in range(100)}
        assert len(tails) == 100

    def test_a_forked_child_does_not_repeat_its_parents_random_bits(self) -> None:
        ids.uuid7()  # the parent holds a block of random bits
        read, write = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.write(write, ids.uuid7().bytes)
            os._exit(0)
        os.close(write)
        child = uuid.UUID(bytes=os.read(read, 16))
        os.close(read)
        os.waitpid(pid, 0)
        parent = ids.uuid7()
        mask = (1 << 62) - 1
        assert child.int & mask != parent.int & mask
