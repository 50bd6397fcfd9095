"""Telling the administrator: log lines now; syslog, mail and the JSON event log build on them."""
