"""python -m flashkmeans: the command-line tool, as the `flashkmeans` console command runs it."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
