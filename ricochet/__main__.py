"""`python -m ricochet`: the same as the `ricochet` command."""

from ricochet.cli import main

main(prog_name="ricochet")
