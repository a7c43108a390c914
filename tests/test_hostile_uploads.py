"""Hostile and careless uploads: zips, npz sets and images are refused before the work, with the limit or
the member named, and every export the lab writes imports back."""
from __future__ import annotations

import io
import os
import struct
import time
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from data import folder, uploads
from data.datasets import DatasetSpec
from data.imageset import ImageSet
from data.medmnist_source import DatasetError
from data.synthetic import MAX_SET_IMAGES, load_set, read_meta, save_set, to_folder_zip
from data.zipsafe import UnsafeZipError, extract_zip

DERMA_CLASSES = ["actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
                 "benign keratosis-like lesions", "dermatofibroma", "melanoma", "melanocytic nevi", "vascular lesions"]
SPEC = DatasetSpec(name="dermamnist", size=8)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "cache"


def png_bytes(seed: int = 0, size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width×height gray pixels but holds one byte of image data (decoding it fails)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def make_zip(members: dict[str, bytes] | list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names some tests write on purpose
        for name, data in (members.items() if isinstance(members, dict) else members):
            z.writestr(name, data)
    return buf.getvalue()


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npz_declaring(shape: tuple, dtype=np.uint8, labels: int = 4) -> bytes:
    """An npz whose 'images' member is only a header declaring `shape` (no data behind it)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": shape})
    labels_npy = io.BytesIO()
    np.save(labels_npy, np.zeros(labels, dtype=np.int64))
    return make_zip({"images.npy": header.getvalue(), "labels.npy": labels_npy.getvalue()})


def register(data: bytes, filename: str, classes: int = 2):
    return uploads.register_upload(data, filename, SPEC, DERMA_CLASSES[:classes], 1)


# --- zips ------------------------------------------------------------------------------------------

def test_members_of_exactly_one_mebibyte_are_checked_for_their_compression_ratio(tmp_path):
    data = make_zip({"set/a/1.png": png_bytes(1), "set/b/blank.bmp": bytes(1024 ** 2)})
    with pytest.raises(UnsafeZipError, match=r"member 'set/b/blank.bmp' inflates \d+×"):
        extract_zip(data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_many_small_well_compressed_members_are_refused_as_a_whole(tmp_path):
    data = make_zip({f"set/{c}/{i}.bmp": bytes(60 * 1024) for c in "ab" for i in range(20)})
    with pytest.raises(UnsafeZipError, match=r"inflate \d+× as a whole \(.*the limit is 100×\)"):
        extract_zip(data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_duplicate_member_names_are_refused_naming_the_member(tmp_path):
    data = make_zip([("set/a/1.png", png_bytes(1)), ("set/b/2.png", png_bytes(2)), ("set/a/1.png", png_bytes(3))])
    with pytest.raises(UnsafeZipError, match="member 'set/a/1.png' appears twice"):
        extract_zip(data, tmp_path / "out")


def test_a_member_that_is_both_a_file_and_a_folder_is_refused(tmp_path):
    data = make_zip({"set/a/x.png": png_bytes(1), "set/a/x.png/y.png": png_bytes(2), "set/b/2.png": png_bytes(3)})
    with pytest.raises(UnsafeZipError, match="'set/a/x.png' is both a file and a folder"):
        extract_zip(data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_300_character_name_is_refused_naming_the_member(tmp_path):
    name = "set/a/" + "x" * 300 + ".png"
    with pytest.raises(UnsafeZipError, match="member 'set/a/xxxx.*' has a name longer than 255 bytes"):
        extract_zip(make_zip({name: png_bytes(1), "set/b/2.png": png_bytes(2)}), tmp_path / "out")


def test_two_thousand_deep_nesting_is_refused_naming_the_limit(tmp_path):
    name = "/".join(["d"] * 2000) + "/x.png"
    with pytest.raises(UnsafeZipError, match="member 'd/d/d.*' is nested 2000 folders deep; the limit is 32"):
        extract_zip(make_zip({name: png_bytes(1)}), tmp_path / "out")


@pytest.mark.parametrize("members", [{"set/c/": b""}, {"set/c/readme.txt": b"notes"}])
def test_an_empty_class_folder_in_a_zip_is_refused_like_on_disk(tmp_path, members):
    data = make_zip({"set/a/1.png": png_bytes(1), "set/b/2.png": png_bytes(2), **members})
    with pytest.raises(UnsafeZipError, match="folder 'set/c/' holds no images"):
        uploads.extract_dataset_zip(data)
    hidden = make_zip({"set/a/1.png": png_bytes(1), "set/b/2.png": png_bytes(2), "__MACOSX/set/._a": b"x"})
    assert sorted(extract_zip(hidden, tmp_path / "ok").extracted) == ["set/a/1.png", "set/b/2.png"]


def test_the_upload_cache_is_bounded_and_cleaned_oldest_unused_first(cache):
    zips = [make_zip({f"{c}/{i}.png": png_bytes(100 * k + 10 * ord(c) + i, 16) for c in "ab" for i in range(3)})
            for k in range(3)]
    first = uploads.extract_dataset_zip(zips[0])
    one_upload = sum(p.stat().st_size for p in first.rglob("*") if p.is_file())
    limit = int(2.5 * one_upload)
    second = uploads.extract_dataset_zip(zips[1], cache_limit=limit)
    now = time.time()
    os.utime(first.with_name(f"{first.name}.json"), (now - 200, now - 200))
    os.utime(second.with_name(f"{second.name}.json"), (now - 100, now - 100))
    assert uploads.extract_dataset_zip(zips[0], cache_limit=limit) == first  # used again: now the newest
    third = uploads.extract_dataset_zip(zips[2], cache_limit=limit)
    assert first.exists() and third.exists() and not second.exists()
    assert not second.with_name(f"{second.name}.json").exists()
    assert uploads.extract_dataset_zip(zips[1], cache_limit=limit) == second and second.exists()  # re-extracted


# --- images ------------------------------------------------------------------------------------------

def test_an_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(8000, 8000))  # 64 megapixels, under Pillow's own limit
    start = time.perf_counter()
    with pytest.raises(DatasetError, match=r"^8000×8000 pixels; the limit is 40 megapixels per image"):
        folder.decode(path, 28)
    assert time.perf_counter() - start < 1


def test_sixteen_bit_images_are_stretched_without_float64_copies(tmp_path):
    ramp = np.linspace(1000, 3000, 1500 * 1500).reshape(1500, 1500).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "scan.png")
    tracemalloc.start()
    try:
        pixels = folder.decode(tmp_path / "scan.png", 32)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * ramp.size  # a float64 copy alone would be 8 bytes per pixel
    assert pixels.shape == (32, 32, 1)
    assert pixels[0, 0, 0] < 10 and pixels[-1, -1, 0] > 245  # stretched over its own range


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's warning, before ours refuses
@pytest.mark.parametrize("side, size", [(12000, "12000×12000 pixels"), (15000, "over 178 megapixels")])
def test_a_decompression_bomb_in_a_quality_page_zip_is_refused_naming_the_member(side, size):
    data = make_zip({"0/1.png": png_bytes(1), "1/bomb.png": png_header_only(side, side)})
    with pytest.raises(DatasetError, match=f"bomb.zip: 1/bomb.png: {size}; the limit is 40 megapixels per image"):
        register(data, "bomb.zip")


# --- npz sets ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, limit", [((500_000, 28, 28, 3), f"the limit is {MAX_SET_IMAGES} images"),
                                          ((190_000, 512, 512, 3), "the limit is 1 GiB")])
def test_an_npz_declaring_too_many_images_or_bytes_is_refused_from_its_header(tmp_path, shape, limit):
    path = tmp_path / "big.npz"
    path.write_bytes(npz_declaring(shape))
    start = time.perf_counter()
    with pytest.raises(DatasetError, match=f"big.npz: 'images' declares .*; {limit}"):
        load_set(path)
    assert time.perf_counter() - start < 1


def test_an_npz_declaring_more_data_than_it_holds_is_refused(tmp_path):
    path = tmp_path / "short.npz"
    path.write_bytes(npz_declaring((4, 8, 8, 1)))
    with pytest.raises(DatasetError, match="short.npz: 'images' declares 256 bytes of data but holds 0"):
        load_set(path)


@pytest.mark.parametrize("images, expected, note", [
    (np.array([0.0, 0.5, 1.0]), [0, 128, 255], "float images in [0, 1] scaled to 0-255"),
    (np.array([-1.0, 0.0, 1.0]), [0, 128, 255], "float images in [-1, 1] mapped to 0-255"),
])
def test_float_images_in_unit_ranges_are_converted_and_the_upload_says_so(images, expected, note):
    pixels = np.resize(images, (4, 8, 8, 1)).astype(np.float32)
    path = register(npz_bytes(images=pixels, labels=np.array([0, 1, 0, 1])), "floats.npz")
    back = load_set(path)
    assert np.unique(back.images).tolist() == expected
    assert read_meta(path)["converted"] == [note]


@pytest.mark.parametrize("images, reason", [
    (np.full((4, 8, 8, 1), np.nan, dtype=np.float32), "NaN or infinite"),
    (np.ones((4, 8, 8, 1), dtype=bool), "boolean"),
    (np.ones((4, 8, 8, 1), dtype=np.complex64), "complex"),
    (np.full((4, 8, 8, 1), "a"), "text"),
    (np.full((4, 8, 8, 1), 2.5, dtype=np.float32), r"in \[0, 1\] or \[-1, 1\]"),
    (np.full((4, 8, 8, 1), 300, dtype=np.int16), "0-255"),
    (np.zeros((0, 8, 8, 1), dtype=np.uint8), "holds no images"),
    (np.zeros((4, 8, 8, 2), dtype=np.uint8), "1 or 3 channels"),
])
def test_images_that_are_not_pictures_are_refused_with_the_reason(images, reason):
    labels = np.zeros(len(images), dtype=np.int64)
    with pytest.raises(DatasetError, match=f"odd.npz: .*{reason}"):
        register(npz_bytes(images=images, labels=labels), "odd.npz")


@pytest.mark.parametrize("labels, reason", [
    (np.array([0, 0.5, 1, 1]), "fractional"),
    (np.zeros((4, 2), dtype=np.int64), r"one label per image.*\(4, 2\)"),
    (np.array([0, -1, 1, 1]), "negative"),
    (np.array([0, 1, 1]), "4 images but 3 labels"),
    (np.array([True, False, True, False]), "whole numbers"),
])
def test_labels_that_are_not_class_indices_are_refused_with_the_reason(labels, reason):
    with pytest.raises(DatasetError, match=f"odd.npz: .*{reason}"):
        register(npz_bytes(images=np.zeros((4, 8, 8, 1), np.uint8), labels=labels), "odd.npz")


def test_npy_files_get_a_clear_refusal():
    npy = io.BytesIO()
    np.save(npy, np.zeros((4, 8, 8, 1), np.uint8))
    with pytest.raises(DatasetError, match="images.npy: a .npy file holds one array"):
        register(npy.getvalue(), "images.npy")
    with pytest.raises(DatasetError, match="renamed.npz: a single .npy array, not an .npz"):
        register(npy.getvalue(), "renamed.npz")


def test_medmnist_style_column_labels_are_accepted():
    path = register(npz_bytes(images=np.zeros((4, 8, 8), np.uint8), labels=np.array([[0], [1], [1], [0]])), "m.npz")
    assert load_set(path).labels.tolist() == [0, 1, 1, 0]


# --- every export imports back ----------------------------------------------------------------------

def exported_set(classes: list[str]) -> ImageSet:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(classes)), 2)
    return ImageSet(rng.integers(0, 255, (len(labels), 8, 8, 1), dtype=np.uint8), labels, classes, "synthetic")


@pytest.mark.parametrize("classes", [DERMA_CLASSES, ["a b", "a_b", "a/b"], ["x" * 60 + "1", "x" * 60 + "2"]])
def test_an_image_folder_zip_export_uploads_back_with_the_same_images_and_labels(classes):
    original = exported_set(classes)
    path = uploads.register_upload(to_folder_zip(original), "export.zip", SPEC, classes, 1)
    back = load_set(path)
    order = np.lexsort((back.images.reshape(len(back), -1).sum(1), back.labels))
    expected = np.lexsort((original.images.reshape(len(original), -1).sum(1), original.labels))
    assert back.labels[order].tolist() == original.labels[expected].tolist()
    assert np.array_equal(back.images[order], original.images[expected])


def test_an_npz_export_uploads_back_with_the_same_images_and_labels(tmp_path):
    original = exported_set(DERMA_CLASSES)
    exported = save_set(original, tmp_path, "export")
    back = load_set(uploads.register_upload(exported.read_bytes(), "export.npz", SPEC, DERMA_CLASSES, 1))
    assert np.array_equal(back.images, original.images) and back.labels.tolist() == original.labels.tolist()


# --- fuzz: the npz reader raises nothing but the lab's own error -----------------------------------------

DTYPES = [np.uint8, np.int16, np.int64, np.uint16, np.float16, np.float32, np.float64, np.bool_, np.complex64]
ARRAYS = st.one_of(
    st.sampled_from(DTYPES).flatmap(lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=5,
                                                                                      min_side=0, max_side=5))),
    hnp.arrays(hnp.unicode_string_dtypes(max_len=3), hnp.array_shapes(max_dims=2, max_side=3)),
)


@st.composite
def npz_uploads(draw) -> bytes:
    arrays = {key: draw(ARRAYS) for key in draw(st.sets(st.sampled_from(["images", "labels", "class_names", "x"])))}
    data = bytearray(npz_bytes(**arrays))
    for _ in range(draw(st.integers(0, 3))):  # a few flipped bytes: torn or tampered files
        data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=npz_uploads())
def test_fuzzed_npz_uploads_are_loaded_or_refused_with_the_labs_error_only(data):
    try:
        path = register(data, "fuzz.npz", classes=7)
    except DatasetError as e:
        assert str(e).startswith("fuzz.npz: ")
    else:
        images = load_set(path)
        assert images.images.dtype == np.uint8 and images.labels.max(initial=0) < 7
