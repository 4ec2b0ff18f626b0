"""vidaffect's built-in plugins (import name ``vidaffect_plugins``).

They are registered through the ``vidaffect`` entry-point group exactly like third-party
plugins: capture sources, face detectors, emotion classifiers and sinks.
"""
