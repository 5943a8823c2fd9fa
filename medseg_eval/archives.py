"""Zip archives of predictions, read in place: member by member, never extracted, within caps.

Only members that can be predictions (by name: an image or array suffix, or none, then by their bytes) are
read at all, each when its case is scored. Before any is read, every such member is checked: not a
symbolic link (links in archives are refused, not followed: what is scored is what the archive holds), not
encrypted, compressed by a method Python's :mod:`zipfile` reads (stored, Deflate, BZIP2, LZMA; not
Deflate64), at most :data:`MAX_MEMBER_BYTES` uncompressed, at most :data:`MAX_RATIO` times its compressed
size (beyond :data:`RATIO_FLOOR`), and all together at most :data:`MAX_TOTAL_BYTES`. A member's declared
size bounds what is decompressed (:mod:`zipfile` stops there), so the caps hold whatever the data is.
Errors name the archive and the member.
"""

from __future__ import annotations

import contextlib
import io
import stat
import zipfile
from pathlib import Path, PurePosixPath

from .prediction_errors import PredictionFormatError
from .prediction_files import PredictionFile, candidate_stem

#: Uncompressed bytes a prediction member may hold (a 16384 x 16384 int32 label map is 1 GiB).
MAX_MEMBER_BYTES = 1 << 30
#: Uncompressed bytes all prediction members of one archive may hold together.
MAX_TOTAL_BYTES = 1 << 34
#: Uncompressed size / compressed size a member larger than :data:`RATIO_FLOOR` may have (Deflate reaches
#: about 1030 at most, on an empty label map; a larger ratio means another method, or a crafted member).
MAX_RATIO = 2000
#: Members up to this many uncompressed bytes are not held to :data:`MAX_RATIO`.
RATIO_FLOOR = 1 << 20

_READ = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


def archive_members(path: Path, stack: contextlib.ExitStack,
                    name: str = "predictions") -> tuple[list[PredictionFile], list[tuple[str, str]]]:
    """The members of the zip file ``path`` that can be predictions, checked and left in place (open until
    ``stack`` closes), and the other members with why each is ignored.

    Raises
    ------
    PredictionFormatError
        For an archive that cannot be read, or a member that could be a prediction and breaks a rule above.

    Examples
    --------
    >>> import contextlib, tempfile
    >>> path = Path(tempfile.mkdtemp()) / "preds.zip"
    >>> with zipfile.ZipFile(path, "w") as z:
    ...     z.writestr("preds/a.png", b"..."); z.writestr("preds/notes.txt", b"...")
    >>> with contextlib.ExitStack() as stack:
    ...     files, ignored = archive_members(path, stack)
    ...     [f.relative for f in files], ignored
    (['preds/a.png'], [('preds/notes.txt', 'not an image or array (.txt)')])
    """
    try:
        archive = stack.enter_context(zipfile.ZipFile(path))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise PredictionFormatError(f"{name}: cannot read the zip file {path} ({err}); zip the files again.") from err
    files, ignored, total = [], [], 0
    for info in infos:
        member = info.filename
        parts = PurePosixPath(member).parts
        if ".." in parts or member.startswith("/"):
            ignored.append((member, "a name leading outside the archive's folders"))
            continue
        if info.is_dir() or "__MACOSX" in parts or any(part.startswith(".") for part in parts):
            continue  # as in a folder: hidden files and folders, macOS resource forks
        stem = candidate_stem(parts[-1])
        if stem is None:
            ignored.append((member, f"not an image or array ({PurePosixPath(member).suffix.lower()})"))
            continue
        where = f"{path}:{member}"
        problem = member_problem(info, where)
        if problem and stem != parts[-1]:
            raise PredictionFormatError(problem)
        if problem:  # a member without a suffix is a prediction only if its bytes say so; this one is not read
            ignored.append((member, problem.split(": ", 1)[1]))
            continue
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise PredictionFormatError(
                f"{name}: the members of {path} that can be predictions hold more than {MAX_TOTAL_BYTES} bytes "
                "uncompressed (medseg_eval.archives.MAX_TOTAL_BYTES); remove what is not a prediction, or raise "
                "the cap if these are real label maps.")
        files.append(PredictionFile(where, member, _opener(archive, info), whole=_reader(archive, info)))
    return files, ignored


def member_problem(info: zipfile.ZipInfo, where: str) -> str:
    """Why the zip member ``info`` cannot be read as a prediction under the caps above (``""`` when it can),
    naming it ``where``; shared by every reader of prediction archives.

    Examples
    --------
    >>> info = zipfile.ZipInfo("a.png")
    >>> info.compress_type = 9
    >>> member_problem(info, "preds.zip:a.png")[:55]
    'preds.zip:a.png: compressed with deflate64 (method 9), '
    """
    if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
        return (f"{where}: a symbolic link; links in archives are refused, not followed: zip the file itself "
                "(without `zip -y`).")
    if info.flag_bits & 0x1:
        return f"{where}: encrypted (the zip has a password); zip the predictions again without one."
    if info.compress_type not in _READ:
        method = zipfile.compressor_names.get(info.compress_type, "an unknown method")
        return (f"{where}: compressed with {method} (method {info.compress_type}), which Python's zipfile cannot "
                "read; zip the files again with Deflate (the default of `zip` and of Python's zipfile).")
    if info.file_size > MAX_MEMBER_BYTES:
        return (f"{where}: {info.file_size} bytes uncompressed, more than the {MAX_MEMBER_BYTES} read per member "
                "(medseg_eval.archives.MAX_MEMBER_BYTES); save label maps as uint8 PNG or NPY.")
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        return (f"{where}: {info.file_size} bytes compressed into {info.compress_size}, a ratio above "
                f"{MAX_RATIO} (medseg_eval.archives.MAX_RATIO): a decompression bomb, or a method no label map "
                "needs; zip the files again with Deflate.")
    return ""


def _opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo):
    return lambda: archive.open(info)


def _reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo):
    return lambda: io.BytesIO(archive.read(info))  # decoders seek; a member's stream would decompress again
