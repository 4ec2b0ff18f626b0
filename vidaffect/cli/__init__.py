"""The ``vidaffect`` command line: :mod:`vidaffect.cli.main` defines the commands; the other
modules are what single commands print or run (the demo, the plugin list, the end-of-run
summary tables, the model training commands)."""
