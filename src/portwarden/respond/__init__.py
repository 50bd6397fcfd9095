"""Acting on verdicts: nftables, routes, hosts.deny, commands, and the policy over them."""
