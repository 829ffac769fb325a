"""Training settings shared by every deep model: each deep model's config derives from ``TrainConfig``."""

from __future__ import annotations

from dataclasses import dataclass

from xmtc.config import Config, check, doc_field


@dataclass
class TrainConfig(Config):
    """Optimisation, early stopping, device and reproducibility settings of the one training loop."""

    seed: int = doc_field(0, "seed of everything random (init, batches, dropout, validation split)")
    device: str = doc_field("auto", "'auto' (cuda if available, else cpu), 'cpu', 'cuda' or 'cuda:N'")
    epochs: int = doc_field(10, "maximum number of passes over the training data")
    batch_size: int = doc_field(32, "documents per training batch")
    eval_batch_size: int = doc_field(128, "documents per prediction batch")
    optimizer: str = doc_field("adam", "'adam' or 'adamw'")
    lr: float = doc_field(1e-3, "peak learning rate")
    weight_decay: float = doc_field(0.0, "weight decay (decoupled for adamw)")
    schedule: str = doc_field("constant", "'constant', 'cosine' or 'linear' decay after warmup")
    warmup_steps: int = doc_field(0, "linear warmup steps")
    grad_clip: float = doc_field(5.0, "clip gradient norm to this value (0 disables)")
    patience: int = doc_field(3, "stop after this many evaluations without validation improvement (0: never)")
    eval_every: int = doc_field(0, "evaluate on validation every N steps (0: at the end of each epoch)")
    valid_fraction: float = doc_field(0.05, "share of train held out for validation when no valid split is given")
    valid_max_docs: int = doc_field(2000, "cap on held-out validation documents")
    select_metric: str = doc_field("P@1", "validation metric for early stopping / model selection (P@k or nDCG@k)")
    bf16: bool | None = doc_field(False, "bf16 autocast: true, false, or null = auto (on where the hardware has "
                                         "bf16 kernels: CPUs with avx512_bf16 or AMX, GPUs with bf16)")
    threads: int = doc_field(0, "torch CPU threads (0: library default)")
    fused_optimizer: bool = doc_field(True, "step Adam/AdamW with torch's fused kernel (no per-step temporaries; "
                                            "false: torch's default form, per-tensor on CPU, as xmtc did before "
                                            "2026-12-07)")
    progress: bool = doc_field(True, "show progress bars")
    swa: bool = doc_field(False, "stochastic weight averaging from epoch swa_start on; validation evaluates, "
                                 "and the run keeps, the averaged weights")
    swa_start: int = doc_field(0, "first epoch (1-based) averaged by SWA; 0 = auto: from the first validation "
                                  "evaluation that does not improve on the best (the plateau)")
    swa_every: int = doc_field(0, "with swa: add the weights to the average every N steps (0: at the end of "
                                  "each epoch)")

    def validate(self) -> None:
        check(0 <= self.seed < 2**32, f"seed must be in 0..{2**32 - 1} (numpy and torch seeds), but is {self.seed}")
        check(self.epochs > 0, f"epochs must be positive, but is {self.epochs}")
        check(self.batch_size > 0, f"batch_size must be positive, but is {self.batch_size}")
        check(self.eval_batch_size > 0, f"eval_batch_size must be positive, but is {self.eval_batch_size}")
        check(self.lr > 0, f"lr must be positive, but is {self.lr}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, but is {self.weight_decay}")
        check(self.optimizer in ("adam", "adamw"), f"optimizer must be 'adam' or 'adamw', but is {self.optimizer!r}")
        check(self.schedule in ("constant", "cosine", "linear"),
              f"schedule must be 'constant', 'cosine' or 'linear', but is {self.schedule!r}")
        check(self.warmup_steps >= 0, f"warmup_steps must be >= 0, but is {self.warmup_steps}")
        check(self.grad_clip >= 0, f"grad_clip must be >= 0, but is {self.grad_clip}")
        check(self.patience >= 0, f"patience must be >= 0, but is {self.patience}")
        check(self.eval_every >= 0, f"eval_every must be >= 0, but is {self.eval_every}")
        check(0 < self.valid_fraction < 1, f"valid_fraction must be in (0, 1), but is {self.valid_fraction}")
        check(self.valid_max_docs > 0, f"valid_max_docs must be positive, but is {self.valid_max_docs}")
        check(self.threads >= 0, f"threads must be >= 0, but is {self.threads}")
        check(self.swa_start >= 0, f"swa_start must be >= 0 (0: auto), but is {self.swa_start}")
        check(self.swa_every >= 0, f"swa_every must be >= 0, but is {self.swa_every}")
        m = self.select_metric
        ok = (m.startswith("P@") or m.startswith("nDCG@")) and m.split("@")[1].isdigit() and int(m.split("@")[1]) > 0
        check(ok, f"select_metric must look like 'P@1' or 'nDCG@5', but is {m!r}")
        check(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
              f"device must be 'auto', 'cpu' or 'cuda[:N]', but is {self.device!r}")
