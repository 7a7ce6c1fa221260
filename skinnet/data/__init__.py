"""Data: reading files, finding pairs, caching, splitting, augmenting."""
