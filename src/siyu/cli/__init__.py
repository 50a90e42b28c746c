"""The ``siyu`` command line (Typer + Rich): parse, call facades, show progress."""
