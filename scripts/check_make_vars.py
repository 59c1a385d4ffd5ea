"""Stop make when a variable it was given is not one it knows: ``make db-backup-ops HSOT=prod``
would otherwise back up the sandbox, ``ENCRYPT_T0=age1…`` store a plain backup, with exit 0.

The Makefile runs this (standard library only: it runs before any venv exists) with the names
it knows (``USER_VARS`` and its own), the names given on its command line and the names in the
environment; it prints one sentence per unknown name, with the closest known name (difflib),
and make stops with it. Values are never passed here, so a secret is never repeated.

Checked: every upper-case name on make's command line; in the environment only names with one
of our prefixes (the environment holds everyone's variables: PATH, SSH_AUTH_SOCK, ...).
"""

from __future__ import annotations

import argparse
import difflib
import re

# Environment variables with these prefixes are ours (MMOPS_REPO, ENCRYPT_TO, REPO_ENV_FILE,
# AGE_IDENTITY, KEEP_LOCAL): a name there that we do not know is a typo, not someone else's.
OUR_ENV_PREFIXES = ("MMOPS_", "ENCRYPT_", "REPO_", "AGE_", "KEEP_")
UPPER = re.compile(r"[A-Z][A-Z0-9_]*\Z")


def problems(known: set[str], given: list[str], environment: list[str]) -> list[str]:
    """One sentence for each unknown name (command line first, then the environment)."""
    out = []
    candidates = sorted(known)
    seen: set[str] = set()
    for where, names in (("on make's command line", given), ("in the environment", environment)):
        for name in names:
            if name in known or name in seen or not UPPER.match(name):
                continue
            if where == "in the environment" and not name.startswith(OUR_ENV_PREFIXES):
                continue
            seen.add(name)
            close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "no variable of ours is close to it."
            out.append(f"{name} ({where}) is not a variable this Makefile knows: {hint}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--known", default="", help="names the Makefile knows")
    parser.add_argument("--given", default="", help="names on make's command line")
    parser.add_argument("--env", default="", help="names in make's environment")
    args = parser.parse_args()
    found = problems(set(args.known.split()), args.given.split(), args.env.split())
    if found:
        print(" ".join(found) + " Nothing was run; fix the name (README: Variables)")


if __name__ == "__main__":
    main()
