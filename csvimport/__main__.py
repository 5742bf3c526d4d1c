"""Run the command line as ``python -m csvimport``."""

from csvimport.cli import main

if __name__ == "__main__":
    main()
