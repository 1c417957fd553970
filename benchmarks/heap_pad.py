"""Run a Python script after moving where everything it creates lands in memory.

``python heap_pad.py N script.py ARGS...`` allocates N small objects, keeps them, and runs
``script.py`` as ``__main__`` with ``ARGS``. The objects shift the addresses of everything made
after them (modules, code objects, interned names), and a count of machine instructions turns
out to depend on those addresses: the same code counted from 135,626 to 137,323 instructions
per request under different shifts, and a line that only declares a method for type checkers
(never executed) moved one count by 1,150. One cause among others: CPython 3.11's method cache
is indexed by the address of the attribute's name, so which lookups collide there depends on
the layout. ``instructions.py`` counts each in-process row under several shifts and takes the
mean, so that a change is not credited with what the layout did.
"""

from __future__ import annotations

import os
import runpy
import sys


def main() -> None:
    """``heap_pad.py N script.py ARGS...``: see the module doc."""
    if len(sys.argv) < 3:
        sys.exit("usage: heap_pad.py N script.py [ARGS...]")
    padding = [bytes(48) for _ in range(int(sys.argv[1]))]
    script = sys.argv[2]
    sys.argv = sys.argv[2:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
    del padding


if __name__ == "__main__":
    main()
