"""`python -m mtlbench.bench`: the throughput benchmark (throughput.py)."""

import sys

from mtlbench.bench.throughput import main
from mtlbench.runtime import reexec_with_fast_allocator

reexec_with_fast_allocator("mtlbench.bench", sys.argv[1:])
main(sys.argv[1:])
