"""Every error the package raises on purpose derives from medseg_eval.MedsegEvalError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import medseg_eval
from medseg_eval import MedsegEvalError


def _package_exception_classes() -> list[type[BaseException]]:
    """Every exception class (warnings aside) defined in a module of the package that imports without extras."""
    found = []
    for info in pkgutil.walk_packages(medseg_eval.__path__, "medseg_eval."):
        if info.name.endswith(".__main__"):  # runs the command line when imported
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra (plots, train) that is not installed
            continue
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == module.__name__ and issubclass(obj, Exception) and not issubclass(obj, Warning):
                found.append(obj)
    return found


def test_every_exception_class_of_the_package_derives_from_the_base() -> None:
    classes = _package_exception_classes()
    assert len(classes) > 20  # the walk found the package's errors
    assert [c.__qualname__ for c in classes if not issubclass(c, MedsegEvalError)] == []


def test_specific_errors_keep_their_builtin_kind() -> None:
    from medseg_eval.datasets.errors import DatasetNotBuiltError, UnknownDatasetError
    from medseg_eval.metrics.errors import ShapeMismatchError

    assert issubclass(ShapeMismatchError, ValueError)
    assert issubclass(DatasetNotBuiltError, FileNotFoundError)
    assert issubclass(UnknownDatasetError, LookupError)


@pytest.mark.parametrize("call", [
    lambda: medseg_eval.metrics.compute(np.zeros((4, 4)), np.zeros((4, 5)), ["dice"]),
    lambda: medseg_eval.evaluate(np.zeros((1, 4, 4), np.uint8), "no-such-dataset", progress=False),
    lambda: medseg_eval.evaluate(np.full((1, 4, 4), 7, np.uint8), targets=np.zeros((1, 4, 4), np.uint8), progress=False),
])
def test_user_errors_are_caught_by_the_base(call) -> None:
    with pytest.raises(MedsegEvalError) as caught:
        call()
    assert str(caught.value)


def test_cuda_on_a_machine_without_it_is_a_clear_error(monkeypatch) -> None:
    import torch

    from medseg_eval.devices import DeviceUnavailableError, resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailableError, match="no CUDA.*use device 'cpu'"):
        resolve_device("cuda")
    with pytest.raises(DeviceUnavailableError, match="unknown device"):
        resolve_device("gpu")
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"resize": "bilinear"}, {"device": "gpu"}])
def test_bad_evaluate_options_are_package_errors_before_any_file_is_read(tmp_path, kwargs) -> None:
    from medseg_eval.errors import ArgumentError

    missing = tmp_path / "not-there"  # never read: options are checked first
    with pytest.raises(MedsegEvalError) as caught:
        medseg_eval.evaluate(str(missing), targets=str(missing), progress=False, **kwargs)
    assert isinstance(caught.value, ArgumentError | medseg_eval.devices.DeviceUnavailableError)
