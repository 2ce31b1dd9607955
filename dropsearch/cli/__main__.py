"""``python -m dropsearch.cli``: the same as the ``dropsearch`` command."""

from dropsearch.cli import main

main()
