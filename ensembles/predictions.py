"""Ensembles of predictions: the running mean of members' softmax probabilities (or of their logits, as
learning-subspaces ensembles), and its picture."""
from __future__ import annotations

import numpy as np
import torch

import utils


class _RunningMean:
    """The members' running mean of ``(N, classes)`` arrays, in float64 (sums of many members stay
    exact); its state for a checkpoint is the sum and the number of members."""

    def __init__(self):
        self.size = 0
        self._sum: np.ndarray | None = None

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        self._sum = values.copy() if self._sum is None else self._sum + values
        self.size += 1

    def _mean(self) -> np.ndarray:
        if self.size == 0:
            raise ValueError("the ensemble is empty")
        return self._sum / self.size

    def state(self) -> dict:
        """For a checkpoint: the sum and the number of members."""
        return {"size": self.size, "sum": None if self._sum is None else torch.from_numpy(self._sum)}

    def load_state(self, state: dict) -> None:
        self.size = int(state["size"])
        self._sum = None if state["sum"] is None else state["sum"].numpy().copy()


class ProbabilityEnsemble(_RunningMean):
    """A running ensemble: the mean of its members' softmax probabilities ``(N, classes)``; ``add``
    takes probabilities."""

    @property
    def probs(self) -> np.ndarray:
        return self._mean()

    def metrics(self, labels: np.ndarray, ece_bins: int = utils.ECE_BINS) -> dict:
        """``nll``, ``accuracy`` (percent) and ``ece`` of the mean probabilities."""
        return utils.prediction_metrics(self.probs, labels, ece_bins)


class LogitEnsemble(_RunningMean):
    """learning-subspaces' ensemble: the argmax of its members' summed logits ``(N, classes)``.

    Its trainers/ensemble.py and eval_one_dim_subspaces.py predict ``(out_0 + out_1 + ...).argmax``;
    simplex_ensembles.py takes the NLL and the ECE of softmax(mean logits), and so does this
    class (the mean's argmax is the sum's). ``add`` takes logits; ``probs`` is softmax(mean).
    """

    @property
    def logits(self) -> np.ndarray:
        """The members' mean logits."""
        return self._mean()

    @property
    def probs(self) -> np.ndarray:
        return torch.softmax(torch.from_numpy(self.logits), dim=1).numpy()

    def metrics(self, labels: np.ndarray, ece_bins: int = utils.ECE_BINS) -> dict:
        """``nll``, ``accuracy`` (percent) and ``ece`` of softmax(mean logits), the NLL from log-softmax."""
        return utils.logit_metrics(torch.from_numpy(self.logits), torch.as_tensor(labels), ece_bins)[0]


# --combine of eval_ensemble.py: the mode-connectivity and FGE code average probabilities,
# learning-subspaces sums logits
ENSEMBLES = {"probabilities": ProbabilityEnsemble, "logits": LogitEnsemble}


def plot_ensemble_accuracy(path: str, model_acc: list[float], ens_acc: list[float],
                           title: str = "", xlabel: str = "number of snapshots") -> None:
    """A PNG of each member's test accuracy and the growing ensemble's, against its size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = np.arange(1, len(ens_acc) + 1)
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    ax.plot(sizes, ens_acc, "-o", color="tab:red", markersize=4, label="ensemble")
    # hollow and on top, so that a member as accurate as the ensemble stays visible
    ax.plot(sizes, model_acc, "o", color="tab:gray", markerfacecolor="none", markersize=9, label="single model")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    if title:
        ax.set_title(title)
    ax.xaxis.get_major_locator().set_params(integer=True)
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, min(top, 100.5))  # no accuracy above 100% on the axis
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
