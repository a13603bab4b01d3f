"""API keys: made from the OS's CSPRNG, shown once, stored only as sha256 hashes.

A key carries 256 random bits, so a fast hash is enough (no password stretching needed);
checks compare every slot in constant time.
"""
import hashlib
import hmac
import secrets

SLOTS = ("primary", "secondary")


def new_key() -> str:
    return secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def matches(key: str, hashes) -> bool:
    """True if ``key`` hashes to any of ``hashes``; always compares against all of them."""
    candidate = hash_key(key)
    found = False
    for h in hashes:
        found |= hmac.compare_digest(candidate, h)
    return found
