"""The one base of every error medseg_eval raises, so that a caller (or the command line) catches them all.

Each area keeps its own specific errors (``metrics.errors``, ``datasets.errors``, ``prediction_errors``,
``stats.pairing``, ``leaderboard.bundle``, ``train.zoo.registry``); every one of them derives from
:class:`MedsegEvalError` and, where a built-in type says what went wrong (``ValueError``,
``FileNotFoundError``, ``LookupError``), from that too, so ``except ValueError`` keeps working. This
module imports nothing, so every part of the package, the metrics engine included, may import it.
"""

from __future__ import annotations


class MedsegEvalError(Exception):
    """Base of every error the package raises on purpose: its message names the case and the fix.

    Examples
    --------
    >>> import numpy as np
    >>> import medseg_eval
    >>> try:
    ...     medseg_eval.metrics.compute(np.zeros((4, 4)), np.zeros((4, 5)), ["dice"])
    ... except medseg_eval.MedsegEvalError as err:
    ...     print(type(err).__name__)
    ShapeMismatchError
    """


class ArgumentError(MedsegEvalError, ValueError):
    """A public function or command got an argument value it cannot take; the message names the argument,
    what it accepts and the fix.

    Examples
    --------
    >>> import numpy as np, medseg_eval
    >>> gt = {"a": np.ones((4, 4), np.uint8)}
    >>> medseg_eval.evaluate(gt, targets=gt, batch_size=0, progress=False)
    Traceback (most recent call last):
    ...
    medseg_eval.errors.ArgumentError: `batch_size` must be a positive integer (cases scored together), got 0.
    """
