"""Files a local user or a killed process must not be able to exploit (issue 15, findings 14,
22, 23): the registry and artifacts are not world-readable, a killed publish's temporary file
does not stay forever, and a bundle name the file system cannot hold is refused at publish."""
from __future__ import annotations

import io
import os
import stat
import time
import zipfile

import pytest

from publisher.artifact_store import STALE_TMP_S, FolderArtifactStore
from publisher.bundle import normalize_zip
from publisher.errors import BundleError
from publisher.registry import Registry


def test_the_registry_file_is_its_owners_only(settings):
    Registry(settings.database_url).dispose()
    database = settings.home / "registry.sqlite3"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


def test_artifacts_are_not_world_readable(settings):
    store = FolderArtifactStore(settings.artifact_dir)
    digest = "ab" + "0" * 62
    store.put(digest, b"content")
    path = store.path(digest)
    assert not stat.S_IMODE(path.stat().st_mode) & 0o007
    assert not stat.S_IMODE(path.parent.stat().st_mode) & 0o007
    assert store.get(digest) == b"content"


def test_a_killed_publishs_temporary_file_is_swept_by_the_next_put(settings):
    store = FolderArtifactStore(settings.artifact_dir)
    shard = settings.artifact_dir / "cd"
    shard.mkdir(parents=True)
    old, fresh = shard / ".tmp-killed.zip", shard / ".tmp-running.zip"
    old.write_bytes(b"x" * 1000)
    fresh.write_bytes(b"y")
    past = time.time() - STALE_TMP_S - 60
    os.utime(old, (past, past))
    store.put("cd" + "1" * 62, b"next")
    assert not old.exists()  # abandoned an hour ago: gone
    assert fresh.exists()  # another publish may be writing it right now: kept


def zip_with(name: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(name, b"data")
    return out.getvalue()


@pytest.mark.parametrize("name, fragment", [
    ("a" * 256 + ".txt", "has a name part of 260 bytes (at most 255)"),
    ("/".join(["d" * 200] * 16) + "/f.txt", "has a path over 3000 bytes"),
])
def test_a_bundle_name_the_file_system_cannot_hold_is_refused_at_publish(name, fragment):
    with pytest.raises(BundleError, match="bundle: entry") as info:
        normalize_zip(zip_with(name), 1 << 20, 100)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert normalize_zip(zip_with("a" * 255), 1 << 20, 100)  # the longest name that fits is fine


def test_schema_parsing_grows_linearly_with_the_columns():
    """Finding 17: duplicate names were found with list.count, so 40,000 columns took 15 s.
    A complexity check rather than a deadline: 4x the columns must cost well under 16x."""
    from publisher.schema import parse_schema
    from publisher.errors import SchemaError

    def seconds(n: int) -> float:
        doc = {"inputs": {"input1": {"columns": [{"name": f"c{i}", "type": "double"} for i in range(n)]}}}
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            parse_schema(doc)
            best = min(best, time.perf_counter() - start)
        return best

    small, large = seconds(5_000), seconds(20_000)
    assert large < 8 * small, (small, large)  # linear is ~4x; the old quadratic check was ~16x
    with pytest.raises(SchemaError, match="duplicate column name"):
        parse_schema({"inputs": {"input1": {"columns": [{"name": "a", "type": "double"}] * 2}}})
