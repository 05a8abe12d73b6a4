"""Phase 4: the check schedule of the transition, closing readiness and the final archive."""
