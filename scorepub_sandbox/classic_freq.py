"""Frequency strings of pandas 0.18 and their pandas 3 spellings ('M' -> 'ME', '15T' -> '15min').

Shared by the runtime compatibility layer (which retries a refused call with the new spelling)
and the publisher's scan and migrate rewrite; standard library only.
"""
from __future__ import annotations

import re

_FREQ_TOKEN = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)?)\s*([A-Za-z]+)((?:-[0-9A-Za-z]+)*)")
_FREQ_LOWER = {"Min": "T", "min": "T", "ms": "L", "us": "U", "ns": "N"}
_OFFSET_ALIASES = {"M": "ME", "BM": "BME", "SM": "SME", "CBM": "CBME", "Q": "QE", "BQ": "BQE", "A": "YE",
                   "Y": "YE", "BA": "BYE", "BY": "BYE", "AS": "YS", "BAS": "BYS", "H": "h", "BH": "bh",
                   "CBH": "cbh", "T": "min", "S": "s", "L": "ms", "U": "us", "N": "ns"}
# periods: 'M', 'Q', 'W', 'D', 'B' are what pandas 3 still spells them; only these changed
_PERIOD_ALIASES = {"A": "Y", "H": "h", "T": "min", "S": "s", "L": "ms", "U": "us", "N": "ns"}


def modern_freq(freq, period: bool = False):
    """The pandas 3 spelling of a 0.18 frequency string ('M' -> 'ME', '15T' -> '15min', 'Q-NOV' ->
    'QE-NOV'; with period=True 'A' -> 'Y', 'H' -> 'h' and 'M' stays 'M'). Anything else, and codes
    that are spelled the same today, come back unchanged."""
    if not isinstance(freq, str):
        return freq
    table, out, at = (_PERIOD_ALIASES if period else _OFFSET_ALIASES), [], 0
    for m in _FREQ_TOKEN.finditer(freq):
        if m.start() != at:
            return freq
        n, code, anchor = m.groups()
        old = _FREQ_LOWER.get(code, code if code == "MS" else code.upper())
        out.append(n + table.get(old, code) + anchor)
        at = m.end()
    return "".join(out) if out and at == len(freq) else freq
