"""Which torch device a call runs on: ``"auto"`` and explicit names, checked before any work starts."""

from __future__ import annotations

import os

import torch

from .errors import MedsegEvalError


class DeviceUnavailableError(MedsegEvalError, RuntimeError):
    """The device asked for does not exist here (``cuda`` on a machine without CUDA, a GPU index too high)."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The device to run on: ``"auto"`` is CUDA when available (under ``torchrun`` the process's
    ``LOCAL_RANK`` GPU), else the CPU; any other name is checked to exist here.

    Raises
    ------
    DeviceUnavailableError
        For a CUDA device on a machine without CUDA (or with fewer GPUs), with the fix.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("auto").type in {"cpu", "cuda"}
    True
    """
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise DeviceUnavailableError(f"unknown device {device!r} ({err}); use 'auto', 'cpu' or 'cuda[:N]'.") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device {device!r} was asked for, but this torch build or machine has no CUDA "
                f"(torch {torch.__version__}); use device 'cpu' or 'auto', or install a CUDA build of torch.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device {device!r} was asked for, but this machine has {torch.cuda.device_count()} GPU(s); "
                f"use 'cuda:0'..'cuda:{torch.cuda.device_count() - 1}' or 'auto'.")
    return dev
