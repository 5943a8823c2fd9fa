"""Pairing predictions with the split's case ids, and errors that say what was found instead, with the fix."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .prediction_errors import MissingCasesError, UnknownCasesError, preview


class FoundCases(dict):
    """Predictions by case id, with what was found besides them, for the message when cases are missing.

    Attributes
    ----------
    ignored
        ``(path, why)`` of each file that is not taken as a prediction.
    notes
        Other things worth saying about the input (e.g. a dict keyed by integers).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ignored: list[tuple[str, str]] = []
        self.notes: list[str] = []


def check_ids(found: Mapping[str, Any], case_ids: Sequence[str], name: str) -> None:
    """Raise unless ``found`` has exactly the ids ``case_ids`` (missing ones first); when cases are missing,
    say what was found instead (names that nearly match, files ignored and why), with the fix.

    Examples
    --------
    >>> check_ids({"pred_a": 1, "pred_b": 2}, ["a", "b"], "predictions")
    Traceback (most recent call last):
    ...
    medseg_eval.prediction_errors.MissingCasesError: predictions: 2 of 2 cases have no prediction: a, b. \
Found instead: 2 name(s) that are case ids with the prefix 'pred_' (pred_a for a, pred_b for b); rename them \
without it. Every case of the split is scored; predict them all (or score a different split).
    """
    expected = set(case_ids)
    missing = sorted(expected - set(found))
    unknown = sorted(set(found) - expected)
    if missing:
        instead = _found_instead(missing, unknown, found)
        raise MissingCasesError(
            f"{name}: {len(missing)} of {len(expected)} cases have no prediction: {preview(missing)}. "
            + (f"Found instead: {'; '.join(instead)}. " if instead else "")
            + "Every case of the split is scored; predict them all (or score a different split).")
    if unknown:
        raise UnknownCasesError(
            f"{name}: {len(unknown)} prediction(s) for case ids the split does not have: {preview(unknown)}. "
            f"The split's ids look like {preview(sorted(expected), 3)}; check the split and the file names.")


def unique_ids(ids: Iterable[Any], values: Iterable[Any], name: str) -> FoundCases:
    """``{str(id): value}``, raising when two entries have the same id (as strings: ``1`` and ``"1"`` collide);
    integer ids are noted (a common slip: keys by row number, not by case id)."""
    out = FoundCases()
    repeated, numbers = [], 0
    for case_id, value in zip(ids, values):
        key = str(case_id)
        if key in out:
            repeated.append(key)
        numbers += not isinstance(case_id, str) and key.lstrip("-").isdigit()
        out[key] = value
    if repeated:
        raise UnknownCasesError(f"{name}: case ids given more than once: {preview(sorted(set(repeated)))}; give one "
                                "prediction per case.")
    if numbers:
        out.notes.append(f"{numbers} integer key(s) ({preview(sorted(k for k in out if k.lstrip('-').isdigit()), 3)}), "
                         "not case ids: key each prediction by its case id (or give an array [N, H, W] in sorted "
                         "case-id order)")
    return out


def _found_instead(missing: list[str], unknown: list[str], found: Mapping[str, Any]) -> list[str]:
    """What to tell a user whose cases are missing: near matches, other ids, ignored files, notes."""
    lines = list(getattr(found, "notes", []))
    near = _affix(missing, unknown)
    if near:
        lines.append(near)
    else:
        folded = {c.lower(): c for c in missing}
        cased = [u for u in unknown if u.lower() in folded]
        if cased:
            lines.append(f"{len(cased)} name(s) that differ from case ids in upper/lower case ({preview(cased, 3)}); "
                         "rename them to the exact ids")
        elif unknown and not lines:
            lines.append(f"{len(unknown)} other ids ({preview(unknown, 3)}); the split's ids look like "
                         f"{preview(missing, 3)}")
    ignored = getattr(found, "ignored", [])
    reasons = Counter(why for _, why in ignored)
    for why, count in reasons.most_common(3):
        paths = [p for p, w in ignored if w == why]
        lines.append(f"{count} file(s) ignored as {why}: {preview(paths, 3)}")
    return lines


def _affix(missing: list[str], unknown: list[str]) -> str:
    """The prefix or suffix that, taken off the ``unknown`` ids, makes the most of them ``missing`` ids, said
    with its fix; ``""`` when none does."""
    targets = set(missing)
    best: tuple[int, str, str] = (0, "", "")
    head = os.path.commonprefix(unknown) if len(unknown) > 1 else ""
    tail = os.path.commonprefix([u[::-1] for u in unknown])[::-1] if len(unknown) > 1 else ""
    for cut in range(len(head), 0, -1):
        hits = sum(u[cut:] in targets for u in unknown)
        if hits > best[0]:
            best = (hits, "prefix", head[:cut])
    for cut in range(len(tail), 0, -1):
        hits = sum(u[:-cut] in targets for u in unknown)
        if hits > best[0]:
            best = (hits, "suffix", tail[-cut:])
    if len(unknown) == 1:  # one file: any known id it starts or ends with
        u = unknown[0]
        for case_id in missing:
            if u != case_id and (u.endswith(case_id) or u.startswith(case_id)):
                kind, affix = ("prefix", u[: -len(case_id)]) if u.endswith(case_id) else ("suffix", u[len(case_id):])
                best = (1, kind, affix)
                break
    hits, kind, affix = best
    if not hits:
        return ""
    strip = (lambda u: u[len(affix):]) if kind == "prefix" else (lambda u: u[: -len(affix)])
    pairs = [f"{u} for {strip(u)}" for u in unknown if strip(u) in targets]
    return (f"{hits} name(s) that are case ids with the {kind} {affix!r} ({preview(pairs, 2)}); rename them "
            "without it")
