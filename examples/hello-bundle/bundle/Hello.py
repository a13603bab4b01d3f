# Hello.py: a module shipped in the Script Bundle (the third input port).
# The runtime puts the unpacked bundle folder first on sys.path, so score.py
# can simply `import Hello`.
import os

# Data files in the bundle live next to this module. The runtime exposes the
# bundle folder as $SCRIPT_BUNDLE; fall back to this file's folder without it.
BUNDLE_DIR = os.environ.get("SCRIPT_BUNDLE") or os.path.dirname(os.path.abspath(__file__))

# Read the greeting word once, when the module is imported.
with open(os.path.join(BUNDLE_DIR, "greetings.txt"), encoding="utf-8") as f:
    GREETING = f.readline().strip()


def print_hello(name):
    """Print and return a greeting such as 'Hello, Ada!'."""
    greeting = f"{GREETING}, {name}!"
    print(greeting)
    return greeting
