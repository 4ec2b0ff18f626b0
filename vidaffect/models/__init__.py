"""Model architectures (registered by name) and checkpoint IO.

``create_model``, ``list_models``, ``model_inputs`` and ``register_model`` are imported on first use, so
importing :mod:`vidaffect.models` (e.g. for :mod:`vidaffect.models.meta`) does not load torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_model", "list_models", "model_inputs", "register_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from vidaffect.models import catalog

        return getattr(catalog, name)
    raise AttributeError(f"module 'vidaffect.models' has no attribute {name!r}")
