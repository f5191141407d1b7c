"""`python -m hazematching` (also what `torchrun -m hazematching` launches)."""

from .cli import main

main()
