"""EMOTIC context emotion model: data, training, evaluation."""
