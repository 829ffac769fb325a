"""The one training loop every deep model uses (nanoGPT-style: flat, resumable, seeded).

A model supplies three callables: ``batches(epoch)`` (a sized iterable, deterministic in ``(seed, epoch)``),
``loss(module, batch)`` (a scalar tensor) and ``evaluate(module)`` (the validation score, higher is better).
The loop handles the optimiser, lr schedule, bf16 autocast, gradient clipping, early stopping on the
validation score, SWA, a checkpoint at the end of every epoch (atomic write, ``torch.load(weights_only=True)``)
and ``metrics.jsonl`` in the run folder.

Sparse gradients (opt-in): parameters named by a submodule's ``sparse_grad_parameters()`` (e.g.
:class:`~xmtc.models.layers.MLAttention` with ``sparse=True``) or owned by an ``nn.Embedding(sparse=True)`` are
stepped by ``torch.optim.SparseAdam`` (lazy Adam: only the rows in the batch's gradient move), all others by
Adam/AdamW as usual (torch's fused kernel where every parameter allows it); a dense gradient such a parameter
may get is turned into a row-sparse one first.
Without such parameters the loop is exactly the dense one.

Data-parallel (``torchrun``, see :mod:`xmtc.train.distributed`): the loss runs through DistributedDataParallel
(gradients averaged over the ranks), rank 0 evaluates and its score is broadcast (every rank takes the same
early-stopping and best-weights decisions), only rank 0 writes ``metrics.jsonl`` and checkpoints, a resume reads
rank 0's checkpoint on every rank, and each epoch ends with a barrier after the checkpoint. Sparse-gradient
parameters are refused there. In one process none of this runs.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xmtc.errors import ConfigError, XMTCError
from xmtc.progress import disabled_by_env, epoch_summary
from xmtc.train import distributed
from xmtc.train.config import TrainConfig
from xmtc.train.device import autocast, fusable, seed_everything
from xmtc.train.schedule import lr_at


def epoch_rng(seed: int, epoch: int, salt: int = 0) -> np.random.Generator:
    """Numpy generator that depends only on (seed, epoch, salt): batch order survives a resume."""
    return np.random.default_rng([seed, epoch, salt])


def sparse_grad_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Parameters of ``module`` that get sparse gradients (and are stepped by ``torch.optim.SparseAdam``).

    They are named by any submodule with a ``sparse_grad_parameters()`` method, plus the weights of
    ``nn.Embedding(sparse=True)`` layers; known before the first backward pass.
    """
    found: dict[int, nn.Parameter] = {}
    for sub in module.modules():
        if callable(getattr(sub, "sparse_grad_parameters", None)):
            found.update((id(p), p) for p in sub.sparse_grad_parameters())
        elif isinstance(sub, nn.Embedding) and sub.sparse:
            found[id(sub.weight)] = sub.weight
    return list(found.values())


@dataclass
class TrainResult:
    """Outcome of :func:`train_loop`."""

    best_score: float = float("-inf")
    best_epoch: int = 0
    epochs_run: int = 0
    epochs_resumed: int = 0  # epochs a checkpoint already held when this call began (trained here: the rest)
    steps: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def train_loop(
    module: nn.Module,
    *,
    cfg: TrainConfig,
    batches: Callable[[int], Iterable[Any]],
    loss: Callable[[nn.Module, Any], torch.Tensor],
    evaluate: Callable[[nn.Module], float] | None = None,
    run_dir: str | Path | None = None,
    tag: str = "model",
    resume: bool = False,
    parameters: Iterable[nn.Parameter] | Iterable[dict[str, Any]] | None = None,
    epochs: int | None = None,
    score_name: str | None = None,
) -> TrainResult:
    """Train ``module`` in place; on return it holds the best evaluated weights (with SWA: the averaged weights
    are what validation evaluates once averaging has started), or the last (or averaged) ones without ``evaluate``.

    Args:
        module: the network (already on its device).
        cfg: training settings.
        batches: ``batches(epoch)`` -> iterable of batches for 0-based ``epoch``; must depend only on the seed
            and the epoch so that a resumed run sees the same batches.
        loss: ``loss(module, batch)`` -> scalar loss tensor (the module is in train mode).
        evaluate: ``evaluate(module)`` -> validation score, higher is better (module in eval mode, no grad).
            Without it, the last epoch's weights are kept.
        run_dir: where ``checkpoints/{tag}.pt`` and ``metrics.jsonl`` go; None keeps nothing on disk.
        tag: name of this training stage (e.g. ``level-1`` of a label tree).
        resume: continue from ``checkpoints/{tag}.pt`` when it exists: a killed run where it stopped; a run
            that finished on a smaller epoch budget (not by early stopping) goes on to this one's.
        parameters: parameters to optimise (default: all that require grad), or optimizer param groups
            (dicts with "params" and an optional "lr_scale" multiplying the scheduled lr).
        epochs: overrides ``cfg.epochs`` for this stage.
        score_name: what ``evaluate`` returns, for the history key ``valid_<name>`` and the epoch line
            (default ``cfg.select_metric``; e.g. ``recall@12`` for a label-tree level selected on recall).

    Returns:
        A :class:`TrainResult`.
    """
    device = next(module.parameters()).device
    n_epochs = epochs if epochs is not None else cfg.epochs
    score_name = score_name or cfg.select_metric
    given = list(parameters) if parameters is not None else list(module.parameters())
    if given and isinstance(given[0], dict):  # param groups; an optional "lr_scale" multiplies the lr
        groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in given]
    else:
        groups = [{"params": [p for p in given if p.requires_grad]}]
    params = [p for g in groups for p in g["params"]]
    sparse_ids = {id(p) for p in sparse_grad_parameters(module)}
    sparse_params = [p for p in params if id(p) in sparse_ids]
    distributed.refuse_sparse(len(sparse_params))  # torchrun: a clear error before any collective
    parallel = distributed.init(device) and distributed.is_distributed()  # torchrun: data-parallel
    main = distributed.is_main()
    sparse_optimizer = None
    if sparse_params:
        if cfg.weight_decay > 0:
            raise ConfigError(f"weight_decay={cfg.weight_decay} is not supported with sparse gradients "
                              "(sparse_grad=true, stepped by SparseAdam); set weight_decay=0 or sparse_grad=false")
        sparse_groups = [{**g, "params": [p for p in g["params"] if id(p) in sparse_ids]} for g in groups]
        groups = [{**g, "params": [p for p in g["params"] if id(p) not in sparse_ids]} for g in groups]
        sparse_optimizer = torch.optim.SparseAdam([g for g in sparse_groups if g["params"]], lr=cfg.lr)
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    fused = cfg.fused_optimizer and fusable([p for g in groups for p in g["params"]])
    optimizer = opt_cls(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None)
    optimizers = [optimizer] if sparse_optimizer is None else [optimizer, sparse_optimizer]
    run_dir = Path(run_dir) if run_dir is not None else None
    ckpt_path = run_dir / "checkpoints" / f"{tag}.pt" if run_dir is not None else None

    state = {"epoch": 0, "step": 0, "best_score": float("-inf"), "best_epoch": 0, "bad_evals": 0,
             "best_state": None, "swa_state": None, "swa_count": 0, "swa_on": False, "finished": False,
             "seconds": 0.0}
    history: list[dict[str, Any]] = []
    ckpt = _read_checkpoint(ckpt_path, device, parallel) if resume and ckpt_path is not None else None
    if ckpt is not None:
        module.load_state_dict(ckpt["model"])
        if (sparse_optimizer is not None) != ("sparse_optimizer" in ckpt):
            raise XMTCError(f"{ckpt_path}: checkpoint was written {'without' if sparse_params else 'with'} "
                            "sparse gradients; resume with the same sparse_grad setting")
        saved = ckpt["optimizer"]  # this run's fused_optimizer, not the checkpoint's, decides the form of the step
        optimizer.load_state_dict({**saved, "param_groups": [{**g, "fused": optimizer.defaults["fused"]}
                                                             for g in saved["param_groups"]]})
        if sparse_optimizer is not None:
            sparse_optimizer.load_state_dict(ckpt["sparse_optimizer"])
        for key in state:
            state[key] = ckpt.get(key, state[key]) if key == "swa_on" else ckpt[key]  # swa_on: since 2026-12
        history = list(ckpt.get("history", []))
        torch.set_rng_state(ckpt["torch_rng"].cpu())
        if state["finished"] and state["epoch"] < n_epochs and not _stopped_early(state, cfg):
            state["finished"] = False  # it ended on its epoch budget and a larger one is given: go on
            if main and cfg.schedule != "constant":
                print(f"{tag}: resumed to {n_epochs} epochs from a run that finished at {state['epoch']}: the "
                      f"{cfg.schedule} learning-rate schedule now spans {n_epochs} epochs",
                      file=sys.stderr, flush=True)
        if state["finished"]:
            _restore_final(module, state, cfg)
            return _result(state, history, resumed=state["epoch"])
    else:
        seed_everything(cfg.seed)

    resumed_at = state["epoch"]
    n_batches = len(batches(0)) if isinstance(batches(0), Sized) else None
    total_steps = n_batches * n_epochs if n_batches else n_epochs
    t_start = time.perf_counter() - state["seconds"]

    def run_eval() -> float | None:
        if evaluate is None:
            return None
        raw = None
        if cfg.swa and state["swa_state"] is not None:  # evaluate (and keep, if best) the averaged weights
            raw = _clone_state(module)
            module.load_state_dict(state["swa_state"])
        module.eval()
        score = float("nan")
        if main:  # data-parallel: rank 0 evaluates, every rank takes its score
            with torch.no_grad(), autocast(device, cfg.bf16):
                score = float(evaluate(module))
        if parallel:
            score = distributed.broadcast_float(score)
        module.train()
        if score > state["best_score"]:
            state.update(best_score=score, best_epoch=state["epoch"] + 1, bad_evals=0,
                         best_state=_clone_state(module))
        elif _swa_auto(cfg) and not state["swa_on"]:  # swa_start=0: the first plateau starts the average
            state.update(swa_on=True, bad_evals=0)  # patience counts from here, on the averaged weights
            _swa_update(module, state)
        else:
            state["bad_evals"] += 1
        if raw is not None:
            module.load_state_dict(raw)  # training goes on from the raw weights
        return score

    def swa_due(epoch: int, end_of_epoch: bool) -> bool:
        if not cfg.swa or not (state["swa_on"] if _swa_auto(cfg) else epoch + 1 >= cfg.swa_start):
            return False
        return end_of_epoch if not cfg.swa_every else (not end_of_epoch and state["step"] % cfg.swa_every == 0)

    step_loss = distributed.data_parallel(module, loss) if parallel else loss
    stop = False
    for epoch in range(state["epoch"], n_epochs):
        if parallel:  # per-rank dropout etc., a function of (seed, epoch, rank): the same after a resume
            seed_everything(distributed.epoch_seed(cfg.seed, epoch))
        module.train()
        losses: list[float] = []
        t_epoch = time.perf_counter()
        progress = _progress(batches(epoch), n_batches, f"{tag} epoch {epoch + 1}/{n_epochs}",
                             cfg.progress and main)
        score = None
        for batch in progress:
            lr = lr_at(state["step"], total_steps, cfg.lr, cfg.schedule, cfg.warmup_steps)
            for opt in optimizers:
                for group in opt.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
            with autocast(device, cfg.bf16):
                value = step_loss(module, batch)
            seen = distributed.mean_over_ranks(value) if parallel else value  # every rank stops together
            if not torch.isfinite(seen):
                raise XMTCError(f"{tag}: loss became {seen.item()} at epoch {epoch + 1}, step {state['step']}; "
                                "lower the learning rate or disable bf16")
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            value.backward()
            if sparse_optimizer is None:
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            else:
                _sparsify_grads(sparse_params)
                if cfg.grad_clip > 0:
                    clip_grad_norm_mixed(params, cfg.grad_clip)
            for opt in optimizers:
                opt.step()
            state["step"] += 1
            losses.append(float(seen.detach()))
            if hasattr(progress, "set_postfix") and state["step"] % 20 == 0:
                progress.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            if swa_due(epoch, end_of_epoch=False):
                _swa_update(module, state)
            if cfg.eval_every and state["step"] % cfg.eval_every == 0:
                score = run_eval()
                if _stopped_early(state, cfg):
                    stop = True
                    break
        if swa_due(epoch, end_of_epoch=True):
            _swa_update(module, state)
        if not cfg.eval_every:
            score = run_eval()
            if _stopped_early(state, cfg):
                stop = True
        state["epoch"] = epoch + 1
        state["seconds"] = time.perf_counter() - t_start
        record = {"tag": tag, "epoch": epoch + 1, "step": state["step"],
                  "train_loss": float(np.mean(losses)) if losses else None,
                  f"valid_{score_name}": score, "best": state["best_score"] if evaluate else None,
                  "lr": lr_at(max(0, state["step"] - 1), total_steps, cfg.lr, cfg.schedule, cfg.warmup_steps),
                  "epoch_seconds": round(time.perf_counter() - t_epoch, 3)}
        if parallel:
            record["world_size"] = distributed.get_world_size()
        history.append(record)
        if cfg.progress and main and not disabled_by_env():
            print(epoch_summary(record, score_name, n_epochs, swa=state["swa_count"] > 0, stopped=stop),
                  file=sys.stderr, flush=True)
        if stop or epoch + 1 == n_epochs:
            state["finished"] = True
        if run_dir is not None and main:
            run_dir.mkdir(parents=True, exist_ok=True)
            with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
            _save_checkpoint(ckpt_path, module, optimizer, state, history, sparse_optimizer)
        if parallel:
            distributed.barrier()  # this epoch's checkpoint is on disk before any rank goes on
            distributed.fault_point(epoch + 1)
        if stop:
            break
    _restore_final(module, state, cfg)
    if parallel:
        distributed.check_in_sync(module, tag)
    result = _result(state, history, resumed=resumed_at)
    result.stopped_early = stop
    return result


def _read_checkpoint(path: Path, device: torch.device, parallel: bool) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None; data-parallel: rank 0's file, broadcast (one decision for all)."""
    from xmtc.train.checkpoint import load_checkpoint  # truncated/corrupt: one clear error

    if not parallel:
        return load_checkpoint(path, device) if path.is_file() else None
    data = distributed.broadcast_bytes(path.read_bytes() if distributed.is_main() and path.is_file() else None)
    return load_checkpoint(path, device, data=data) if data else None


def _result(state: dict[str, Any], history: list[dict[str, Any]], resumed: int = 0) -> TrainResult:
    return TrainResult(best_score=state["best_score"], best_epoch=state["best_epoch"], epochs_run=state["epoch"],
                       epochs_resumed=resumed,
                       steps=state["step"], seconds=state["seconds"], history=history)


def _stopped_early(state: dict[str, Any], cfg: TrainConfig) -> bool:
    """Whether the run ended by early stopping (patience used up), not on its epoch budget."""
    return bool(cfg.patience) and state["bad_evals"] >= cfg.patience


def _restore_final(module: nn.Module, state: dict[str, Any], cfg: TrainConfig) -> None:
    """The weights a run ends with: the best evaluated ones (averaged ones once SWA has started), else the SWA
    average, else the last."""
    if state["best_state"] is not None:
        module.load_state_dict(state["best_state"])
    elif cfg.swa and state["swa_state"] is not None:
        module.load_state_dict(state["swa_state"])


def _swa_auto(cfg: TrainConfig) -> bool:
    return cfg.swa and cfg.swa_start == 0


def _clone_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _swa_update(module: nn.Module, state: dict[str, Any]) -> None:
    current = module.state_dict()
    if state["swa_state"] is None:
        state["swa_state"] = _clone_state(module)
        state["swa_count"] = 1
        return
    n = state["swa_count"]
    for key, avg in state["swa_state"].items():
        if avg.is_floating_point():
            avg.mul_(n / (n + 1)).add_(current[key].detach(), alpha=1 / (n + 1))
        else:
            avg.copy_(current[key])
    state["swa_count"] = n + 1


def _sparsify_grads(params: list[nn.Parameter]) -> None:
    """Dense gradients of sparse-stepped parameters -> row-sparse (SparseAdam takes sparse gradients only)."""
    for p in params:
        if p.grad is not None and not p.grad.is_sparse:
            p.grad = p.grad.to_sparse(1)  # rows with a non-zero gradient


def clip_grad_norm_mixed(params: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """``nn.utils.clip_grad_norm_`` for a mix of dense and sparse (COO) gradients.

    Sparse gradients are coalesced first (duplicate rows summed), so the total 2-norm is that of the densified
    gradient; every gradient is then scaled by ``min(1, max_norm / (norm + 1e-6))`` in place.

    Returns:
        The total norm before clipping (a 0-dim tensor).
    """
    grads: list[torch.Tensor] = []
    for p in params:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            grads.append(p.grad._values())  # (nnz_rows, dim), a view: scaling it scales the gradient
        else:
            grads.append(p.grad)
    if not grads:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef.to(g.dtype))
    return total


def _save_checkpoint(path: Path, module: nn.Module, optimizer, state: dict[str, Any], history,
                     sparse_optimizer=None) -> None:
    """Atomic write: a kill during saving leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": module.state_dict(), "optimizer": optimizer.state_dict(),
               "torch_rng": torch.get_rng_state(), "history": copy.deepcopy(history), **state}
    if sparse_optimizer is not None:
        payload["sparse_optimizer"] = sparse_optimizer.state_dict()
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _progress(iterable, total, desc: str, enabled: bool):
    # a tqdm bar on a terminal; elsewhere (log file, CI, nohup) one plain line per epoch and every 30 s
    from xmtc.progress import progress

    return progress(iterable, total=total, desc=desc, enabled=enabled, unit="batch")
