"""moa.trainer: the training stages -- `sft`, `ipo`, `grpo`, `merge`, `evaluate` -- with what
they share: the LoRA adapter (`loading`), TrainingArguments (`arguments`), data as token ids
(`data`, `toolcalls`), gates, history, plots, callbacks, and the tiny model for tests.

May import: `moa.api`, `moa.harmony`, `moa.languages`, `moa.agent` (the policy loader, rollouts,
the judge) and the stage harness `moa.stage`; never `moa.datagen`, `moa.pipeline`,
`moa.operator`, `moa.serving`. torch, transformers, peft and trl are imported inside functions.
"""
