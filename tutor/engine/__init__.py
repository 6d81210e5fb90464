"""Lessons: the model, the loader/validator, and the runner that checks steps (no screen)."""
