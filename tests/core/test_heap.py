"""``keep_read_buffers_on_the_heap``: socket reads of asyncio's size stop mapping fresh memory for every read."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

#: A fresh interpreter reading 300 answers of 28 KB the way asyncio does (``recv(256 KiB)``); prints the page
#: faults those reads took. Each read mapped by malloc faults in the pages it writes: about 7 a read.
READS = """
import resource, socket, sys
if sys.argv[1] == "heap":
    from connector_core.heap import keep_read_buffers_on_the_heap
    keep_read_buffers_on_the_heap()
a, b = socket.socketpair()
answer = b"x" * 28_000
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(300):
    a.sendall(answer)
    left = len(answer)
    while left:
        left -= len(b.recv(256 * 1024))
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", READS, mode], capture_output=True, text=True, timeout=60, check=True)
    return int(done.stdout)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc")
def test_reads_reuse_heap_memory_instead_of_fresh_mappings() -> None:
    assert page_faults("default") > 1000  # a fresh mapping, faulted in, for every read
    assert page_faults("heap") < 100
