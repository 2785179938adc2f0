"""UI building blocks of the console: the engine bridge, bars, formatting, output view.

Nothing here holds business logic; the engine does. Nothing in the engine imports this.
"""
