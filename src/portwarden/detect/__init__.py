"""The detection engine: Probe in, Verdicts out. No sockets, no files, no clock of its own."""
