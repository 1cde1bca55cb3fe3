"""Choosing what goes into the model's context: search, repo map, packing."""
