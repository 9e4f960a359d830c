"""KWOK Stage and Node templates for the local control plane (package data)."""
