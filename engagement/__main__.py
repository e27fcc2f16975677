"""``python -m engagement`` is the ``engagement`` command."""

from engagement.cli import main

if __name__ == "__main__":
    main()
