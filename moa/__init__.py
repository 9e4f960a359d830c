"""moa: Mixture of Adapters — per-language LoRA adapters for a GPT-OSS coding agent.

Importing moa is cheap on purpose: no torch, transformers or kubernetes at import time.
"""

__version__ = "0.1.0"
