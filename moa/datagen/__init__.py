"""moa.datagen: the data stages -- `mutate` (+ `verify`, `dedup`: caught mutations from real
sources), `trajectories` (teachers: `oracle` and the `chat_teachers`, through `teachers`),
`preferences` (IPO pairs sampled with the SFT policy) and the data `gate`.

May import: `moa.api`, `moa.harmony`, `moa.languages`, `moa.agent` and the stage harness
`moa.stage`; never `moa.trainer` (the two share the agent runtime in `moa.agent` instead),
`moa.pipeline`, `moa.operator`, `moa.serving`.
"""
