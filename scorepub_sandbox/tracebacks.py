"""What a caller sees of a script's failure: a traceback of the script's own files, no host
paths, line numbers of the file the user published (a Python 2.7 file's converted line shown
beside it), and a one-line message that names the innermost line of the user's own code."""
from __future__ import annotations

import dataclasses
import os
import sys
import sysconfig
import traceback
from pathlib import Path

from .py2_runtime import original_line

_SCOREPUB = str(Path(__file__).resolve().parents[1])  # the folder scorepub is installed in
_OWN_CODE = (str(Path(__file__).resolve().parent) + os.sep,)  # the sandbox package: all a worker runs of ours


@dataclasses.dataclass
class ScriptFiles:
    """Where the script's files are and how the converted ones map back to what was published."""

    roots: list  # folders shown relative (the template's, the worker's): "Script Bundle/x.py"
    converted: dict = dataclasses.field(default_factory=dict)  # relative name -> (line_map, original lines)

    def relative(self, filename: str) -> str | None:
        """The name of one of the script's own files, or None for any other file."""
        if filename == "score.py":
            return filename
        for root in self.roots:
            prefix = str(root) + os.sep
            if filename.startswith(prefix):
                return filename[len(prefix):]
        return None

    def published_line(self, rel: str, line: int) -> tuple[int, str | None]:
        """The line number in the published file, and that line's text when it was converted."""
        entry = self.converted.get(rel)
        if entry is None:
            return line, None
        line_map, original = entry
        n = original_line(line_map, line)
        return n, original[n - 1].strip() if 0 < n <= len(original) else ""


def from_artifact(art, roots: list) -> ScriptFiles:
    """A :class:`ScriptFiles` for an artifact (its conversion record, when it has one)."""
    record = art.conversion
    converted = {}
    if record:
        from .py2_runtime import decode, source_lines

        for name, entry in record["files"].items():
            source = art.published_source(name)
            if source is not None:
                converted[name] = (entry.get("line_map"), source_lines(decode(source)[0]))
    return ScriptFiles(list(roots), converted)


class _Stack(traceback.StackSummary):
    files: ScriptFiles

    def format_frame_summary(self, frame):
        if frame.filename.startswith(_OWN_CODE):
            return None  # scorepub's own shims (paths, Python 2's "/", the compatibility layer)
        rel = self.files.relative(frame.filename)
        if rel is None or rel not in self.files.converted:
            return super().format_frame_summary(frame)
        line, text = self.files.published_line(rel, frame.lineno)
        row = f'  File "{frame.filename}", line {line}, in {frame.name}\n'
        if text:
            row += f"    {text}\n"
        converted = (frame.line or "").strip()
        if converted and converted != text:
            row += f"    (converted to Python 3: {converted})\n"
        return row


def clean_traceback(exc: BaseException, files: ScriptFiles) -> str:
    """The script's traceback, from its own frames down, with no host paths in it."""
    tb = exc.__traceback__
    while tb is not None and files.relative(tb.tb_frame.f_code.co_filename) is None:
        tb = tb.tb_next
    te = traceback.TracebackException(type(exc), exc, tb or exc.__traceback__)
    seen, todo = set(), [te]
    while todo:
        t = todo.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack = _Stack(t.stack)  # from_list would make a plain StackSummary
        stack.files = files
        t.stack = stack
        todo += [c for c in (t.__cause__, t.__context__) if c is not None]
    return scrub_paths("".join(te.format()), files.roots)


def locate(exc: BaseException, files: ScriptFiles) -> str | None:
    """``file:line`` of the innermost frame in the script's own files (score.py, the bundle)."""
    where = None
    if isinstance(exc, SyntaxError) and exc.filename:  # a bundle module that does not compile
        rel = files.relative(exc.filename)
        where = (rel, exc.lineno or 0) if rel else None
    if where is None:
        for frame, lineno in traceback.walk_tb(exc.__traceback__):
            rel = files.relative(frame.f_code.co_filename)
            if rel is not None:
                where = (rel, lineno)
    if where is None:
        return None
    rel, line = where
    return f"{rel}:{files.published_line(rel, line)[0]}"


def one_line(exc: BaseException, files: ScriptFiles) -> str:
    """``score.py:12: KeyError: 'x'``: what failed, where in the user's code."""
    where = locate(exc, files)
    text = scrub_paths(f"{type(exc).__name__}: {exc}"[:2000], files.roots)
    return f"{where}: {text}" if where else text


def scrub_paths(text: str, roots: list) -> str:
    replacements = [(_SCOREPUB, "<scorepub>")]
    for root in roots:
        replacements += [(str(root) + os.sep, ""), (str(root), ".")]
    paths = sysconfig.get_paths()
    for key, label in (("purelib", "<site-packages>"), ("platlib", "<site-packages>"),
                       ("stdlib", "<stdlib>"), ("platstdlib", "<stdlib>")):
        if paths.get(key):
            replacements.append((paths[key], label))
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        replacements.append((prefix, "<python>"))
    for old, new in sorted(replacements, key=lambda r: -len(r[0])):
        text = text.replace(old, new)
    return text
