"""moa.dev: developer tooling -- a real local control plane built from Go modules (optionally
with a real node), KWOK pods for GPU-shaped scheduling, and their CLI.

Not imported by any other package of moa.
"""
