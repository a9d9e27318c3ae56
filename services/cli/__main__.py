"""`python -m lookalike.services.cli` runs the `lookalike` command."""

from lookalike.services.cli.main import run

run()
