"""Model selection on out-of-fold data: what a shipped model keeps (TTA, fallback, post-processing)."""
