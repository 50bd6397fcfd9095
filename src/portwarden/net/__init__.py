"""Packet bytes, kernel filters, and facts about this host's own network."""
