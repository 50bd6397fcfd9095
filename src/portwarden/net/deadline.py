"""Socket waits bounded by one deadline for a whole exchange, not by a timeout per operation:
a peer that sends a byte just before each timeout ends is otherwise never dropped."""

import time


def time_left(deadline: float) -> float:
    """Seconds until `deadline` (time.monotonic()), for settimeout; TimeoutError once passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left
