"""Untrusted zips: every attack is refused with a message naming the member, and nothing lands outside."""
from __future__ import annotations

import io
import stat
import struct
import zipfile

import numpy as np
import pytest
from PIL import Image

from data.medmnist_source import DatasetError
from data.zipsafe import UnsafeZipError, extract_zip


def png_bytes(seed: int = 0, size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def make_zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def files_under(path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}


def test_good_zip_extracts_images_and_names_skipped_non_images(tmp_path):
    data = make_zip({"set/a/1.png": png_bytes(1), "set/b/2.png": png_bytes(2), "set/readme.txt": b"hello",
                     "__MACOSX/set/a/._1.png": b"fork", "set/.DS_Store": b"x"})
    report = extract_zip(data, tmp_path / "out")
    assert files_under(tmp_path / "out") == {"set/a/1.png", "set/b/2.png"}
    assert sorted(report.extracted) == ["set/a/1.png", "set/b/2.png"]
    assert any("set/readme.txt" in s and "not an image" in s for s in report.skipped)
    assert any("__MACOSX" in s for s in report.skipped) and any(".DS_Store" in s for s in report.skipped)


@pytest.mark.parametrize("name, why", [("../evil.png", "outside"), ("a/../../evil.png", "outside"),
                                       ("/tmp/evil.png", "absolute"), ("C:/evil.png", "absolute")])
def test_zip_slip_and_absolute_paths_are_refused_and_nothing_is_written(tmp_path, name, why):
    data = make_zip({"a/ok.png": png_bytes(), name: png_bytes(1)})
    target = tmp_path / "deep" / "out"
    with pytest.raises(UnsafeZipError, match=why) as err:
        extract_zip(data, target)
    assert name in str(err.value)
    assert not target.exists() and files_under(tmp_path) == set()


def test_symlink_member_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a/ok.png", png_bytes())
        link = zipfile.ZipInfo("a/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(link, "/etc/passwd")
    with pytest.raises(UnsafeZipError, match="symbolic link") as err:
        extract_zip(buf.getvalue(), tmp_path / "out")
    assert "a/link.png" in str(err.value) and not (tmp_path / "out").exists()


def test_too_many_files_is_refused(tmp_path):
    data = make_zip({f"a/{i}.png": png_bytes(i, 4) for i in range(6)})
    with pytest.raises(UnsafeZipError, match="more than 5 image files"):
        extract_zip(data, tmp_path / "out", max_files=5)
    assert not (tmp_path / "out").exists()
    assert len(extract_zip(data, tmp_path / "ok", max_files=6).extracted) == 6


def test_too_many_bytes_is_refused(tmp_path):
    data = make_zip({f"a/{i}.png": png_bytes(i, 64) for i in range(4)})
    with pytest.raises(UnsafeZipError, match="more than 10000 uncompressed bytes"):
        extract_zip(data, tmp_path / "out", max_bytes=10_000)
    assert not (tmp_path / "out").exists()


def test_zip_bomb_by_compression_ratio_is_refused(tmp_path):
    data = make_zip({"a/ok.png": png_bytes(), "a/bomb.bmp": b"\0" * (20 * 1024**2)})
    assert len(data) < 100_000  # 20 MB of zeros squeezed into a few kilobytes
    with pytest.raises(UnsafeZipError, match="zip bomb") as err:
        extract_zip(data, tmp_path / "out")
    assert "a/bomb.bmp" in str(err.value) and not (tmp_path / "out").exists()


def test_member_larger_than_it_declares_is_refused_and_partial_output_removed(tmp_path):
    payload = png_bytes(5, 64)
    data = bytearray(make_zip({"a/first.png": png_bytes(), "a/liar.png": payload}, zipfile.ZIP_STORED))
    # Shrink the declared size in the central directory (offset 24 of the entry) to 100 bytes.
    entry = data.rindex(b"PK\x01\x02")
    assert struct.unpack_from("<I", data, entry + 24)[0] == len(payload)
    struct.pack_into("<I", data, entry + 24, 100)
    with pytest.raises(UnsafeZipError) as err:
        extract_zip(bytes(data), tmp_path / "out")
    assert "a/liar.png" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_not_a_zip_gets_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="not a readable zip"):
        extract_zip(b"this is not a zip", tmp_path / "out")
    path = tmp_path / "fake.zip"
    path.write_bytes(b"PK garbage")
    with pytest.raises(DatasetError, match="fake.zip"):
        extract_zip(path, tmp_path / "out")
