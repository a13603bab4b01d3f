"""Publish the public classic scripts of bench/classic_corpus.json unchanged, and say which run.

    .venv/bin/python bench/classic_corpus.py --fetch            # download each file from GitHub
    .venv/bin/python bench/classic_corpus.py --from DIR          # or read DIR/<id>/score.py, bundle/

The manifest holds each script's origin (repository, path, commit) and our own schema.json and
sample.json for it, never the scripts' code: --fetch downloads them at those commits from
raw.githubusercontent.com into ~/.cache/scorepub-corpus. Each is published exactly as it is
(the publish runs sample.json as a smoke call through the real sandbox, so "ok" means it ran)
into a throwaway SCOREPUB_HOME. Prints a Markdown table and the count; docs/classic-corpus.md
has the last results.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "bench" / "classic_corpus.json"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "scorepub-corpus"


def raw_url(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{urllib.parse.quote(path)}"


def fetch(repo: str, commit: str, path: str) -> bytes:
    cached = CACHE / repo / commit / path
    if not cached.is_file():
        with urllib.request.urlopen(raw_url(repo, commit, path), timeout=60) as answer:
            data = answer.read()
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(data)
    return cached.read_bytes()


def lay_out(entry: dict, folder: Path, source: Path | None) -> None:
    """The experiment folder: the script and bundle files as published, our schema and sample."""
    folder.mkdir(parents=True)
    if source is not None:
        mine = source / entry["id"]
        (folder / "score.py").write_bytes((mine / "score.py").read_bytes())
        files = {f["as"]: (mine / "bundle" / f["as"]).read_bytes() for f in entry.get("bundle_files", [])}
    else:
        (folder / "score.py").write_bytes(fetch(entry["repo"], entry["commit"], entry["path"]))
        files = {f["as"]: fetch(f["repo"], f["commit"], f["path"]) for f in entry.get("bundle_files", [])}
    for name, data in files.items():
        (folder / "bundle" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "bundle" / name).write_bytes(data)
    (folder / "schema.json").write_text(json.dumps(entry["schema"]))
    (folder / "sample.json").write_text(json.dumps(entry["sample"]))


def publish(folder: Path, name: str, home: Path) -> tuple[bool, str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREPUB_") or k == "SCOREPUB_SANDBOX"}
    env["SCOREPUB_HOME"] = str(home)
    proc = subprocess.run([sys.executable, "-m", "serving.cli", "publish", str(folder), "--name", name, "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        out = {}
    if proc.returncode == 0:
        return True, "ok", out.get("warnings", [])
    message = out.get("error") or (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return False, message, []


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--fetch", action="store_true", help="download the files from GitHub (cached)")
    where.add_argument("--from", dest="source", type=Path, help="a folder holding <id>/score.py and <id>/bundle/")
    p.add_argument("--only", help="comma-separated ids (or their numbers)")
    p.add_argument("--json", type=Path, help="also write the outcomes here")
    args = p.parse_args(argv)
    entries = json.loads(MANIFEST.read_text())
    if args.only:
        wanted = set(args.only.split(","))
        entries = [e for e in entries if e["id"] in wanted or e["id"].split("-")[0] in wanted]
    results = []
    with tempfile.TemporaryDirectory(prefix="scorepub-corpus-") as tmp:
        for entry in entries:
            folder = Path(tmp) / entry["id"]
            try:
                lay_out(entry, folder, args.source)
            except OSError as exc:
                results.append({"id": entry["id"], "ok": False, "outcome": f"could not get the files: {exc}"})
                continue
            ok, outcome, warnings = publish(folder, "corpus-" + entry["id"].split("-")[0], Path(tmp) / "home")
            results.append({"id": entry["id"], "ok": ok, "outcome": outcome, "warnings": warnings})
            print(f"{entry['id']}: {'ok' if ok else outcome[:160]}", file=sys.stderr, flush=True)
    print("| script | origin | outcome |\n| --- | --- | --- |")
    by_id = {e["id"]: e for e in entries}
    for r in results:
        e = by_id[r["id"]]
        outcome = "runs" if r["ok"] else r["outcome"].replace("|", "\\|")[:240]
        print(f"| {r['id']} | {e['repo']} `{e['path']}` @ {e['commit'][:10]} | {outcome} |")
    ran = sum(r["ok"] for r in results)
    print(f"\n{ran} of {len(results)} run unchanged")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
