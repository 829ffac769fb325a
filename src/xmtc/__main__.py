"""``python -m xmtc``: the command line (see :mod:`xmtc.cli`)."""

from xmtc.cli import main

if __name__ == "__main__":
    main()
