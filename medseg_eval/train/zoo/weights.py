"""ImageNet weights through transformers: it downloads, caches and converts legacy checkpoints; we map the names."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from torch import Tensor, nn

from .registry import PretrainedUnavailableError


def transformers_state_dict(architecture: str, source: str, model: str) -> dict[str, Tensor]:
    """The state dict of ``transformers.<architecture>`` loaded from ``source`` (a Hub repo id or a local folder).

    Raises :class:`PretrainedUnavailableError` naming ``model`` and ``source`` when transformers is
    missing or the weights cannot be had (offline with an empty cache, say).
    """
    try:
        import transformers
    except ImportError as err:
        raise PretrainedUnavailableError(f"{model}: ImageNet weights load through transformers; "
                                         "pip install 'medseg-eval[train]'.") from err
    try:
        network = getattr(transformers, architecture).from_pretrained(source)
    except OSError as err:  # what from_pretrained raises offline, for a missing repo or a folder without weights
        raise PretrainedUnavailableError(
            f"{model}: cannot load the ImageNet weights {source!r} ({err}). They are fetched from the Hugging Face "
            f"Hub on first use: run once with network access (or `hf download {source}` on a machine that has it and "
            "copy the cache), then build again; or build with pretrained=False.") from err
    return network.state_dict()


def load_renamed(module: nn.Module, state: Mapping[str, Tensor], renames: list[tuple[str, str]], *,
                 merge: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None, drop: str | None = None,
                 fresh: str | None = None) -> None:
    """Load ``state`` into ``module`` after the regex ``renames`` (and ``merge`` of fused tensors).

    Keys matching ``drop`` (after renaming; a classifier's, say) are left out; parameters of
    ``module`` matching ``fresh`` (layers the checkpoint never had) keep their initialisation.
    Any other key missing on either side is an error.
    """
    renamed = {}
    for key, value in state.items():
        for pattern, replacement in renames:
            key = re.sub(pattern, replacement, key)
        if drop is None or not re.search(drop, key):
            renamed[key] = value
    result = module.load_state_dict(merge(renamed) if merge else renamed, strict=False)
    missing = [k for k in result.missing_keys if fresh is None or not re.search(fresh, k)]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"the checkpoint does not fit {type(module).__name__}: missing {missing[:5]}, "
                           f"unexpected {result.unexpected_keys[:5]}.")
