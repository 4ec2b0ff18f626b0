"""``python -m vidaffect``: the ``vidaffect`` command."""

from vidaffect.cli.main import main

main()
