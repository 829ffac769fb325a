"""CLI commands ``serve``, ``explain`` and ``report``, added to the ``xmtc`` app by :func:`add_commands`.

Every error a user can cause raises an :class:`~xmtc.errors.XMTCError`; ``xmtc.cli.main`` prints it as one
``error: ...`` line and exits with status 2. This module never imports :mod:`xmtc.cli` (the CLI imports it);
run folders are resolved with :mod:`xmtc.runs`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional  # noqa: UP035  (typer needs Optional on py3.10 annotations)

import typer

from xmtc.errors import DataError, XMTCError
from xmtc.runs import resolve_model_dir

__all__ = ["add_commands"]


def serve(
    run: Path = typer.Argument(..., help="Run folder from xmtc train (or a model folder)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (the service has no "
                             "authentication: keep it on loopback or behind a proxy)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    max_texts: int = typer.Option(64, "--max-texts", help="Most texts per /predict request."),
    max_chars: int = typer.Option(100_000, "--max-chars",
                                  help="Most characters per request (all its texts)."),
    max_k: int = typer.Option(100, "--max-k", help="Largest k a request may ask for."),
    max_body_bytes: int = typer.Option(0, "--max-body-bytes", help="Largest request body (413 above it); "
                                       "0: 8 bytes per --max-chars character + 64 KiB."),
    batch_wait_ms: float = typer.Option(5.0, "--batch-wait-ms", help="How long concurrent /predict requests "
                                        "are gathered into one model call."),
    max_batch: int = typer.Option(256, "--max-batch", help="Texts per model call of the micro-batcher."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level (warning: no access log)."),
    keep_alive: float = typer.Option(30.0, "--keep-alive", help="Seconds an idle client connection is kept."),
) -> None:
    """Serve a trained model over HTTP: POST /predict, POST /explain, GET /labels, GET /health, GET /.

    The model is loaded once; concurrent /predict requests are micro-batched. API docs: http://HOST:PORT/docs

    Examples:

      xmtc serve runs/demo --port 8000

      curl -s localhost:8000/predict -H 'content-type: application/json'
      -d '{"texts": ["fishing quotas"], "k": 3}'
    """
    from xmtc.serve import ServeLimits, run_server

    if not 0 < port < 65536:
        raise XMTCError(f"--port must be in 1..65535, but is {port}")
    if log_level not in ("critical", "error", "warning", "info", "debug", "trace"):
        raise XMTCError(f"--log-level must be critical, error, warning, info, debug or trace, "
                        f"not {log_level!r}")
    limits = ServeLimits(max_texts=max_texts, max_chars=max_chars, max_k=max_k, max_body_bytes=max_body_bytes,
                         batch_wait_ms=batch_wait_ms, max_batch_texts=max_batch)
    if keep_alive <= 0:
        raise XMTCError(f"--keep-alive must be positive, but is {keep_alive}")
    run_server(run, host=host, port=port, limits=limits, log_level=log_level, keep_alive_s=keep_alive)


def explain(
    run: Path = typer.Argument(..., help="Run folder from xmtc train (or a model folder)."),
    html_out: Path = typer.Option(..., "--html", help="HTML page to write (self-contained)."),
    text: Optional[str] = typer.Option(None, "--text", "-t", help="The document."),  # noqa: UP045
    input: Optional[str] = typer.Option(  # noqa: UP045
        None, "--input", "-i", help="File holding the document ('-': stdin)."),
    label: list[str] = typer.Option([], "--label", "-l", help="Label to explain (repeatable; default: the "
                                    "top-k predicted labels)."),
    k: int = typer.Option(5, "--k", "-k", help="Predicted labels shown."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Dataset folder with label_names.tsv for "  # noqa: UP045
                                        "label descriptions (default: the run's dataset, when recorded)."),
) -> None:
    """Write an HTML page showing which words of a document each label attends to (attention models).

    Each token is highlighted by its attention weight for the selected label; buttons switch between the top-k
    predicted labels (or the --label ones). Tokens beyond the model's max_len are shown unhighlighted.

    Examples:

      xmtc explain runs/eurlex --text "Council regulation on fishing quotas ..." --html explain.html

      xmtc explain runs/eurlex --input doc.txt --label 1309 --label 4470 --html explain.html
    """
    from xmtc.explain import explain_text, load_label_descriptions, render_html
    from xmtc.registry import load

    if (text is None) == (input is None):
        raise XMTCError("give the document with exactly one of --text or --input")
    if k <= 0:
        raise XMTCError(f"--k must be a positive integer, but is {k}")
    if input is not None:
        text = _read_document(input)
    else:
        from xmtc.cli_checks import check_text_argument

        check_text_argument(text, "--text")
        if not text.strip():
            raise XMTCError("--text: the document is empty")
    folder = resolve_model_dir(run)
    model = load(folder)
    descriptions = load_label_descriptions(run, data)
    exp = explain_text(model, text, labels=label or None, k=k, descriptions=descriptions)
    html_out = html_out.expanduser()
    if html_out.parent and not html_out.parent.exists():
        html_out.parent.mkdir(parents=True)
    html_out.write_text(render_html(exp, title=f"xmtc explain: {run.name or run}"), encoding="utf-8")
    shown = ", ".join(la.label + (f" ({la.score:.3f})" if la.score is not None else "") for la in exp.labels)
    typer.echo(f"wrote {html_out}: {len(exp.tokens)} tokens ({exp.n_seen} seen by the model); "
               f"labels: {shown}")


def _read_document(path: str) -> str:
    if path == "-":
        text = sys.stdin.read()
        name = "<stdin>"
    else:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DataError(f"{p}: no such input file")
        try:
            if p.name.endswith(".gz"):
                import gzip

                with gzip.open(p, "rt", encoding="utf-8") as fh:
                    text = fh.read()
            else:
                text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{p}: not UTF-8 text (byte {e.start})") from None
        name = str(p)
    if not text.strip():
        raise DataError(f"{name}: the document is empty")
    return text


def report(
    runs: list[Path] = typer.Argument(..., help="Run folders from xmtc train (or model folders)."),
    data: Path = typer.Option(..., "--data", "-d", help="Dataset folder the runs are evaluated on."),
    out: Path = typer.Option(..., "--out", "-o",
                             help="Folder for index.html, the PNG plots and report.json."),
    split: str = typer.Option("test", "--split", help="Evaluated split (test or valid)."),
) -> None:
    """HTML report of one or more runs on a dataset split, with plots (one series per run).

    P@k and PSP@k for k = 1..10, AUC/AUPR per label-frequency group, precision by label-frequency decile.

    Examples:

      xmtc report runs/parabel --data ../shared/data/eurlex57k --out reports/parabel

      xmtc report runs/parabel runs/attentionxml --data ../shared/data/eurlex57k --out reports/compare
    """
    from xmtc.report import build_report

    index = build_report(runs, data, out, split=split)
    typer.echo(f"report written to {index}")


def add_commands(app: typer.Typer) -> None:
    """Register ``serve``, ``explain``, ``report`` and ``tune`` (:mod:`xmtc.cli_sets`) on the ``xmtc`` app."""
    from xmtc.cli_sets import tune

    app.command("serve")(serve)
    app.command("explain")(explain)
    app.command("report")(report)
    app.command("tune")(tune)
