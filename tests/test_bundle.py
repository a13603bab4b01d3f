"""The Script Bundle zip: refusals, reproducible normalization, unpacking (contract.md, "The script bundle")."""
from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from publisher.bundle import FIXED_TIME, normalize_zip, zip_folder
from publisher.errors import BundleError
from scorepub_sandbox.bundle import unpack

BIG = 10 * 1024 * 1024
FILES = {
    "Hello.py": b"def print_hello(name):\n    return f'Hello, {name}'\n",
    "greetings.txt": b"hello\nbonjour\n",
    "pkg/__init__.py": b"",
    "pkg/sub/mod.py": b"VALUE = 42\n",
    "pkg/data/table.csv": b"a,b\n1,2\n" * 100,
}


def make_zip(entries, compression=zipfile.ZIP_DEFLATED, date_time=(2020, 5, 17, 10, 30, 0), mode=0o644) -> bytes:
    """entries: a dict name -> bytes, or a list of (name or ZipInfo, bytes)."""
    out = io.BytesIO()
    items = entries.items() if isinstance(entries, dict) else entries
    with zipfile.ZipFile(out, "w", compression) as z:
        for name, data in items:
            if isinstance(name, zipfile.ZipInfo):
                info = name
            else:
                info = zipfile.ZipInfo(name, date_time)
                info.external_attr = (stat.S_IFREG | mode) << 16
                info.compress_type = compression
            z.writestr(info, data)
    return out.getvalue()


def normalize(data: bytes, max_bytes: int = BIG, max_files: int = 100) -> bytes:
    return normalize_zip(data, max_bytes, max_files)


def refused(data: bytes, max_bytes: int = BIG, max_files: int = 100) -> str:
    with pytest.raises(BundleError) as info:
        normalize_zip(data, max_bytes, max_files)
    return str(info.value)


def read_all(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


# -- accepted -----------------------------------------------------------------------------

def test_plain_bundle_is_normalized():
    out = normalize(make_zip(FILES))
    assert read_all(out) == FILES
    with zipfile.ZipFile(io.BytesIO(out)) as z:
        infos = z.infolist()
        assert [i.filename for i in infos] == sorted(FILES)
        assert all(i.date_time == FIXED_TIME for i in infos)
        assert all(i.external_attr >> 16 == stat.S_IFREG | 0o644 for i in infos)
        assert z.testzip() is None


def test_zip_made_by_zipfile_writestr_is_accepted():
    # zipfile.writestr(name, data) stores permissions without a file type (0o600); many tools do the same
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("Hello.py", FILES["Hello.py"])
        z.writestr("pkg/", b"")  # a directory entry
        z.writestr("pkg/__init__.py", b"")
    assert read_all(normalize(out.getvalue())) == {"Hello.py": FILES["Hello.py"], "pkg/__init__.py": b""}


def test_directory_entries_and_dot_components_dropped():
    data = make_zip([("./a.py", b"1"), ("dir/", b""), ("dir/./b.py", b"2")])
    assert read_all(normalize(data)) == {"a.py": b"1", "dir/b.py": b"2"}


def test_backslash_names_become_folders():
    assert read_all(normalize(make_zip({"pkg\\mod.py": b"x"}))) == {"pkg/mod.py": b"x"}


def test_empty_zip_is_accepted():
    assert read_all(normalize(make_zip({}))) == {}


# -- refused ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../x", "a/../../x", "pkg/../x.py", "..\\evil.py", "a/.."])
def test_dotdot_component_refused(name):
    message = refused(make_zip({"ok.py": b"1", name: b"x"}))
    assert f"'{name}'" in message and "'..' component" in message


@pytest.mark.parametrize("name", ["/etc/x", "C:\\x", "C:/x", "\\\\server\\share\\x", "/"])
def test_absolute_path_refused(name):
    message = refused(make_zip({"ok.py": b"1", name: b"x"}))
    assert f"'{name}'" in message and "absolute path" in message


def test_symlink_refused():
    link = zipfile.ZipInfo("link.py", FIXED_TIME)
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    message = refused(make_zip([("ok.py", b"1"), (link, b"/etc/passwd")]))
    assert message == "bundle: entry 'link.py' is a symbolic link"


def test_special_file_refused():
    fifo = zipfile.ZipInfo("fifo", FIXED_TIME)
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    assert "'fifo' is not a regular file" in refused(make_zip([(fifo, b"")]))


def _set_encrypted_flag(data: bytes, name: str) -> bytes:
    """Set general-purpose bit 0 (encrypted) on ``name`` in both headers.

    zipfile writes its own flag bits, so the flag is patched into the bytes afterwards.
    """
    raw = bytearray(data)
    encoded = name.encode()
    for signature, flag_at, name_len_at, name_at in ((b"PK\x03\x04", 6, 26, 30), (b"PK\x01\x02", 8, 28, 46)):
        pos = raw.find(signature)
        while pos != -1:
            (n,) = struct.unpack_from("<H", raw, pos + name_len_at)
            if raw[pos + name_at:pos + name_at + n] == encoded:
                (flags,) = struct.unpack_from("<H", raw, pos + flag_at)
                struct.pack_into("<H", raw, pos + flag_at, flags | 0x1)
                break
            pos = raw.find(signature, pos + 4)
        else:
            raise AssertionError(f"no {signature!r} header for {name}")
    return bytes(raw)


def test_encrypted_member_refused():
    data = _set_encrypted_flag(make_zip({"ok.py": b"1", "secret.py": b"x = 1\n"}), "secret.py")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.getinfo("secret.py").flag_bits & 0x1  # the test zip really is marked encrypted
    assert refused(data) == "bundle: entry 'secret.py' is encrypted"


def test_too_many_files_refused():
    data = make_zip({f"m{i}.py": b"" for i in range(6)})
    assert refused(data, max_files=5) == "bundle: 6 files; at most 5 are allowed"
    assert len(read_all(normalize(data, max_files=6))) == 6


def test_directories_do_not_count_as_files():
    data = make_zip([("a/", b""), ("b/", b""), ("a/x.py", b"1")])
    assert read_all(normalize(data, max_files=1)) == {"a/x.py": b"1"}


def test_too_many_bytes_refused():
    data = make_zip({"a.bin": b"\0" * 600, "b.bin": b"\0" * 600})
    assert refused(data, max_bytes=1000) == "bundle: unpacks to more than 1000 bytes"
    assert len(normalize(data, max_bytes=1200)) > 0


def test_zip_bomb_is_stopped_by_decompressed_size():
    # highly compressible: small on disk, large unpacked
    data = make_zip({"bomb.txt": b"\0" * 5_000_000})
    assert len(data) < 20_000
    assert "unpacks to more than 1000000 bytes" in refused(data, max_bytes=1_000_000)


@pytest.mark.parametrize("data", [b"", b"not a zip at all", b"PK\x03\x04garbage", os.urandom(512)])
def test_not_a_zip_refused(data):
    assert refused(data) == "bundle: not a zip file"


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_damaged_member_refused(compression):
    payload = bytes(range(256)) * 40
    data = bytearray(make_zip({"ok.py": b"1", "damaged.bin": payload}, compression=compression))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo("damaged.bin")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for offset in range(0, info.compress_size, max(1, info.compress_size // 8)):
        damaged = bytearray(data)
        damaged[start + offset] ^= 0xFF
        message = refused(bytes(damaged))
        assert message.startswith("bundle: entry 'damaged.bin' is damaged"), message


def test_duplicate_names_refused():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it is asked to write
        data = make_zip([("a.py", b"1"), ("a.py", b"2")])
    assert refused(data) == "bundle: entry 'a.py' appears twice"


def test_names_equal_after_normalization_are_duplicates():
    assert "appears twice" in refused(make_zip([("pkg/a.py", b"1"), ("pkg/./a.py", b"2")]))
    assert "appears twice" in refused(make_zip([("pkg/a.py", b"1"), ("pkg\\a.py", b"2")]))


def test_file_and_folder_of_the_same_name_refused():
    message = refused(make_zip([("pkg", b"a file"), ("pkg/mod.py", b"x")]))
    assert message == "bundle: entry 'pkg/mod.py' is inside 'pkg', which is a file"


# -- reproducible -------------------------------------------------------------------------

def test_normalization_is_reproducible():
    a = make_zip(FILES, date_time=(2001, 1, 1, 0, 0, 0), mode=0o600)
    b = make_zip(dict(reversed(list(FILES.items()))), date_time=(2024, 12, 31, 23, 59, 58), mode=0o755,
                 compression=zipfile.ZIP_STORED)
    c = make_zip([("dir/", b"")] + [("./" + k, v) for k, v in FILES.items()], compression=zipfile.ZIP_BZIP2)
    assert a != b
    na, nb, nc = normalize(a), normalize(b), normalize(c)
    assert na == nb == nc
    assert normalize(na) == na  # idempotent


def test_different_content_gives_different_bytes():
    assert normalize(make_zip(FILES)) != normalize(make_zip({**FILES, "Hello.py": b"changed\n"}))


def write_tree(root: Path, files: dict) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_zip_folder_equals_normalize_zip_of_the_same_files(tmp_path):
    folder = write_tree(tmp_path / "bundle", FILES)
    (folder / "emptydir").mkdir()
    from_folder = zip_folder(folder, BIG, 100)
    assert from_folder == normalize(make_zip(FILES))
    assert read_all(from_folder) == FILES


def test_zip_folder_is_reproducible_across_mtimes(tmp_path):
    one = write_tree(tmp_path / "one", FILES)
    two = write_tree(tmp_path / "two", dict(reversed(list(FILES.items()))))
    for i, path in enumerate(sorted(two.rglob("*"))):
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    os.chmod(two / "Hello.py", 0o755)
    assert zip_folder(one, BIG, 100) == zip_folder(two, BIG, 100)


def test_zip_folder_skips_bytecode(tmp_path):
    folder = write_tree(tmp_path / "bundle", {"a.py": b"1", "__pycache__/a.cpython-311.pyc": b"\0",
                                              "b.pyc": b"\0"})
    assert read_all(zip_folder(folder, BIG, 100)) == {"a.py": b"1"}


def test_zip_folder_refuses_symlinks(tmp_path):
    folder = write_tree(tmp_path / "bundle", {"a.py": b"1"})
    (folder / "link.py").symlink_to(folder / "a.py")
    with pytest.raises(BundleError, match="'link.py' is a symbolic link"):
        zip_folder(folder, BIG, 100)
    (folder / "link.py").unlink()
    (folder / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(BundleError, match="'linkdir' is a symbolic link"):
        zip_folder(folder, BIG, 100)


def test_zip_folder_limits(tmp_path):
    folder = write_tree(tmp_path / "bundle", {f"m{i}.py": b"x" * 100 for i in range(5)})
    with pytest.raises(BundleError, match="more than 4 files"):
        zip_folder(folder, BIG, 4)
    with pytest.raises(BundleError, match="more than 450 bytes"):
        zip_folder(folder, 450, 100)
    assert len(read_all(zip_folder(folder, 500, 5))) == 5


# -- unpack -------------------------------------------------------------------------------

def test_unpack_puts_files_where_expected(tmp_path):
    dest = tmp_path / "Script Bundle"
    unpack(normalize(make_zip(FILES)), dest)
    found = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert found == FILES
    assert (dest / "pkg" / "sub").is_dir()


def test_unpacked_bundle_is_importable(tmp_path):
    import subprocess
    import sys

    dest = tmp_path / "Script Bundle"
    unpack(normalize(make_zip(FILES)), dest)
    code = "import Hello, pkg.sub.mod; print(Hello.print_hello('Ada'), pkg.sub.mod.VALUE)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(dest)}, check=True).stdout
    assert out.strip() == "Hello, Ada 42"


def test_unpack_refuses_escaping_names(tmp_path):
    # defence in depth: unpack checks names again even though publish already did
    with pytest.raises(BundleError):
        unpack(make_zip({"../escape.py": b"x"}), tmp_path / "dest")
    assert not (tmp_path / "escape.py").exists()
