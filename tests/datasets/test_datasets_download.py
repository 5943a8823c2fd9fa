"""Downloads against a real HTTP server on 127.0.0.1: resume, checksum, errors."""

from __future__ import annotations

import hashlib
import os

import pytest

from medseg_eval.datasets import ChecksumError, DownloadError, download
from medseg_eval.datasets.download import extract
from medseg_eval.datasets.errors import SourceFormatError
from tests.support.http_server import serve


@pytest.fixture()
def payload(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    data = os.urandom(3 * 2**20 + 123)  # several read chunks
    (served / "archive.zip").write_bytes(data)
    return served, data, hashlib.sha256(data).hexdigest()


def test_download_verifies_sha256_and_names_the_file_only_when_complete(payload, tmp_path):
    served, data, digest = payload
    with serve(served) as server:
        path = download(f"{server.url}/archive.zip", tmp_path / "cache", sha256=digest, progress=False)
    assert path.name == "archive.zip" and path.read_bytes() == data
    assert not (tmp_path / "cache" / "archive.zip.part").exists()


def test_interrupted_download_resumes_with_a_range_request(payload, tmp_path):
    served, data, digest = payload
    cache = tmp_path / "cache"
    with serve(served) as server:
        server.interrupt.add("archive.zip")
        with pytest.raises(DownloadError, match="rerun to resume"):
            download(f"{server.url}/archive.zip", cache, sha256=digest, progress=False)
        part = cache / "archive.zip.part"
        assert 0 < part.stat().st_size < len(data) and not (cache / "archive.zip").exists()
        kept = part.stat().st_size
        path = download(f"{server.url}/archive.zip", cache, sha256=digest, progress=False)
        assert server.requests[-1] == ("archive.zip", f"bytes={kept}-")
    assert path.read_bytes() == data


def test_resume_restarts_when_the_server_ignores_ranges(payload, tmp_path):
    served, data, digest = payload
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "archive.zip.part").write_bytes(b"stale bytes from another file")
    with serve(served) as server:
        server.ignore_ranges = True
        path = download(f"{server.url}/archive.zip", cache, sha256=digest, progress=False)
    assert path.read_bytes() == data


def test_corrupted_archive_is_rejected_by_its_checksum_and_removed(payload, tmp_path):
    served, data, digest = payload
    corrupted = bytearray(data)
    corrupted[1000] ^= 0xFF
    (served / "archive.zip").write_bytes(bytes(corrupted))
    cache = tmp_path / "cache"
    with serve(served) as server, pytest.raises(ChecksumError, match=f"expected {digest}"):
        download(f"{server.url}/archive.zip", cache, sha256=digest, progress=False)
    assert not cache.exists()  # made for the download, removed with it


def test_a_complete_file_with_the_right_hash_is_not_fetched_again(payload, tmp_path):
    served, _, digest = payload
    with serve(served) as server:
        download(f"{server.url}/archive.zip", tmp_path, sha256=digest, progress=False)
        count = len(server.requests)
        download(f"{server.url}/archive.zip", tmp_path, sha256=digest, progress=False)
        assert len(server.requests) == count


def test_http_error_names_the_url(payload, tmp_path):
    served, _, _ = payload
    with serve(served) as server, pytest.raises(DownloadError, match="missing.zip: HTTP 404"):
        download(f"{server.url}/missing.zip", tmp_path, progress=False)


def test_damaged_archive_is_a_clear_error_and_leaves_no_folder(tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04" + os.urandom(200))
    with pytest.raises(SourceFormatError):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
