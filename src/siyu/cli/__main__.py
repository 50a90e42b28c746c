"""``python -m siyu.cli`` — the same as the ``siyu`` command."""

from siyu.cli.main import run

run()
