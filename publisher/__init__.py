"""Freeze experiments into versioned, content-addressed artifacts and keep them in a registry.

This layer knows nothing of HTTP: the serving layer and the CLI build on it.
"""
