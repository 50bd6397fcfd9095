"""A stand-in KILL_ROUTE / KILL_RUN_CMD: appends its arguments, one line per call, to a file.

usage: record.py FILE ARG...
"""

import sys
import time

with open(sys.argv[1], "a") as out:
    out.write(f"{time.monotonic():.6f} " + " ".join(repr(a) for a in sys.argv[2:]) + "\n")
