"""What runs inside the sandbox: the fork server, templates and workers, and what they read.

A service version may run under another Python environment's interpreter (its own pandas and
numpy), which holds none of the server's packages. So this package imports only the standard
library, numpy, pandas, orjson, pyseccomp (optional) and matplotlib (only where installed),
never ``publisher`` or ``serving`` (tests/test_sandbox_package.py); both of those import it.
Host-side code starts it with :func:`scorepub_sandbox.launch.command`.
"""
