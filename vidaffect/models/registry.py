"""A registry of model architectures, by name.

Architectures live once, in :mod:`vidaffect.models.fer` and :mod:`vidaffect.models.emotic`, and
are used by both ``trainers/`` and the classifier plugins. This module imports none of them (they
import it to register); :mod:`vidaffect.models.catalog` is the registry with the built-ins loaded.
A factory takes ``num_classes`` and ``in_channels`` (plus its own keyword options) and
returns an ``nn.Module``. Single-image models (FER) map ``(B, in_channels, H, W)`` float32 to
``(B, num_classes)`` logits; a model registered with several ``inputs`` (EMOTIC's body and
context) takes one such tensor per input, in that order, and documents its outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from vidaffect.errors import CheckpointError

ModelFactory = Callable[..., nn.Module]

_MODELS: dict[str, ModelFactory] = {}
_INPUTS: dict[str, tuple[str, ...]] = {}


def register_model(name: str, inputs: tuple[str, ...] = ("image",)) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator registering an architecture factory under ``name``.

    Args:
        inputs: names of the tensors ``forward`` takes, in order.

    Raises:
        ValueError: ``name`` is already registered (names are unique, never shadowed).
    """

    def decorator(factory: ModelFactory) -> ModelFactory:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = factory
        _INPUTS[name] = inputs
        return factory

    return decorator


def list_models() -> list[str]:
    """Names of all registered architectures, sorted."""
    return sorted(_MODELS)


def model_inputs(name: str) -> tuple[str, ...]:
    """Names of the inputs of architecture ``name`` (``("image",)`` for single-image models).

    Raises:
        CheckpointError: ``name`` is not a registered architecture.
    """
    if name not in _INPUTS:
        raise CheckpointError(f"unknown architecture {name!r}; registered: {', '.join(list_models())}")
    return _INPUTS[name]


def create_model(name: str, num_classes: int, in_channels: int = 1, **kwargs: Any) -> nn.Module:
    """Build the architecture ``name`` with freshly initialised weights (train mode, float32).

    Raises:
        CheckpointError: ``name`` is not a registered architecture.
        TypeError: an option in ``kwargs`` the architecture does not take.
        ValueError: an option value or ``in_channels`` it rejects.
    """
    try:
        factory = _MODELS[name]
    except KeyError:
        raise CheckpointError(
            f"unknown architecture {name!r}; registered: {', '.join(list_models())}"
        ) from None
    return factory(num_classes=num_classes, in_channels=in_channels, **kwargs)
