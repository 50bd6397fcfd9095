"""Sensors turn the outside world into Probe records, nothing more."""
