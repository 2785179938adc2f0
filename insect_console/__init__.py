"""insect-console: schedules and runs the batch jobs of an insect observation station.

The engine (config, state, scheduling, running, history) is plain Python; the Textual
console, the headless daemon and the CLI are thin faces over it.
"""

__version__ = "0.1.0"
