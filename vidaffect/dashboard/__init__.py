"""``vidaffect dashboard``: live video, tracks, an emotion timeline and stage counters in a
browser, for one or several pipelines with a ``preview`` sink (:mod:`vidaffect.dashboard.app`,
fed by :mod:`vidaffect.dashboard.feed`). The chart is uPlot (MIT, vendored in ``static/``)."""
