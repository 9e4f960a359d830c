"""moa.operator: kopf handlers funnelling into one idempotent reconcile built on moa.pipeline.

Imports api and pipeline only (its image carries no torch); each workload kind is one small
adapter in `workloads/` with `render` and `observe`.
"""
