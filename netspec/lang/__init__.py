"""The spec language: grammar, syntax tree, values, validation and elaboration. Needs no torch."""
