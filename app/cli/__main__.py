"""`python -m app.cli`: the `portal` command."""

from app.cli import main

main()
