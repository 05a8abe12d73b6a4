"""Phase 1: preflight of the new mailbox (logins, capabilities, fit, round trip, DNS, the address), the change request letter, the scan for the old address everywhere else."""
