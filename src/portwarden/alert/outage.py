"""An alert output that fails (a full disk, a missing syslog socket) is said once when it starts
failing and once when it works again, never once per line: the failure of a log must not flood
the other log."""

import logging

log = logging.getLogger("portwarden")


class Outage:
    def __init__(
        self, name: str, unit: str, level: int = logging.ERROR, effect: str | None = None
    ) -> None:
        """`name`: the output as the administrator knows it (`JSON event log /path`);
        `unit`: what it drops (`events`); `level`: of the line that says it fails; `effect`:
        what happens meanwhile, for a failure that drops nothing (then `unit` counts the
        failures: `tries`)."""
        self._name = name
        self._unit = unit
        self._level = level
        self._effect = effect or f"{unit} are dropped and counted until it works"
        self._counted = "dropped since it failed" if effect is None else "failed"
        self.dropped = 0  # since start
        self._episode = 0  # since it last began failing
        self._failing = False

    def failed(self, why: str) -> None:
        """One more dropped; said if it is the first since the output last worked."""
        self.dropped += 1
        self._episode += 1
        if not self._failing:
            self._failing, self._episode = True, 1
            log.log(self._level, "%s failing: %s; %s", self._name, why, self._effect)

    def worked(self) -> None:
        if self._failing:
            self._failing = False
            log.info(
                "%s works again (%d %s %s, %d so far)",
                self._name,
                self._episode,
                self._unit,
                self._counted,
                self.dropped,
            )
