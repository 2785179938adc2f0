"""The console's own widgets and what they draw: the top bar and status line, the following
output log, the table, and the styled cells (`cells.py`).

UI only: what they show comes from the engine surface (`insect_console.surface`) through the
app; pure formatting lives in `insect_console.textfmt`.
"""
