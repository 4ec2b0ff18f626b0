"""What runs on frames inside the stages, besides the plugins: face tracking, shot-change
detection, per-track smoothing of emotion probabilities, and the in-process
:func:`vidaffect.analyze` for one image."""
