"""The model registry with the built-in architectures registered: import lookups from here.

:mod:`vidaffect.models.registry` holds the names and imports no architecture; this module
imports the built-in ones (FER: ``alexnet``, ``resnet18``, ``vgg``, ``ensemble``, ...; EMOTIC) so that their
``register_model`` decorators have run before any lookup.
"""

from __future__ import annotations

from vidaffect.models import emotic, ensemble, fer  # noqa: F401  (registers the built-in architectures)
from vidaffect.models.registry import create_model, list_models, model_inputs, register_model

__all__ = ["create_model", "list_models", "model_inputs", "register_model"]
