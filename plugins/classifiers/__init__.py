"""Built-in emotion classifiers."""
