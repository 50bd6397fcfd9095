"""portwarden: detect port scans and probes against this host, alert, and optionally block."""

__version__ = "0.1.0"
