"""EnCodec's loss balancer: each loss gets a share of the gradient, whatever its scale.

For losses l_i of the model output y, with weights w_i, the gradient sent back into the model is

    dy = sum_i  total_norm * (w_i / sum_j w_j) * (dl_i/dy) / ema(|dl_i/dy|)

where l_i is a batch mean, |.| is the mean over examples of the gradient norm of each example's own
loss (over all ranks), and ema its bias-corrected running average. A weight then means "this
fraction of the gradient", which makes the weights independent of each loss's natural scale
(Défossez et al., 2022, section 3.4). The result is the gradient of a batch-mean loss, so it does
not depend on how the global batch is split over ranks.
"""
from __future__ import annotations

import torch

from infra.distributed import all_reduce_mean


class LossBalancer:
    def __init__(self, weights: dict[str, float], ema_decay: float = 0.999, total_norm: float = 1.0,
                 epsilon: float = 1e-12) -> None:
        if any(weight < 0 for weight in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError(f"balancer weights must be >= 0 with a positive sum, got {weights}")
        self.weights = {name: weight for name, weight in weights.items() if weight > 0}
        self.ema_decay = ema_decay
        self.total_norm = total_norm
        self.epsilon = epsilon
        self.ema_sums = {name: 0.0 for name in self.weights}
        self.ema_counts = {name: 0.0 for name in self.weights}

    def surrogate_loss(self, losses: dict[str, torch.Tensor], output: torch.Tensor) -> torch.Tensor:
        """A scalar whose gradient w.r.t. `output` is the balanced gradient above.

        `losses` holds weighted losses computed from `output` [B, ...] (a loss may be absent for a
        while, e.g. before the adversary starts: the others then share the gradient). Backward
        through the returned scalar (plus any unbalanced loss, e.g. commitment) in one call.
        """
        unknown = sorted(set(losses) - set(self.weights))
        if unknown:
            raise ValueError(f"losses {unknown} have no positive balancer weight; weighted: {sorted(self.weights)}")
        gradients = {name: torch.autograd.grad(loss, output, retain_graph=True)[0].float() for name, loss in losses.items()}
        # A batch-mean loss's gradient carries 1/B per example: the sum of example norms is their mean.
        norms = torch.stack([gradient.flatten(1).norm(dim=1).sum() for gradient in gradients.values()])
        total_weight = sum(self.weights[name] for name in losses)
        balanced = torch.zeros_like(output, dtype=torch.float32)
        for (name, gradient), norm in zip(gradients.items(), all_reduce_mean(norms).tolist()):
            self.ema_sums[name] = self.ema_decay * self.ema_sums[name] + norm
            self.ema_counts[name] = self.ema_decay * self.ema_counts[name] + 1.0
            average_norm = self.ema_sums[name] / self.ema_counts[name]
            scale = self.total_norm * (self.weights[name] / total_weight) / (self.epsilon + average_norm)
            balanced += scale * gradient
        return (output.float() * balanced).sum()

    def state_dict(self) -> dict[str, dict[str, float]]:
        return {"ema_sums": dict(self.ema_sums), "ema_counts": dict(self.ema_counts)}

    def load_state_dict(self, state: dict[str, dict[str, float]]) -> None:
        self.ema_sums = dict(state["ema_sums"])
        self.ema_counts = dict(state["ema_counts"])
