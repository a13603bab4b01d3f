"""What changed between two versions of a service: files, schema, parameters, limits."""
from __future__ import annotations

import difflib
from . import artifact
from .bundle import read_zip
from .environments import lock_id, pinned
from .artifact_store import ArtifactStore
from .registry import Registry


def load_version(registry: Registry, store: ArtifactStore, name: str, number: int) -> artifact.Artifact:
    record = registry.version(name, number)
    return artifact.load(store.get(record.digest), record.digest)


def _bundle_files(art: artifact.Artifact) -> dict:
    return {} if art.bundle is None else read_zip(art.bundle)


def _text_diff(a: bytes, b: bytes, name_a: str, name_b: str) -> str:
    try:
        la, lb = a.decode().splitlines(keepends=True), b.decode().splitlines(keepends=True)
    except UnicodeDecodeError:
        return "binary files differ\n"
    return "".join(difflib.unified_diff(la, lb, name_a, name_b))


def _columns(doc) -> dict:
    return {(port, c["name"]): c for port, spec in doc["inputs"].items() for c in spec["columns"]}


def diff_versions(registry: Registry, store: ArtifactStore, name: str, v1: int, v2: int) -> dict:
    a, b = load_version(registry, store, name, v1), load_version(registry, store, name, v2)
    files = {}
    for member in sorted(set(a.members) | set(b.members)):
        if member in ("schema.json", "bundle.zip", "original/bundle.zip", "conversion.json", "requirements.lock"):
            continue
        old, new = a.members.get(member), b.members.get(member)
        if old != new:
            files[member] = _text_diff(old or b"", new or b"", f"v{v1}/{member}", f"v{v2}/{member}")
    ba, bb = _bundle_files(a), _bundle_files(b)
    for member in sorted(set(ba) | set(bb)):
        if ba.get(member) != bb.get(member):
            files[f"bundle/{member}"] = _text_diff(ba.get(member, b""), bb.get(member, b""),
                                                   f"v{v1}/bundle/{member}", f"v{v2}/bundle/{member}")
    sa, sb = a.schema_document, b.schema_document
    ca, cb = _columns(sa), _columns(sb)
    schema = []
    for key in sorted(set(ca) | set(cb)):
        port, col = key
        if key not in ca:
            schema.append(f"{port}: column '{col}' added ({cb[key]['type']})")
        elif key not in cb:
            schema.append(f"{port}: column '{col}' removed")
        elif ca[key] != cb[key]:
            changes = [f"{k} {ca[key].get(k)!r} -> {cb[key].get(k)!r}" for k in sorted(set(ca[key]) | set(cb[key]))
                       if ca[key].get(k) != cb[key].get(k)]
            schema.append(f"{port}: column '{col}': " + ", ".join(changes))
    for port in sorted(set(sa["inputs"]) | set(sb["inputs"])):
        pa, pb = sa["inputs"].get(port), sb["inputs"].get(port)
        if pa is None or pb is None:
            schema.append(f"port {port} {'added' if pa is None else 'removed'}")
            continue
        for k in ("min_rows", "max_rows", "extra_columns"):
            if pa[k] != pb[k]:
                schema.append(f"{port}: {k} {pa[k]!r} -> {pb[k]!r}")
    if sa["isolation"] != sb["isolation"]:
        schema.append(f"isolation {sa['isolation']!r} -> {sb['isolation']!r}")
    if sa.get("python_version") != sb.get("python_version"):
        schema.append(f"python_version {sa.get('python_version', '3')!r} -> {sb.get('python_version', '3')!r}")
    if sa.get("compat", "classic") != sb.get("compat", "classic"):
        schema.append(f"compat {sa.get('compat', 'classic')!r} -> {sb.get('compat', 'classic')!r}")
    params = _dict_changes(sa["parameters"], sb["parameters"])
    limits = _dict_changes(sa["limits"], sb["limits"])
    conversion = {f"v{n}": c for n, art in ((v1, a), (v2, b)) if (c := conversion_diff(art))}
    return {"service": name, "from": v1, "to": v2, "files": files, "schema": schema,
            "parameters": params, "limits": limits, "packages": package_changes(a, b), "conversion": conversion}


def package_changes(a: artifact.Artifact, b: artifact.Artifact) -> list[str]:
    """How the environment changed: which packages were added, removed, or changed version."""
    if a.lock == b.lock:
        return []
    ids = [lock_id(x.lock) if x.lock is not None else None for x in (a, b)]
    out = [f"environment {(ids[0] or 'default')[:12]} -> {(ids[1] or 'default')[:12]}"]
    pa, pb = (pinned(x.lock) if x.lock is not None else _default_packages() for x in (a, b))
    return out + _changes(pa, pb, "{k} {new} added", "{k} {old} removed", "{k} {old} -> {new}")


def _default_packages() -> dict:
    from packaging.utils import canonicalize_name

    from .packages import installed_versions

    return {canonicalize_name(n): v for n, v in installed_versions().items() if n != "python" and v}


def conversion_diff(art: artifact.Artifact) -> dict:
    """For a Python 2.7 version: each converted file, as published -> as it runs."""
    record = art.conversion
    if not record:
        return {}
    out = {}
    for name in record["files"]:
        before, after = art.published_source(name) or b"", art.running_source(name) or b""
        out[name] = _text_diff(before, after, f"{name} (Python 2.7, as published)", f"{name} (Python 3, as it runs)")
    return out


def _dict_changes(a: dict, b: dict) -> list[str]:
    return _changes(a, b, "{k} added: {new!r}", "{k} removed", "{k}: {old!r} -> {new!r}")


def _changes(a: dict, b: dict, added: str, removed: str, changed: str) -> list[str]:
    """One line per key added, removed or changed between ``a`` and ``b``, in key order."""
    out = []
    for k in sorted(set(a) | set(b)):
        if k not in a:
            out.append(added.format(k=k, new=b[k]))
        elif k not in b:
            out.append(removed.format(k=k, old=a[k]))
        elif a[k] != b[k]:
            out.append(changed.format(k=k, old=a[k], new=b[k]))
    return out
