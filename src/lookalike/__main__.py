"""`python -m lookalike` runs the CLI."""

from lookalike.services.cli import run

run()
