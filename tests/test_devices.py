"""One meaning of "auto" for every piece of work that picks a torch device."""

import pytest
import torch

from facegen.devices import resolve_device


def test_auto_and_none_pick_cuda_only_when_there_is_one() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected
    assert resolve_device().type == expected


def test_explicit_devices_are_taken_as_given() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.parametrize("spec", ["mps", "gpu", "cdua:0"])
def test_anything_else_is_refused_naming_the_accepted_values(spec: str) -> None:
    with pytest.raises(ValueError, match="'auto', 'cpu' or 'cuda\\[:N\\]'"):
        resolve_device(spec)
