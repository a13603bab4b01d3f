"""Artifacts, the folder artifact store and reading an experiment folder (publishing.md)."""
from __future__ import annotations

import io
import os
import shutil
import stat
import zipfile
from pathlib import Path

import orjson
import pytest

from publisher import artifact

from publisher.bundle import normalize_zip
from publisher.errors import ArtifactError, BundleError, PublishError, SchemaError, ScriptError
from publisher.experiment import read_experiment

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCORE = b"def azureml_main(df1):\n    return df1,\n"
SCHEMA = {"inputs": {"input1": {"columns": [{"name": "age", "type": "integer"}]}}}
MEMBERS = {
    "score.py": SCORE,
    "schema.json": orjson.dumps(SCHEMA),
    "sample.json": b'{"input1": [{"age": 1}]}',
    "requirements.txt": b"pandas\n",
}
ENV = {"python": "3.11.9", "pandas": "2.2.0", "numpy": "1.26.0"}
PUBLISHED = {"version": 1, "by": "ada", "at": "2024-01-01T00:00:00+00:00", "message": "first"}


def build(members=MEMBERS, service="svc", environment=ENV, published=PUBLISHED):
    return artifact.build(service, dict(members), environment, published)


def entries(archive: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        return {n: z.read(n) for n in z.namelist()}


def rezip(files: dict) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


def with_manifest(archive: bytes, change) -> bytes:
    files = entries(archive)
    manifest = orjson.loads(files["manifest.json"])
    change(manifest)
    files["manifest.json"] = orjson.dumps(manifest)
    return rezip(files)


# -- build and load -----------------------------------------------------------------------

def test_build_and_load_round_trip():
    bundle = normalize_zip(rezip({"Hello.py": b"x = 1\n"}), 1 << 20, 10)
    members = {**MEMBERS, "bundle.zip": bundle}
    digest, archive = build(members)
    assert len(digest) == 64 and int(digest, 16) >= 0
    loaded = artifact.load(archive, digest)
    assert loaded.service == "svc"
    assert loaded.digest == digest
    assert loaded.members == members
    assert loaded.score_py == SCORE
    assert loaded.bundle == bundle
    assert loaded.schema_document == SCHEMA
    assert loaded.sample == {"input1": [{"age": 1}]}
    assert loaded.manifest["published"] == PUBLISHED
    assert loaded.manifest["environment"] == ENV
    assert loaded.manifest["members"]["score.py"] == {"sha256": artifact.sha256(SCORE), "size": len(SCORE)}
    assert set(entries(archive)) == {"manifest.json", *members}


def test_optional_members_may_be_absent():
    digest, archive = build({"score.py": SCORE, "schema.json": b"{}"})
    loaded = artifact.load(archive, digest)
    assert loaded.bundle is None and loaded.sample is None


def test_unknown_member_refused_at_build():
    with pytest.raises(ValueError, match="notes.txt"):
        build({**MEMBERS, "notes.txt": b"x"})


def test_digest_ignores_publish_record_and_environment():
    d1, a1 = build(published=PUBLISHED, environment=ENV)
    d2, a2 = build(published={"version": 7, "by": "grace", "at": "2030-06-01T12:00:00+00:00", "message": "x"},
                   environment={"python": "3.12.1", "pandas": "3.0.0", "numpy": "2.0.0"})
    assert d1 == d2
    assert a1 != a2  # the archives differ only in the manifest's record
    assert artifact.load(a2, d1).manifest["published"]["version"] == 7


def test_digest_ignores_member_order():
    reordered = dict(reversed(list(MEMBERS.items())))
    assert build(reordered) == build(MEMBERS)


def test_build_is_byte_reproducible():
    assert build()[1] == build()[1]


@pytest.mark.parametrize("change", [
    lambda m: m.update({"score.py": SCORE + b"\n"}),
    lambda m: m.update({"schema.json": b"{}"}),
    lambda m: m.pop("requirements.txt"),
    lambda m: m.update({"bundle.zip": b"PK"}),
])
def test_digest_changes_with_content(change):
    members = dict(MEMBERS)
    change(members)
    assert build(members)[0] != build()[0]


def test_digest_depends_on_service_name():
    assert build(service="a")[0] != build(service="b")[0]


# -- tampering ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_tampered_member_refused(name):
    digest, archive = build()
    files = entries(archive)
    files[name] = files[name] + b" "
    with pytest.raises(ArtifactError, match=f"member {name} does not match"):
        artifact.load(rezip(files), digest)


def test_manifest_updated_to_match_tampered_member_refused():
    digest, archive = build()
    files = entries(archive)
    files["score.py"] = b"import os\ndef azureml_main(df1):\n    os.system('evil')\n"
    manifest = orjson.loads(files["manifest.json"])
    manifest["members"]["score.py"] = {"sha256": artifact.sha256(files["score.py"]), "size": len(files["score.py"])}
    files["manifest.json"] = orjson.dumps(manifest)
    with pytest.raises(ArtifactError, match="does not match its digest"):
        artifact.load(rezip(files), digest)


@pytest.mark.parametrize("change", [
    lambda m: m["members"]["score.py"].update(sha256="0" * 64),
    lambda m: m["members"]["score.py"].update(size=1),
    lambda m: m["members"].pop("requirements.txt"),
    lambda m: m.update(service="other"),
    lambda m: m.update(digest="0" * 64),
    lambda m: m.pop("digest"),
    lambda m: m.update(members={"score.py": "abc"}),
    lambda m: m.update(members=["score.py"]),
    lambda m: m.pop("members"),
], ids=["member-sha", "member-size", "member-unlisted", "service", "digest", "no-digest", "member-not-object",
        "members-list", "no-members"])
def test_tampered_manifest_refused(change):
    digest, archive = build()
    with pytest.raises(ArtifactError):
        artifact.load(with_manifest(archive, change), digest)


def test_manifest_not_json_refused():
    digest, archive = build()
    files = entries(archive)
    for bad in (b"{not json", b"[]", b"null"):
        files["manifest.json"] = bad
        with pytest.raises(ArtifactError, match="unreadable"):
            artifact.load(rezip(files), digest)


def test_missing_manifest_or_member_refused():
    digest, archive = build()
    files = entries(archive)
    with pytest.raises(ArtifactError):
        artifact.load(rezip({k: v for k, v in files.items() if k != "manifest.json"}), digest)
    with pytest.raises(ArtifactError):
        artifact.load(rezip({k: v for k, v in files.items() if k != "score.py"}), digest)


def test_extra_member_refused():
    digest, archive = build()
    files = entries(archive)
    files["sitecustomize.py"] = b"import os\n"
    with pytest.raises(ArtifactError, match="unexpected member 'sitecustomize.py'"):
        artifact.load(rezip(files), digest)


def test_other_digest_refused():
    digest, archive = build()
    other, _ = build(service="other")
    with pytest.raises(ArtifactError, match="does not match its digest"):
        artifact.load(archive, other)
    with pytest.raises(ArtifactError):
        artifact.load(archive, digest.upper())


def test_not_an_archive_refused():
    digest, archive = build()
    for data in (b"", b"garbage", archive[: len(archive) // 2]):
        with pytest.raises(ArtifactError):
            artifact.load(data, digest)


# -- the folder store ---------------------------------------------------------------------

def test_store_put_and_get(store):
    digest, archive = build()
    assert not store.path(digest).is_file()
    store.put(digest, archive)
    assert store.path(digest).is_file()
    assert store.get(digest) == archive
    path = store.path(digest)
    assert path == store.root / digest[:2] / f"{digest}.zip"
    assert stat.S_IMODE(path.stat().st_mode) == 0o440  # not world-readable: scripts and models (issue 15)
    assert sorted(p.name for p in path.parent.iterdir()) == [f"{digest}.zip"]  # no temporary left behind
    assert artifact.load(store.get(digest), digest).members == MEMBERS


def test_store_put_same_digest_twice_is_a_no_op(store):
    digest, archive = build()
    store.put(digest, archive)
    path = store.path(digest)
    before = path.stat()
    _, rebuilt = build(published={**PUBLISHED, "version": 2})
    assert rebuilt != archive
    store.put(digest, rebuilt)
    after = path.stat()
    assert store.get(digest) == archive
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in path.parent.iterdir()) == [f"{digest}.zip"]


def test_store_failed_put_leaves_nothing_behind(store):
    digest, _ = build()
    with pytest.raises(TypeError):
        store.put(digest, "not bytes")  # the write fails after the temporary file was made
    assert not store.path(digest).is_file()
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_store_get_missing_digest(store):
    with pytest.raises(ArtifactError, match="missing"):
        store.get("ab" * 32)


@pytest.mark.parametrize("digest", [
    "../../etc/passwd",
    "..",
    "",
    "A" * 64,
    "g" * 64,
    "a" * 63,
    "a" * 65,
    "a" * 64 + "\n",
    "../" + "a" * 61,
    "/" + "a" * 63,
])
def test_store_refuses_non_digests(store, digest):
    with pytest.raises(ArtifactError, match="not a sha256 digest"):
        store.path(digest)
    with pytest.raises(ArtifactError, match="not a sha256 digest"):
        store.put(digest, b"x")
    with pytest.raises(ArtifactError, match="not a sha256 digest"):
        store.get(digest)
    assert not store.root.exists() or [p for p in store.root.rglob("*")] == []


def test_store_in_settings_home(settings, store):
    assert store.root == settings.artifact_dir
    assert str(store.root).startswith(str(settings.home))


# -- reading an experiment folder ---------------------------------------------------------

@pytest.mark.parametrize("name, ports, bundled", [
    ("expression-evaluator", ["input1"], False),
    ("feature-importance", ["input1"], False),
    ("hello-bundle", ["input1"], True),
    ("two-inputs", ["input1", "input2"], False),
])
def test_read_examples(settings, name, ports, bundled):
    exp = read_experiment(EXAMPLES / name, settings)
    assert exp.schema.ports == ports
    assert exp.score_py == (EXAMPLES / name / "score.py").read_bytes()
    assert exp.sample is not None
    assert (exp.bundle is not None) == bundled
    assert exp.warnings == []
    members = exp.members()
    assert set(members) >= {"score.py", "schema.json", "sample.json"}
    digest, archive = artifact.build(name, members, ENV, PUBLISHED)
    assert artifact.load(archive, digest).members == members


def test_examples_schema_details(settings):
    ev = read_experiment(EXAMPLES / "expression-evaluator", settings)
    assert ev.schema.isolation == "per-call"
    assert ev.schema.limits.timeout_s == 10
    hello = read_experiment(EXAMPLES / "hello-bundle", settings)
    with zipfile.ZipFile(io.BytesIO(hello.bundle)) as z:
        assert sorted(z.namelist()) == ["Hello.py", "greetings.txt"]


def test_same_folder_twice_gives_same_digest(settings, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(EXAMPLES / "hello-bundle", copy)
    for path in copy.rglob("*"):
        os.utime(path, (2_000_000_000, 2_000_000_000))
    a = read_experiment(EXAMPLES / "hello-bundle", settings).members()
    b = read_experiment(copy, settings).members()
    assert a == b
    assert artifact.build("hello", a, ENV, PUBLISHED)[0] == artifact.build("hello", b, {}, {"version": 2})[0]


def experiment(tmp_path, score=SCORE, schema=SCHEMA, sample=None, requirements=None) -> Path:
    folder = tmp_path / "exp"
    folder.mkdir()
    if score is not None:
        (folder / "score.py").write_bytes(score)
    if schema is not None:
        (folder / "schema.json").write_bytes(orjson.dumps(schema))
    if sample is not None:
        (folder / "sample.json").write_bytes(orjson.dumps(sample))
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
    return folder


def test_missing_score_py_refused(settings, tmp_path):
    folder = experiment(tmp_path, score=None)
    with pytest.raises(PublishError, match="has no score.py"):
        read_experiment(folder, settings)


def test_not_a_folder_refused(settings, tmp_path):
    with pytest.raises(PublishError, match="not a folder"):
        read_experiment(tmp_path / "nope", settings)


def test_bad_script_refused(settings, tmp_path):
    folder = experiment(tmp_path, score=b"def azureml_main():\n    return None\n")
    with pytest.raises(ScriptError, match="score.py:1: azureml_main accepts 0 positional"):
        read_experiment(folder, settings)


def test_bad_schema_refused(settings, tmp_path):
    folder = experiment(tmp_path, schema={"inputs": {"input1": {"colums": []}}})
    with pytest.raises(SchemaError, match=r"inputs\.input1\.colums"):
        read_experiment(folder, settings)


def test_invalid_json_refused(settings, tmp_path):
    folder = experiment(tmp_path)
    (folder / "schema.json").write_text("{oops")
    with pytest.raises(PublishError, match="schema.json: not valid JSON"):
        read_experiment(folder, settings)


def test_no_schema_and_no_sample_refused(settings, tmp_path):
    folder = experiment(tmp_path, schema=None)
    with pytest.raises(SchemaError, match="neither schema.json nor sample.json"):
        read_experiment(folder, settings)


def test_schema_inferred_from_sample_with_a_warning(settings, tmp_path):
    folder = experiment(tmp_path, schema=None, sample={"input1": [{"age": 3, "name": "a"}, {"age": 4}]})
    exp = read_experiment(folder, settings)
    cols = {c.name: c for c in exp.schema.inputs["input1"].columns}
    assert cols["age"].type == "integer" and not cols["age"].nullable
    assert cols["name"].type == "string" and cols["name"].nullable
    assert len(exp.warnings) == 1
    assert "no schema.json" in exp.warnings[0] and "age (integer)" in exp.warnings[0]


def test_sample_as_a_bare_list_is_input1(settings, tmp_path):
    folder = experiment(tmp_path, sample=[{"age": 3}])
    assert read_experiment(folder, settings).sample == {"input1": [{"age": 3}]}


def test_bundle_zip_and_folder_both_present_refused(settings, tmp_path):
    folder = experiment(tmp_path)
    (folder / "bundle.zip").write_bytes(rezip({"a.py": b"1"}))
    (folder / "bundle").mkdir()
    (folder / "bundle" / "a.py").write_bytes(b"1")
    with pytest.raises(PublishError, match="both bundle.zip and bundle/"):
        read_experiment(folder, settings)


def test_bundle_zip_and_folder_give_the_same_member(settings, tmp_path):
    zipped = experiment(tmp_path)
    (zipped / "bundle.zip").write_bytes(rezip({"pkg/a.py": b"1", "b.txt": b"2"}))
    foldered = tmp_path / "exp2"
    shutil.copytree(zipped, foldered)
    (foldered / "bundle.zip").unlink()
    (foldered / "bundle" / "pkg").mkdir(parents=True)
    (foldered / "bundle" / "pkg" / "a.py").write_bytes(b"1")
    (foldered / "bundle" / "b.txt").write_bytes(b"2")
    assert read_experiment(zipped, settings).bundle == read_experiment(foldered, settings).bundle


def test_bad_bundle_refused(settings, tmp_path):
    folder = experiment(tmp_path)
    (folder / "bundle.zip").write_bytes(rezip({"../evil.py": b"1"}))
    with pytest.raises(BundleError, match="'..' component"):
        read_experiment(folder, settings)


def test_bundle_limits_come_from_settings(tmp_path):
    from publisher.settings import Settings

    tight = Settings.from_env({"SCOREPUB_HOME": str(tmp_path / "h"), "SCOREPUB_MAX_BUNDLE_FILES": "1"})
    folder = experiment(tmp_path)
    (folder / "bundle.zip").write_bytes(rezip({"a.py": b"1", "b.py": b"2"}))
    with pytest.raises(BundleError, match="at most 1"):
        read_experiment(folder, tight)


@pytest.mark.parametrize("sample, fragment", [
    ({"input1": [{"age": 1}, {"age": "x"}]}, "sample.json: input1[1].age"),
    ({"input1": [{"age": 1}, {"agee": 2}]}, "sample.json: input1[1].agee"),
    ({"input1": [{"age": 1}, {}]}, "sample.json: input1[1].age"),
    ({"input1": [{"age": None}]}, "sample.json: input1[0].age"),
    ({"input2": [{"age": 1}]}, "port(s) input2 not declared"),
    ({}, "has no rows for port input1"),
])
def test_sample_not_matching_schema_refused(settings, tmp_path, sample, fragment):
    folder = experiment(tmp_path, sample=sample)
    with pytest.raises(PublishError) as info:
        read_experiment(folder, settings)
    assert fragment in str(info.value)


@pytest.mark.parametrize("requirements", [
    "pandas>=1.0\n",
    "# pinned elsewhere\npandas>=1.0  # data frames\nnumpy\n\n",
    "PyYAML; python_version < '3'\n",  # a marker that does not apply here
    "packaging\n",
])
def test_requirements_satisfied_here_accepted(settings, tmp_path, requirements):
    exp = read_experiment(experiment(tmp_path, requirements=requirements), settings)
    assert exp.requirements == requirements.encode()
    assert exp.members()["requirements.txt"] == requirements.encode()


def test_requirement_not_installed_is_left_to_the_publish(settings, tmp_path):
    # resolving and installing is the publish's (tests/test_environments.py), not the checks'
    folder = experiment(tmp_path, requirements="pandas\nscorepub-test-no-such-package==1.0\n")
    assert read_experiment(folder, settings).requirements.endswith(b"==1.0\n")


@pytest.mark.parametrize("line, fragment", [
    ("-e .", "options such as '-e' are not taken"),
    ("--index-url https://example.org/simple", "options such as '--index-url'"),
    ("tabulate @ https://example.org/tabulate-0.9.0-py3-none-any.whl", "a direct URL"),
])
def test_requirement_options_and_urls_refused(settings, tmp_path, line, fragment):
    folder = experiment(tmp_path, requirements=f"pandas\n{line}\n")
    with pytest.raises(PublishError, match="requirements.txt:2") as info:
        read_experiment(folder, settings)
    assert fragment in str(info.value) and info.value.field == "requirements.txt"


def test_requirement_unparseable_refused(settings, tmp_path):
    folder = experiment(tmp_path, requirements="pandas\n!!!\n")
    with pytest.raises(PublishError, match="requirements.txt:2"):
        read_experiment(folder, settings)


def test_limits_above_server_maxima_warn(settings, tmp_path):
    schema = {**SCHEMA, "limits": {"timeout_s": settings.max_timeout_s + 1}}
    exp = read_experiment(experiment(tmp_path, schema=schema), settings)
    assert any(w.startswith(f"limits.timeout_s {settings.max_timeout_s + 1} is above") for w in exp.warnings)
