"""moa.pipeline: the stage graph run as decisions -- the pure planner (spec, observed) ->
actions, shared by the operator and `moa run` -- plus the local runner and the local registry.

May import: `moa.api` only (the planner runs in the operator's torch-free image).
"""
