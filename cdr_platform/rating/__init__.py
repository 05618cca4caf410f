"""Command-line entry points of rating (`python -m cdr_platform.rating.conformance`)."""
