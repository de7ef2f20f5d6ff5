"""``python -m jaxconv.train``: see ``--help``."""

from jaxconv.train._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
