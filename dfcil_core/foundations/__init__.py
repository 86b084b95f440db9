"""Foundations: errors, the validated config and its presets, the method registry, atomic file io.
Nothing here imports torch or anything above it."""
