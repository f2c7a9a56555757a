"""`python -m audiodiff ...` runs the same command line as `audiodiff ...`."""
from .cli import main

main()
