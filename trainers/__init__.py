"""Training and evaluation command-line tools for vidaffect's emotion models."""
