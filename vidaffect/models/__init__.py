"""Model architectures (registered by name) and checkpoint IO."""

from vidaffect.models import fer as _fer  # noqa: F401  (registers the FER architectures)
from vidaffect.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
