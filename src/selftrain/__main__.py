"""`python -m selftrain` works like `selftrain`."""

from selftrain.cli import app

if __name__ == "__main__":
    app()
