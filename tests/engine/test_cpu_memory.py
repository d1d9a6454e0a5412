"""After `reuse_freed_memory`, glibc serves large tensors from its heap (reused across steps) instead of fresh mmaps."""

import ctypes
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")


def test_large_tensors_stop_being_mmapped_once_freed_memory_is_reused():
    try:
        ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")
    # A fresh interpreter: the setting is process-wide and cannot be undone, so the test process stays untouched.
    script = textwrap.dedent("""
        import ctypes, torch
        from pixelforge.engine.cpu_memory import reuse_freed_memory

        class MallInfo2(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in
                        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2

        def mmapped_by(allocate):
            before = libc.mallinfo2().hblkhd
            kept = allocate()
            return libc.mallinfo2().hblkhd - before

        big = lambda: torch.empty(64 << 20, dtype=torch.uint8)
        print(mmapped_by(big), reuse_freed_memory(), mmapped_by(big), reuse_freed_memory(), sep="|")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip()
    before, message, after, again = out.split("|")
    assert int(before) >= 64 << 20  # glibc's default: a 64 MB block is a fresh mmap, page-faulted on first touch
    assert int(after) == 0  # now it comes from the heap, where a freed block is reused without faults
    assert message == again == "malloc keeps freed blocks up to 1024 MiB for reuse"
