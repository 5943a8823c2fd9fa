"""The founding study's architectures, one module each, registered by name.

Every module is pure torch (no compiled extensions), so each model trains on CPU and CUDA.
"""

from __future__ import annotations

import difflib
import importlib

from torch import nn

from .registry import REGISTRY, ModelInfo, PretrainedUnavailableError, register

#: Architecture modules, imported on first use.
MODULES = ("unet", "hiformer", "missformer", "swin_umamba", "ukan", "segformer", "segnext", "vwformer",
           "internimage", "transnext")


def _load() -> None:
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")


def list_models() -> list[str]:
    """Registered model names, specialized architectures first, in the study's order.

    Examples
    --------
    >>> "unet" in list_models()
    True
    """
    _load()
    # The study's order whatever order the modules were imported in: by module, then as each registers.
    position = {name: i for i, name in enumerate(REGISTRY)}
    return sorted(REGISTRY, key=lambda n: (MODULES.index(REGISTRY[n].builder.__module__.rsplit(".", 1)[-1]),
                                           position[n]))


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``; an unknown name gets the closest names suggested."""
    _load()
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=3)
        raise KeyError(f"unknown model {name!r}" + (f"; did you mean {', '.join(close)}?" if close else "")
                       + f" Known: {', '.join(REGISTRY)}.")
    return REGISTRY[name]


def build_model(name: str, num_classes: int, *, pretrained: bool = False) -> nn.Module:
    """Build ``name`` with ``num_classes`` logit channels (the class count, background included, or 1 for
    a binary task trained with BCE as the protocol does).

    The module maps ``[B, 3, H, W]`` to logits ``[B, num_classes, H, W]`` for ``H``, ``W`` multiples of 32.
    """
    info = model_info(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"{name}: num_classes must be a positive integer (the class count with background, or 1 "
                         f"for a binary task trained with BCE), got {num_classes!r}.")
    return info.builder(num_classes, pretrained=pretrained)


__all__ = ["MODULES", "REGISTRY", "ModelInfo", "PretrainedUnavailableError", "build_model", "list_models",
           "model_info", "register"]
