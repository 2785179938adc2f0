"""The console's screens: jobs (home), live output, add/edit form, history, help and dialogs."""

from insect_console.screens.dialogs import ConfirmScreen, QuitScreen, WaitingScreen
from insect_console.screens.form import JobFormScreen
from insect_console.screens.help import HelpScreen
from insect_console.screens.history import HistoryScreen, RunDetailScreen
from insect_console.screens.jobs import JobsScreen
from insect_console.screens.output import OutputScreen

__all__ = [
    "ConfirmScreen",
    "HelpScreen",
    "HistoryScreen",
    "JobFormScreen",
    "JobsScreen",
    "OutputScreen",
    "QuitScreen",
    "RunDetailScreen",
    "WaitingScreen",
]
