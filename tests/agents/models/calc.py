"""The task every scripted model carries out: calc.py's add() returns a - b, and the fix
makes it return a + b; FINAL is what the model says once it is done."""

FILE = "calc.py"
BROKEN = "def add(a, b):\n    return a - b\n"
FIXED = "def add(a, b):\n    return a + b\n"
FINAL = "Fixed add() to return a + b."
SHELL_COMMAND = f"sed -i 's/return a - b/return a + b/' {FILE}"
PATCH = (
    "*** Begin Patch\n"
    f"*** Update File: {FILE}\n"
    "@@\n"
    " def add(a, b):\n"
    "-    return a - b\n"
    "+    return a + b\n"
    "*** End Patch\n"
)
