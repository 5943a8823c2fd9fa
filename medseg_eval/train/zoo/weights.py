"""ImageNet weights: through transformers where it has the architecture (it downloads, caches and converts legacy
checkpoints), else the released checkpoint file (a Hub repo's, or a URL's); we map the names."""

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


def load_checkpoint(source: str, model: str, filename: str = "model.safetensors") -> dict[str, Tensor]:
    """The tensors of a released checkpoint (``.safetensors`` or a torch ``.pth``), from wherever it lives.

    Parameters
    ----------
    source
        An ``http(s)`` URL (downloaded once into torch's hub cache; a ``name-<sha256 prefix>.pth`` file
        name is checked against its content, as ``torch.hub`` does), a local file or folder, or a Hub repo id.
    model
        The model asking, named in errors.
    filename
        The file inside a folder or Hub repo.

    Torch files load with ``weights_only=True``; a dict holding the weights under ``state_dict``
    or ``model`` (as training scripts save them) is unwrapped. Raises
    :class:`PretrainedUnavailableError` naming ``model`` and ``source`` where it cannot be had.
    """
    import pickle

    import torch
    from safetensors.torch import load_file

    try:
        if source.startswith(("http://", "https://")):
            state = torch.hub.load_state_dict_from_url(source, map_location="cpu", check_hash=True, weights_only=True)
        else:
            path = Path(source) / filename if Path(source).is_dir() else Path(source)
            if not path.is_file():
                from huggingface_hub import hf_hub_download

                path = Path(hf_hub_download(source, filename))
            state = (load_file(path) if path.suffix == ".safetensors"
                     else torch.load(path, map_location="cpu", weights_only=True))
    except pickle.UnpicklingError as err:
        raise PretrainedUnavailableError(
            f"{model}: {source!r} holds more than tensors, and torch files are only loaded with weights_only=True "
            f"here ({err}); save its state dict alone (torch.save(state_dict, path)) and pass that file.") from err
    except (OSError, ImportError) as err:  # offline, no such repo or file, no huggingface_hub
        in_repo = not source.startswith(("http://", "https://")) and not source.endswith(filename)
        raise _unavailable(model, source, err, filename if in_repo else None) from err
    for key in ("state_dict", "model"):
        if isinstance(state.get(key), dict):
            state = state[key]
    return state


def _unavailable(model: str, source: str, err: Exception, filename: str | None = None) -> PretrainedUnavailableError:
    file = f" (file {filename})" if filename else ""
    return PretrainedUnavailableError(
        f"{model}: cannot load the ImageNet weights {source!r}{file} ({err}). They are downloaded on first use: run "
        "once with network access (or download them on a machine that has it and copy the Hugging Face or torch "
        "hub cache), then build again; or build with pretrained=False.")


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
