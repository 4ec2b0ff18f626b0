"""The event protocol: JSON events for other programs.

* :mod:`vidaffect.events.build`: the event objects sinks emit (``frame``, ``change``, ``gap``,
  ``outage``), to the versioned JSON Schema in ``schemas/``.
* :mod:`vidaffect.events.subscribe`: receiving them over ZeroMQ (``vidaffect events``).
* :mod:`vidaffect.events.timeline`, :mod:`vidaffect.events.timeline_plot`: reading a run's
  events back into per-stream tables and a PNG (``vidaffect report``).
"""
