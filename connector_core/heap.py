"""Where the C allocator puts the buffers HTTP responses are read into.

asyncio reads a socket with ``recv(256 KiB)``: a 256 KiB buffer, cut down to what arrived (an Apollo answer is
4 to 70 KB). glibc's malloc serves blocks above its *mmap threshold* (128 KiB at start) with a fresh ``mmap``, so
every read of a run paid an ``mmap``, page faults on the pages written, an ``mremap`` to cut it down and an
``munmap`` when freed: 868 of each on the 953-call benchmark job, about 30 ms of CPU. glibc raises the
threshold by itself when it frees such a block whole, which a program that reads a big file in one go does
early (the benchmark's minimal loop does); a streaming run never does. :func:`keep_read_buffers_on_the_heap`
does it once, so the reads reuse heap memory instead.
"""

from __future__ import annotations

#: A block freed whole raises glibc's mmap threshold to its size: above the largest socket read asyncio makes.
_RAISED_THRESHOLD = 1 << 20


def keep_read_buffers_on_the_heap() -> None:
    """Have glibc's malloc serve blocks up to 1 MiB from its heap from now on (elsewhere: nothing happens).

    ``bytes(n)`` asks for zeroed memory, which glibc maps without touching a page; freeing the block whole is
    what moves the threshold (and the heap's trim threshold to twice it: a run keeps at most ~2 MiB of freed
    heap instead of returning it at once).
    """
    block = bytes(_RAISED_THRESHOLD)
    del block
