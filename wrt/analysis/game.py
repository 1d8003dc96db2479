"""Rescaling (SoK Eq. 5), success criterion and payoff (§VII-A), and the zero-sum game's equilibria (§VII-B).

The payoff matrix V has one row per defender choice (a scheme-parameter configuration) and one column per
attacker choice (an attack-parameter configuration). The attacker wants a high payoff, the defender a low
one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linprog

from wrt.record import FLOAT32_SLACK

THETA_PRIME = 0.5
_PROB_TOLERANCE = 1e-9


def rescale(wm_acc, theta: float, theta_prime: float = THETA_PRIME):
    """S(x; θ) = max(0, (1 − θ')/(1 − θ)·x + (θ' − θ)/(1 − θ)), so S(θ) = θ' and S(1) = 1 (Eq. 5)."""
    if not theta < 1.0:
        raise ValueError(f"decision threshold must be below 1, got {theta}")
    scaled = (1.0 - theta_prime) / (1.0 - theta) * np.asarray(wm_acc, dtype=float) \
        + (theta_prime - theta) / (1.0 - theta)
    return np.maximum(0.0, scaled)


def loss_allowed(stealing_loss, max_stealing_loss: float = 0.05):
    """§VII-A: the surrogate lost at most max_stealing_loss test accuracy, up to float32 rounding (a loss of exactly
    5 points is 5 points)."""
    return np.asarray(stealing_loss) <= max_stealing_loss + FLOAT32_SLACK


def well_embedded(marked_wm_acc, theta, embedding_loss, max_embedding_loss: float = 0.05):
    """A scheme config is a defender strategy when its marked model verifies (wm acc ≥ θ) and is well-trained:
    it lost at most max_embedding_loss test accuracy (§IV-A: the game starts from well-trained models; the SoK's
    embedding losses are about one point, §VIII-D)."""
    return (np.asarray(marked_wm_acc) >= theta) & loss_allowed(embedding_loss, max_embedding_loss)


def attack_succeeds(surrogate_wm_acc, theta, stealing_loss, max_stealing_loss: float = 0.05):
    """§VII-A: the surrogate's watermark accuracy is below θ and it lost at most max_stealing_loss accuracy."""
    return (np.asarray(surrogate_wm_acc) < theta) & loss_allowed(stealing_loss, max_stealing_loss)


def payoff(success, surrogate_test_acc):
    """§VII-B: the surrogate's test accuracy when the attack succeeds, else 0."""
    return np.where(success, np.asarray(surrogate_test_acc, dtype=float), 0.0)


def attacker_objective(surrogate_wm_acc: float, theta: float, stealing_loss: float, surrogate_test_acc: float,
                       theta_prime: float = THETA_PRIME, max_stealing_loss: float = 0.05) -> float:
    """What an adaptive attacker maximises over an attack's parameters (issue #27; `experiment=best_response`).

    With success (§VII-A: wm acc < θ, stealing loss within the rule) it is the payoff, the surrogate's test
    accuracy, in [0, 1]. Without success it is −S(wm acc; θ) (Eq. 5) minus the stealing loss beyond the rule:
    a score below 0, so every success beats every failure; lowering the watermark accuracy raises it, and so
    does lowering a loss that is over the rule. The penalty is continuous (a loss just over the rule costs
    little) so that a search can climb to the band between attacks too weak to remove the watermark and
    attacks that remove it at too high a cost. NaN when the run measured nothing (a failed run)."""
    if surrogate_wm_acc is None or stealing_loss is None or surrogate_test_acc is None:
        return float("nan")
    success = bool(attack_succeeds(surrogate_wm_acc, theta, stealing_loss, max_stealing_loss))
    if success:
        return float(payoff(success, surrogate_test_acc))
    excess = max(0.0, float(stealing_loss) - max_stealing_loss)
    return -float(rescale(surrogate_wm_acc, theta, theta_prime)) - excess


def pure_nash(V: np.ndarray, tiebreak: np.ndarray | None = None) -> tuple[int, int]:
    """(d*, a*) = argmin_i (argmax_j V[i, j]) of Eq. 6: the attacker best-responds to each scheme config,
    the defender picks the config whose best response pays least.

    Ties are broken by `tiebreak` (e.g. rescaled watermark accuracy; the attacker prefers it low, the
    defender high), then by the first index.
    """
    V = np.asarray(V, dtype=float)
    T = np.zeros_like(V) if tiebreak is None else np.asarray(tiebreak, dtype=float)
    best_response = [min(range(V.shape[1]), key=lambda j: (-V[i, j], T[i, j], j)) for i in range(V.shape[0])]
    i_star = min(range(V.shape[0]), key=lambda i: (V[i, best_response[i]], -T[i, best_response[i]], i))
    return i_star, best_response[i_star]


def mixed_nash(V: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Mixed equilibrium of the zero-sum game as two linear programs: the defender (rows) minimises
    u s.t. xᵀV ≤ u, the attacker (columns) maximises v s.t. Vy ≥ v; by the minimax theorem u = v.

    Returns (value, defender's x, attacker's y).
    """
    V = np.asarray(V, dtype=float)
    m, n = V.shape
    # defender: variables (x_1..x_m, u), minimise u, V[:, j]·x − u ≤ 0 for every column j
    defender = linprog(c=np.r_[np.zeros(m), 1.0], A_ub=np.c_[V.T, -np.ones(n)], b_ub=np.zeros(n),
                       A_eq=np.r_[np.ones(m), 0.0][None, :], b_eq=[1.0],
                       bounds=[(0, None)] * m + [(None, None)], method="highs")
    # attacker: variables (y_1..y_n, v), maximise v, v − V[i, :]·y ≤ 0 for every row i
    attacker = linprog(c=np.r_[np.zeros(n), -1.0], A_ub=np.c_[-V, np.ones(m)], b_ub=np.zeros(m),
                       A_eq=np.r_[np.ones(n), 0.0][None, :], b_eq=[1.0],
                       bounds=[(0, None)] * n + [(None, None)], method="highs")
    if not (defender.success and attacker.success):
        raise RuntimeError(f"linprog failed: {defender.message} / {attacker.message}")
    return float(defender.x[-1]), _clean(defender.x[:m]), _clean(attacker.x[:n])


def _clean(probabilities: np.ndarray) -> np.ndarray:
    probabilities = np.where(probabilities < _PROB_TOLERANCE, 0.0, probabilities)
    return probabilities / probabilities.sum()


def solve_game(V: pd.DataFrame, tiebreak: pd.DataFrame | None = None, digits: int = 6) -> dict:
    """Both equilibria of a labelled payoff matrix (rows: scheme configs, columns: attack configs), in the
    nash.json shape {"pure": {scheme, attack, payoff}, "mixed": {value, defender, attacker}}."""
    i, j = pure_nash(V.to_numpy(), None if tiebreak is None else tiebreak.to_numpy())
    value, x, y = mixed_nash(V.to_numpy())
    return {
        "pure": {"scheme": V.index[i], "attack": V.columns[j], "payoff": round(float(V.iat[i, j]), digits)},
        "mixed": {
            "value": round(value, digits) + 0.0,  # + 0.0 turns -0.0 into 0.0
            "defender": {label: round(float(p), digits) for label, p in zip(V.index, x) if p > 0},
            "attacker": {label: round(float(p), digits) for label, p in zip(V.columns, y) if p > 0},
        },
    }
