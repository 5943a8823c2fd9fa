"""ImageNet weights from the Hugging Face Hub: through transformers where it has the architecture (it downloads,
caches and converts legacy checkpoints), else a safetensors file of a Hub repo; we map the names."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

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
        raise _unavailable(model, source, err) from err
    return network.state_dict()


def hub_safetensors(source: str, model: str, filename: str = "model.safetensors") -> dict[str, Tensor]:
    """The tensors of ``filename`` in the Hub repo ``source`` (downloaded once, then cached), or in the local folder ``source``.

    Raises :class:`PretrainedUnavailableError` naming ``model`` and ``source`` where it cannot be had.
    """
    from safetensors.torch import load_file

    try:
        if Path(source).is_dir():
            return load_file(Path(source) / filename)
        from huggingface_hub import hf_hub_download

        return load_file(hf_hub_download(source, filename))
    except (OSError, ImportError) as err:  # offline, no such repo or file, no huggingface_hub
        raise _unavailable(model, source, err) from err


def _unavailable(model: str, source: str, err: Exception) -> PretrainedUnavailableError:
    return PretrainedUnavailableError(
        f"{model}: cannot load the ImageNet weights {source!r} ({err}). They are fetched from the Hugging Face "
        f"Hub on first use: run once with network access (or `hf download {source}` on a machine that has it and "
        "copy the cache), then build again; or build with pretrained=False.")


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
