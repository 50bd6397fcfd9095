"""Packet bytes, kernel filters, facts about this host's own network, a portmapper client."""
