"""Pure rules over plain data, each written once and unit-tested: which restore mode, what a
restore will do and whether it is refused, when to ask for the typed name, what to keep."""
