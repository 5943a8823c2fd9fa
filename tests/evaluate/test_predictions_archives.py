"""Zip archives read in place within caps, and symbolic links in folders (issue 28, point 3)."""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from medseg_eval import _parallel, archives, evaluate
from medseg_eval.predictions import MissingCasesError, PredictionFormatError, read_predictions

MASK = np.zeros((24, 24), np.uint8)
MASK[3:20, 4:8] = 1


def _png(array=MASK):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _zip(path, members, method=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in members.items():
            if isinstance(data, zipfile.ZipInfo):
                z.writestr(data, b"../outside/a.png")
            else:
                z.writestr(name, data)
    return path


def _score(preds, ids=("a",)):
    res = evaluate(preds, targets=dict.fromkeys(ids, MASK), num_classes=2, metrics=["dice"], progress=False)
    return res.per_case["value"].to_list()


def _patch_member(path, offset_in_header, value):
    """Set a byte of the first member's local and central headers (flags: 6/8, method: 8/10)."""
    data = bytearray(path.read_bytes())
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + offset_in_header] = value(data[local + offset_in_header])
    data[central + offset_in_header + 2] = value(data[central + offset_in_header + 2])
    path.write_bytes(bytes(data))
    return path


def test_members_are_read_in_place_and_only_those_that_can_be_predictions(tmp_path, monkeypatch):
    path = _zip(tmp_path / "preds.zip", {"run/a.png": _png(), "run/big.bin": bytes(1 << 20), "run/notes.txt": b"x",
                                          "__MACOSX/run/._a.png": b"junk",
                                          "run/.ipynb_checkpoints/a.png": _png(MASK.T)})
    opened = []
    real_open = zipfile.ZipFile.open

    def spy(self, member, *args, **kwargs):
        opened.append(getattr(member, "filename", member))
        return real_open(self, member, *args, **kwargs)

    def refuse(*args, **kwargs):
        raise AssertionError("extracted")

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    monkeypatch.setattr(zipfile.ZipFile, "extractall", refuse)
    monkeypatch.setattr(zipfile.ZipFile, "extract", refuse)
    assert _score(path) == [1.0]
    assert set(opened) == {"run/a.png"}


def test_a_large_member_that_is_no_prediction_is_ignored_not_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "MAX_MEMBER_BYTES", 10_000)
    path = _zip(tmp_path / "preds.zip", {"a.png": _png(), "weights.bin": bytes(1 << 20), "b": bytes(1 << 20)})
    assert _score(path) == [1.0]


def test_caps_on_member_size_total_size_and_ratio_are_clear_errors(tmp_path, monkeypatch):
    zeros = _npy(np.zeros((200, 200), np.uint8))  # 40128 bytes
    monkeypatch.setattr(archives, "MAX_MEMBER_BYTES", 40_000)
    with pytest.raises(PredictionFormatError, match=r"preds\.zip:a\.npy: 40128 bytes uncompressed, more than the 40000 "
                                                    r"read per member \(medseg_eval\.archives\.MAX_MEMBER_BYTES\)"):
        _score(_zip(tmp_path / "preds.zip", {"a.npy": zeros}))
    monkeypatch.setattr(archives, "MAX_MEMBER_BYTES", 1 << 30)
    monkeypatch.setattr(archives, "MAX_TOTAL_BYTES", 80_000)
    with pytest.raises(PredictionFormatError, match=r"predictions: the members of .*both\.zip that can be predictions "
                                                    r"hold more than 80000 bytes uncompressed"):
        _score(_zip(tmp_path / "both.zip", {"a.npy": zeros, "b.npy": zeros}), ("a", "b"))
    big = _npy(np.zeros((2000, 2000), np.uint8))  # 4000128 bytes, above RATIO_FLOOR
    path = _zip(tmp_path / "bomb.zip", {"a.npy": big}, zipfile.ZIP_BZIP2)
    packed = zipfile.ZipFile(path).getinfo("a.npy").compress_size
    assert 4000128 > 2000 * packed  # bzip2 packs zeros beyond any ratio Deflate reaches
    with pytest.raises(PredictionFormatError, match=rf"bomb\.zip:a\.npy: 4000128 bytes compressed into {packed}, a "
                                                    r"ratio above 2000 \(medseg_eval\.archives\.MAX_RATIO\)"):
        _score(path)


def test_an_encrypted_member_is_a_clear_error_naming_it(tmp_path):
    path = _patch_member(_zip(tmp_path / "preds.zip", {"p/a.png": _png()}), 6, lambda b: b | 1)
    with pytest.raises(PredictionFormatError, match=r"preds\.zip:p/a\.png: encrypted \(the zip has a password\)"):
        _score(path)


def test_a_deflate64_member_is_a_clear_error_naming_it_and_the_method(tmp_path):
    path = _patch_member(_zip(tmp_path / "preds.zip", {"p/a.png": _png()}), 8, lambda b: 9)
    with pytest.raises(PredictionFormatError, match=r"preds\.zip:p/a\.png: compressed with deflate64 \(method 9\), "
                                                    r"which Python's zipfile cannot read; zip the files again"):
        _score(path)


def test_a_symbolic_link_member_is_refused_not_followed(tmp_path):
    link = zipfile.ZipInfo("p/a.png")
    link.create_system, link.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
    with pytest.raises(PredictionFormatError, match=r"preds\.zip:p/a\.png: a symbolic link; links in archives are "
                                                    "refused"):
        _score(_zip(tmp_path / "preds.zip", {"p/a.png": link}))


def test_a_bomb_or_a_damaged_member_is_named_as_archive_and_member_not_a_temporary_path(tmp_path):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b""))
    with pytest.raises(PredictionFormatError, match=r"preds\.zip:p/a\.png: .*1600000000 pixels") as err:
        _score(_zip(tmp_path / "preds.zip", {"p/a.png": bomb}))
    assert "medseg-eval-preds" not in str(err.value) and str(tmp_path / "preds.zip") in str(err.value)
    path = _zip(tmp_path / "damaged.zip", {"p/a.png": _png()}, zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    data[data.find(b"IEND") - 6] ^= 0xFF  # inside the image data: the CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(PredictionFormatError, match=r"cannot read prediction .*damaged\.zip:p/a\.png"):
        _score(path)


def test_names_leading_outside_the_archive_are_ignored_and_said(tmp_path):
    path = _zip(tmp_path / "preds.zip", {"../a.png": _png()})
    with pytest.raises(MissingCasesError, match=r"1 file\(s\) ignored as a name leading outside the archive's "
                                                r"folders: \.\./a\.png"):
        _score(path)


def test_an_npz_of_case_arrays_and_members_without_suffix_are_read(tmp_path):
    np.savez_compressed(tmp_path / "preds.npz", a=MASK, b=MASK.T)
    assert _score(tmp_path / "preds.npz", ("a", "b")) == [1.0, 2 * np.count_nonzero(MASK & MASK.T) / (2 * MASK.sum())]
    assert _score(_zip(tmp_path / "preds.zip", {"out/a": _png()})) == [1.0]


def test_members_read_in_threads_give_what_one_thread_gives(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    masks = {f"c{i:02d}": (rng.random((30, 40)) > 0.5).astype(np.uint8) for i in range(24)}
    path = _zip(tmp_path / "preds.zip", {f"{c}.png": _png(m) for c, m in masks.items()})
    threaded = read_predictions(path, sorted(masks), num_classes=2)
    monkeypatch.setattr(_parallel, "MAX_WORKERS", 1)
    alone = read_predictions(path, sorted(masks), num_classes=2)
    assert threaded.sha256 == alone.sha256 and all(np.array_equal(threaded.masks[c], m) for c, m in masks.items())


# ----------------------------------------------------------------------------- symbolic links in a folder

def test_a_link_inside_the_folder_is_followed(tmp_path):
    folder = tmp_path / "preds"
    (folder / "store").mkdir(parents=True)
    (folder / "store" / "a.bin").write_bytes(_png())
    os.symlink(folder / "store" / "a.bin", folder / "a.png")
    assert _score(folder) == [1.0]


@pytest.mark.parametrize("target, says", [("outside/a.png", "outside the predictions folder"),
                                          ("preds/gone.png", "which does not exist")])
def test_a_link_leading_outside_or_nowhere_is_refused(tmp_path, target, says):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "a.png").write_bytes(_png())
    (tmp_path / "preds").mkdir()
    os.symlink(tmp_path / target, tmp_path / "preds" / "a.png")
    with pytest.raises(PredictionFormatError, match=rf"preds/a\.png is a symbolic link to .*{target}, {says}"):
        _score(tmp_path / "preds")


def test_a_link_to_a_folder_is_not_followed_and_is_said(tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "a.png").write_bytes(_png())
    (tmp_path / "preds").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "preds" / "more")
    with pytest.raises(MissingCasesError, match=r"ignored as a link to a folder \(not followed\): more"):
        _score(tmp_path / "preds")
