"""The process runtime: stages as processes, ZeroMQ between them, a supervisor watching.

* :mod:`.graph` turns a validated pipeline into one spec per stage worker (endpoints, fan-in).
* :mod:`.stage` is the entry point of a stage process (source, processor, sink loops).
* :mod:`.supervisor` starts, watches and stops the processes.
* :mod:`.transport`, :mod:`.reorder`, :mod:`.metrics` are the pieces they share.
"""
