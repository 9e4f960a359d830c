"""The in-process engine: the base model loaded once, every served adapter loaded by name.

GPT-OSS's expert-tensor LoRA cannot mix adapters inside one batch, so requests are grouped:
a single worker thread takes the oldest waiting request, waits a short window for more
requests for the same adapter (and sampling settings), and generates them as one batch.
One lock covers every change of weights or of the active adapter and every generation, so a
generation never runs under another request's adapter; each piece of text carries the adapter
that was active while it was generated, read inside the lock.

Backends come from the trainer's loader: Unsloth on CUDA, plain transformers + PEFT on CPU.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moa.harmony import tokens as T
from moa.serving.engine import AdapterCheckError, ArtifactInfo, Piece, Sampling, check_artifact

log = logging.getLogger("moa.serving")

# A fixed prompt for the smoke forward pass of a newly loaded adapter.
PROBE = "<|start|>user<|message|>def add(a, b):<|end|><|start|>assistant"
STOPS = (T.CALL, T.RETURN)


@dataclass
class _Request:
    adapter: str
    prompt: str
    sampling: Sampling
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue[Piece]
    ids: list[int] = field(default_factory=list)
    emitted: str = ""
    done: bool = False

    @property
    def group(self) -> tuple[str, float, float]:
        return (self.adapter, self.sampling.temperature, self.sampling.top_p)

    def send(self, piece: Piece) -> None:
        self.loop.call_soon_threadsafe(self.out.put_nowait, piece)


class InProcessEngine:
    name = "inprocess"

    def __init__(
        self,
        base: str | Path,
        *,
        window_ms: float = 5.0,
        max_batch: int = 8,
        on_swap: Callable[[float], None] | None = None,
        on_batch: Callable[[str, int], None] | None = None,
    ) -> None:
        from moa.agent.policy import limit_cpu_threads, load_base
        from moa.api.training import LoraSpec

        limit_cpu_threads()
        self.model, self.tokenizer, self.backend = load_base(base, LoraSpec())
        self.model.eval()
        self.base = str(base)
        self.max_context = int(getattr(self.model.config, "max_position_embeddings", 4096))
        self.window_s = window_ms / 1000
        self.max_batch = max_batch
        self.on_swap = on_swap or (lambda seconds: None)
        self.on_batch = on_batch or (lambda adapter, size: None)
        self.stop_ids = [self.tokenizer.convert_tokens_to_ids(t) for t in STOPS]
        self._peft: Any = None  # the PeftModel, once an adapter is loaded
        self._active: str | None = None
        self._lock = threading.Lock()  # weights, the active adapter, and every generation
        self._waiting: list[_Request] = []
        self._wake = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="moa-generate", daemon=True)
        self._worker.start()

    # --- adapters --------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def loaded(self) -> list[str]:
        return sorted(self._peft.peft_config) if self._peft is not None else []

    async def load(self, name: str, path: Path, digest: str | None) -> ArtifactInfo:
        return await asyncio.to_thread(self._load, name, path, digest)

    def _load(self, name: str, path: Path, digest: str | None) -> ArtifactInfo:
        info = check_artifact(path, digest)
        with self._lock:
            if self._peft is None:
                from peft import PeftModel

                self._peft = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
            else:
                self._peft.load_adapter(str(path), adapter_name=name)
            self._peft.eval()
            try:
                difference = self._smoke_difference(name)
            except Exception:
                self._delete(name)
                raise
            if difference <= 1e-6:
                self._delete(name)
                raise AdapterCheckError(
                    f"{path}: the adapter does not change the base model's logits (max difference {difference:g})"
                )
        info.checks.append(f"forward (max logit difference {difference:.3g})")
        log.info("loaded adapter %s from %s: %s", name, path, ", ".join(info.checks))
        return info

    def _smoke_difference(self, name: str) -> float:
        import torch

        batch = self.tokenizer(PROBE, return_tensors="pt", add_special_tokens=False).to(self.backend.device)
        self._activate(name)
        with torch.no_grad():
            tuned = self._peft(**batch).logits
            with self._peft.disable_adapter():
                base = self._peft(**batch).logits
        return float((tuned - base).abs().max())

    async def unload(self, name: str) -> None:
        await asyncio.to_thread(self._unload, name)

    def _unload(self, name: str) -> None:
        with self._lock:
            self._delete(name)
        gc.collect()
        if self.backend.device == "cuda":
            import torch

            torch.cuda.empty_cache()
        log.info("unloaded adapter %s", name)

    def _delete(self, name: str) -> None:
        """Remove adapter `name` (under the lock); the last one unwraps the base again."""
        if self._peft is None or name not in self._peft.peft_config:
            return
        if len(self._peft.peft_config) == 1:
            self.model = self._peft.unload()
            self._peft, self._active = None, None
            return
        if self._active == name:
            other = next(n for n in self._peft.peft_config if n != name)
            self._activate(other)
        self._peft.delete_adapter(name)

    def _activate(self, name: str) -> None:
        if self._active != name:
            started = time.perf_counter()
            self._peft.set_adapter(name)
            self._active = name
            self.on_swap(time.perf_counter() - started)

    # --- generation ------------------------------------------------------------------

    async def generate(self, adapter: str, prompt: str, sampling: Sampling) -> AsyncIterator[Piece]:
        request = _Request(adapter, prompt, sampling, asyncio.get_running_loop(), asyncio.Queue())
        with self._wake:
            self._waiting.append(request)
            self._wake.notify()
        while True:
            piece = await request.out.get()
            if isinstance(piece, BaseException):
                raise piece
            yield piece
            if piece.done:
                return

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                group = self._waiting[0].group
                same = sum(r.group == group for r in self._waiting)
            if same < self.max_batch and self.window_s > 0:
                time.sleep(self.window_s)  # let more requests for this adapter arrive
            with self._wake:
                batch = [r for r in self._waiting if r.group == group][: self.max_batch]
                self._waiting = [r for r in self._waiting if r not in batch]
            try:
                self._run(batch)
            except Exception as exc:  # a failed batch fails its requests, never the worker
                log.exception("generation failed for adapter %s", group[0])
                for r in batch:
                    if not r.done:
                        r.loop.call_soon_threadsafe(r.out.put_nowait, exc)  # type: ignore[arg-type]

    def _run(self, batch: list[_Request]) -> None:
        import torch

        adapter, temperature, top_p = batch[0].group
        tok = self.tokenizer
        with self._lock:
            if self._peft is None or adapter not in self._peft.peft_config:
                raise AdapterCheckError(f"adapter {adapter} is not loaded")
            self._activate(adapter)
            active = str(self._peft.active_adapter)
            self.on_batch(adapter, len(batch))
            side, tok.padding_side = tok.padding_side, "left"
            try:
                inputs = tok(
                    [r.prompt for r in batch], return_tensors="pt", padding=True, add_special_tokens=False
                )
            finally:
                tok.padding_side = side
            inputs = inputs.to(self.backend.device)
            prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
            streamer = _Streamer(self, batch, active, prompt_tokens)
            sampling: dict[str, Any] = (
                {"do_sample": True, "temperature": temperature, "top_p": top_p}
                if temperature > 0
                else {"do_sample": False, "temperature": None, "top_p": None}
            )
            with torch.no_grad():
                self._peft.generate(
                    **inputs,
                    max_new_tokens=max(r.sampling.max_tokens for r in batch),
                    eos_token_id=self.stop_ids,
                    pad_token_id=tok.pad_token_id,
                    streamer=streamer,
                    stopping_criteria=[streamer.criteria],
                    output_router_logits=False,
                    **sampling,
                )
            streamer.end()

    async def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        await asyncio.to_thread(self._worker.join, 5)


class _Streamer:
    """Receives each step's tokens from `generate` and sends every row's new text to its request."""

    def __init__(
        self, engine: InProcessEngine, batch: list[_Request], active: str, prompt_tokens: list[int]
    ) -> None:
        self.engine, self.batch, self.active, self.prompt_tokens = engine, batch, active, prompt_tokens
        self.started = False

    def put(self, value: Any) -> None:
        if not self.started:  # the first call carries the prompt
            self.started = True
            return
        for row, token in zip(self.batch, value.tolist(), strict=True):
            if row.done:
                continue
            if token in self.engine.stop_ids:
                self._finish(row, stopped=True)
                continue
            row.ids.append(token)
            text = self.engine.tokenizer.decode(row.ids, skip_special_tokens=False)
            if not text.endswith("\ufffd"):  # hold back half a UTF-8 character
                row.send(Piece(text[len(row.emitted) :], adapter=self.active))
                row.emitted = text
            if len(row.ids) >= row.sampling.max_tokens:
                self._finish(row, stopped=False)

    def _finish(self, row: _Request, stopped: bool) -> None:
        row.done = True
        text = self.engine.tokenizer.decode(row.ids, skip_special_tokens=False)
        tail = text[len(row.emitted) :]
        row.emitted = text
        i = self.batch.index(row)
        row.send(Piece(tail, True, stopped, self.prompt_tokens[i], len(row.ids), self.active))

    def end(self) -> None:
        for row in self.batch:
            if not row.done:
                self._finish(row, stopped=False)

    def criteria(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.tensor([r.done for r in self.batch], device=input_ids.device)
