"""samhain-style audit of open ports: which TCP and UDP ports are open, who owns them, and
whether that matches the policy. The entry point is `portwarden.audit.check.run_audit`."""
