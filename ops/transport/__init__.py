"""Where the engine runs and how bytes move, behind one small interface (``base.Transport``):
``direct`` (in-process), ``agent`` (the server's agent over SSH), ``tunnel`` (here, through an
SSH port forward). The workflows in ``jobs`` never know which one they talk to."""
