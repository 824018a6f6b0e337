"""`python -m shrink` runs the command line."""

from shrink.cli import main

main()
