"""The test lab's namespace prefix: several checkouts may run their suites at once on one
machine, each with its own PWT_LAB_PREFIX (default `pwt-`)."""

import os

PREFIX = os.environ.get("PWT_LAB_PREFIX", "pwt-")
