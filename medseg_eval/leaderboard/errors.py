"""The errors a bundle can raise: each names the bundle and says why it cannot go on a board."""

from __future__ import annotations

from ..errors import MedsegEvalError


class SubmissionError(MedsegEvalError, ValueError):
    """A bundle that cannot go on a board; the message names the bundle and the reason."""


class IncompleteSubmissionError(SubmissionError):
    """The bundle does not cover every case of the dataset's test split, or lacks a required part."""


class TamperedSubmissionError(SubmissionError):
    """The bundle's tables are not what its predictions score, disagree with its own counts, or no longer
    match the hashes recorded at submission."""


class RevisionMismatchError(SubmissionError):
    """The bundle was scored against another revision of the dataset (manifest hash) or another split."""


class SettingsMismatchError(SubmissionError):
    """The bundle was scored with other settings than the board's (convention, empty-mask policy, ...)."""


class DuplicateSubmissionError(SubmissionError):
    """The board already holds this model name or these predictions."""
