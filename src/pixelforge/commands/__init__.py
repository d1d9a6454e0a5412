"""Command-line commands of single capabilities (generate, stylize, compress, tune, ...), one module each.

They sit at the top layer beside `cli.py`, which registers each with one line, so a new command never grows cli.py.
"""
