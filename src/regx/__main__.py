"""`python -m regx …` is the same as the `regx` command (used by torchrun and tests)."""

from regx.cli import main

if __name__ == "__main__":
    main()
