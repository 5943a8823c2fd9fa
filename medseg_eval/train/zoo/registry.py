"""The model registry: each architecture module registers its builder under the study's name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

from ...errors import MedsegEvalError

Builder = Callable[..., nn.Module]


class PretrainedUnavailableError(MedsegEvalError, RuntimeError):
    """ImageNet weights were asked for but cannot be loaded here (offline, or no loader for them)."""


@dataclass(frozen=True)
class ModelInfo:
    """What the zoo knows about one architecture.

    Attributes
    ----------
    family
        ``"specialized"`` (medical architectures) or ``"general"`` (general-purpose vision models).
    parameters_m
        Parameters in millions reported by the founding study (checked by a test within 10%).
    paper
        The architecture's paper.
    amp
        Whether the protocol trains it with mixed precision (the study turns it off for SegNeXt).
    """

    name: str
    family: Literal["specialized", "general"]
    parameters_m: float
    paper: str
    builder: Builder
    amp: bool = True


REGISTRY: dict[str, ModelInfo] = {}


def register(name: str, *, family: Literal["specialized", "general"], parameters_m: float, paper: str,
             amp: bool = True) -> Callable[[Builder], Builder]:
    """Register ``builder(out_channels, *, pretrained=False) -> nn.Module`` under ``name``.

    The module returns logits ``[B, out_channels, H, W]`` at the input's size for inputs
    ``[B, 3, H, W]`` with ``H`` and ``W`` multiples of 32.
    """
    def decorate(builder: Builder) -> Builder:
        if name in REGISTRY:
            raise ValueError(f"model {name!r} is registered twice.")
        REGISTRY[name] = ModelInfo(name, family, parameters_m, paper, builder, amp)
        return builder

    return decorate
