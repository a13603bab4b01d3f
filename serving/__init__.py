"""The HTTP service, the admin page and the sandboxed runtime, built on :mod:`publisher`."""
