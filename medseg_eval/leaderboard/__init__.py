"""Leaderboards: submission bundles, their validation, boards in Markdown and HTML, and Hub pull requests."""

from . import hub
from .board import Board, board, build
from .bundle import (
    BADGES,
    DuplicateSubmissionError,
    IncompleteSubmissionError,
    RevisionMismatchError,
    SettingsMismatchError,
    Submission,
    SubmissionError,
    TamperedSubmissionError,
    reported_submission,
    submit,
    to_submission,
    validate,
)

__all__ = [
    "BADGES", "Board", "DuplicateSubmissionError", "IncompleteSubmissionError", "RevisionMismatchError",
    "SettingsMismatchError", "Submission", "SubmissionError", "TamperedSubmissionError", "board", "build", "hub",
    "reported_submission", "submit", "to_submission", "validate",
]
