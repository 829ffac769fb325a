"""One rank of a tests/test_distributed.py launch: ``torchrun --nproc-per-node N tests/dist_worker.py OUT CMD...``.

Runs ``xmtc CMD`` (the real CLI, with its torchrun behaviour); each ``--then`` starts another command in the same
launch, after a barrier (rank 0 finishes writing first). Every rank then saves the model it trained (all ranks,
not only rank 0) to ``OUT/rank{RANK}/{i}`` (i counts the trainings), so that the test can compare the weights the
ranks ended with.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    out, argv = Path(sys.argv[1]), sys.argv[2:]
    from xmtc.cli import main as xmtc
    from xmtc.models.deep import DeepTextModel

    fitted: list[DeepTextModel] = []
    fit = DeepTextModel.fit

    def recording_fit(self, *args, **kwargs):
        result = fit(self, *args, **kwargs)
        fitted.append(self)
        return result

    DeepTextModel.fit = recording_fit
    commands: list[list[str]] = [[]]
    for arg in argv:
        if arg == "--then":
            commands.append([])
        else:
            commands[-1].append(arg)
    from xmtc.train import distributed

    for command in commands:
        xmtc(command)
        distributed.barrier()  # rank 0 saves the model after the other ranks are done with `train`
    for i, model in enumerate(fitted):
        model.save(out / f"rank{os.environ.get('RANK', '0')}" / str(i))


if __name__ == "__main__":
    main()
