"""Phase 3: the change notice to every correspondent (templates, campaign, pacing, bounces), the internal notice and the final reminder."""
