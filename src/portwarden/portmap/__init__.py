"""Hardening the portmapper (rpcbind): TCP Wrappers lines, firewall rules, a check that they hold.

A command, not part of the packet path: `portwarden portmap protect|unprotect|check`.
"""
