"""The cost-aware sampler: use what is known before training (`sampler: {name: costaware}`).

Two facts the plain samplers ignore (docs/search.md, "The cost-aware sampler"):
- An architecture's params and FLOPs are known before it is trained, in a fraction of a second
  (its model built on the CPU, FLOPs counted by torch.utils.flop_counter); its latency is
  predicted from them and its design choices by a ridge regression on the log latencies measured
  so far. Accuracy costs a whole proxy training.
- Good designs are known: the paper's and Newell's (space.references).

So each new trial is chosen as follows:
1. warm start (`warm_start`): the reference designs the space can express, at every width of the
   space's fewest stacks and smallest depth (`reference_sizes: smallest`; `deepest` or `all` for
   more sizes; `reference_widths` keeps a few widths of a fine width axis), go first, so the
   front can never end worse than them at those sizes;
2. cost-aware selection (`cost_aware`): after `startup` trials, take `candidates` random
   architectures of the space (a quarter of them new at each trial, the rest kept from the trial
   before, so that few new FLOPs need counting) plus every one-axis change of the current front,
   drop those already in the study (an arch is never trained twice) and those that break a cost
   limit, predict their accuracy with a Gaussian process (scikit-learn) fitted on the trials so
   far, and train the one with the largest expected hypervolume improvement of the (accuracy,
   cost) front per predicted second of its training (`per_second`; "EI per second", Snoek et al.
   2012): the trials' compute is the budget, and a proxy's training time varies 2x over the
   space. Running trials count as their predicted accuracy (kriging believer), so concurrent
   trials are not the same pick;
3. width scaling (`scale_widths`, off unless set): every other trial, the scored cell that lies
   farthest above the reference designs' own proxy curve goes to a width of the space it has not
   had (the one farthest from its tried widths first), so a cell that beats the paper's design at
   one budget is tried at every budget (EfficientNet's search-then-scale, on width alone).
When none of them picks, or while the study is too young for the surrogate, trials are drawn at random
from the space. Each part is switchable, which the ablation in benchmarks/sampler_quality.py uses.

The strategy needs exactly two objectives: one trained measure (pck) and one cost measure
(latency_ms, flops or params).

The parts, one module each (as optuna/samplers/_gp/):
    sampler.py        CostAwareSampler: Optuna's interface; warm start, then pool -> model -> pick
    _history.py       History: the study's trials read once per ask (seen, scored, running, timed)
    _objectives.py    Roles: which objective is trained and which the cost, both made minimised
    _candidates.py    CandidatePool: random archs plus one-axis changes of the front, none seen
    _surrogate.py     Surrogate: the loss GP, the cost and training-seconds ridge fits
    _acquisition.py   expected hypervolume improvement (per second), kriging believer front
    _scaling.py       the cell farthest above the references, and its next width
    _encoder.py       archs <-> Optuna params; archs -> vectors (one-hot choices, log params/FLOPs)
    _costs.py         params and FLOPs of an arch before training (cached by arch id)
"""

from __future__ import annotations

from search.strategy._acquisition import expected_hvi
from search.strategy._costs import EXACT_COSTS, FLOPS_INPUT, model_costs
from search.strategy._encoder import Encoder, arch_params, params_arch
from search.strategy._history import TRAIN_SECONDS, History, Scored, Timed
from search.strategy._surrogate import MIN_TIMED, Surrogate, fit_gp, fit_log_ridge, predict_seconds
from search.strategy.sampler import CostAwareSampler

__all__ = [
    "CostAwareSampler",
    "EXACT_COSTS",
    "Encoder",
    "FLOPS_INPUT",
    "History",
    "MIN_TIMED",
    "Scored",
    "Surrogate",
    "TRAIN_SECONDS",
    "Timed",
    "arch_params",
    "expected_hvi",
    "fit_gp",
    "fit_log_ridge",
    "model_costs",
    "params_arch",
    "predict_seconds",
]
