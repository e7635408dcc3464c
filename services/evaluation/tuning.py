"""Gaussian-process Bayesian optimization of a policy's parameters for the product goal, as an
ask/tell object that a tuning job drives and can save and resume.

Why. A policy's parameters (the threshold, the weights that combine several predicted outcomes
into one value, the exploration rate) are tuned for a product goal that no model predicts and
no formula gives: each evaluation is an off-policy estimate over logged decisions or an online
round as an experiment arm, so each costs minutes to days and comes back noisy. Bayesian
optimization spends few evaluations: a Gaussian process (GP) models the goal as a function of
the parameters with its uncertainty, and each new point is where the *expected improvement*
over the best so far is largest, which trades trying near the best (exploitation) against
trying where little is known (exploration).

How.
  * Parameters live in a box; each is mapped to [0, 1] (linearly, or on a log scale for
    parameters such as an exploration rate in [0.01, 0.3]) and integers are rounded when a
    point is handed out.
  * The first ``initial_points`` points are a Latin hypercube (space-filling, seeded).
  * Then the goal's values ``y`` (negated when minimizing, so the GP always maximizes) are
    normalized, ``z = (y - mean(y)) / sd(y)``, and fitted by scikit-learn's
    ``GaussianProcessRegressor`` with kernel ``c * Matern(nu=2.5, one length scale per
    parameter) + WhiteKernel``: Matern 5/2 is smooth but not infinitely so, the white kernel
    learns noise nobody reported. A value told with a standard error ``s`` (e.g. an off-policy
    estimate's) adds ``(s / sd(y))^2`` to its own diagonal entry (the GP's per-point ``alpha``),
    so a precise estimate pulls the fit harder than a rough one.
  * Expected improvement over the incumbent ``f*``, the best *posterior mean* at an evaluated
    point (with noisy values the best observed value is just the luckiest draw):

        EI(x) = (m(x) - f* - xi) Phi(u) + s(x) phi(u),   u = (m(x) - f* - xi) / s(x)

    where ``m`` and ``s`` are the GP's posterior mean and standard deviation of the noise-free
    goal, ``Phi``/``phi`` the standard normal cdf/pdf and ``xi`` a margin (in standard
    deviations of the values told) that pushes towards exploration. ``xi`` defaults to 0: with
    0.01 the tuner stopped short of the optimum of the quadratic in the tests (gaps 0.010-0.019
    over 4 seeds against <= 0.0003 with 0). EI is maximized by scoring ``candidates`` uniform
    random points and polishing the best ``polish_starts`` of them with L-BFGS-B (with EI's
    analytic gradient) inside the box.
  * ``ask(k)`` with k > 1 (or asks not yet told) uses the "kriging believer": each point handed
    out counts as observed at its posterior mean until its real value arrives, so the next one
    goes elsewhere.
  * Randomness comes from ``(seed, number of asks)``, and the state is plain JSON (the space,
    the settings, every value told, the points out), so a job that restarts from its saved state
    asks exactly what it would have asked without the restart.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize, special
from scipy.stats import qmc
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

STATE_VERSION = 1


@dataclass(frozen=True)
class Parameter:
    """One tuned parameter: the closed range ``[low, high]``, searched on a log scale when
    ``log`` (both ends > 0) and handed out rounded when ``integer``."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"a parameter needs finite low < high, got [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale parameter needs low > 0, got {self.low}")

    def to_unit(self, value: float) -> float:
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def from_unit(self, unit: float) -> float | int:
        unit = min(max(float(unit), 0.0), 1.0)
        if self.log:
            value = math.exp(math.log(self.low) + unit * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + unit * (self.high - self.low)
        value = min(max(value, self.low), self.high)
        return int(round(value)) if self.integer else value

    def as_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "log": self.log, "integer": self.integer}


class BayesianTuner:
    """Ask for points, tell their values, ask again; ``best()`` is the answer so far.

    ``space`` maps each parameter's name to a ``Parameter`` or a ``(low, high)`` pair.
    ``maximize`` says which way is better (product value: higher). See the module docstring for
    the method and ``to_json``/``from_json`` for resuming.
    """

    def __init__(self, space: Mapping[str, Parameter | tuple[float, float]], *, seed: int,
                 initial_points: int | None = None, maximize: bool = True, candidates: int = 1000,
                 polish_starts: int = 3, xi: float = 0.0):
        if not space:
            raise ValueError("the space needs at least one parameter")
        self.space: dict[str, Parameter] = {name: p if isinstance(p, Parameter) else Parameter(*p)
                                            for name, p in space.items()}
        self.seed = int(seed)
        self.maximize = bool(maximize)
        self.initial_points = int(initial_points) if initial_points is not None else max(5, 2 * len(self.space))
        if self.initial_points < 1:
            raise ValueError("initial_points must be >= 1")
        self.candidates = int(candidates)
        self.polish_starts = int(polish_starts)
        self.xi = float(xi)
        design = qmc.LatinHypercube(d=len(self.space), rng=np.random.default_rng([self.seed, 0]))
        self._design: list[list[float]] = design.random(self.initial_points).tolist()
        self._design_used = 0
        self._asks = 0
        self._observations: list[dict] = []  # {"params": {...}, "value": float, "noise": float | None}
        self._pending: list[dict] = []  # points handed out and not yet told

    # --- the ask/tell loop ---------------------------------------------------------------

    def ask(self, k: int = 1) -> list[dict[str, float | int]]:
        """``k`` new points to evaluate, as ``{parameter name: value}``."""
        if k < 1:
            raise ValueError("k must be >= 1")
        self._asks += 1
        rng = np.random.default_rng([self.seed, self._asks])
        with _one_blas_thread():
            return self._ask(k, rng)

    def _ask(self, k: int, rng: np.random.Generator) -> list[dict[str, float | int]]:
        points: list[dict] = []
        model = None
        for _ in range(k):
            if self._design_used < len(self._design):
                unit = np.array(self._design[self._design_used])
                self._design_used += 1
            elif len(self._observations) < 2:
                unit = rng.random(len(self.space))
            else:
                if model is None:
                    model = self._fit(rng)
                unit = self._maximize_expected_improvement(model, rng)
            params = self._decode(unit)
            points.append(params)
            self._pending.append(params)
            if model is not None:
                model = model.believing(self._encode(params))
        return [dict(p) for p in points]

    def tell(self, params: Mapping[str, float], value: float, noise: float | None = None) -> None:
        """The goal's ``value`` at ``params``; ``noise`` is its standard error when the value is
        an estimate (e.g. an off-policy estimate or an experiment arm's mean), None when exact
        or unknown (the GP then learns the noise level it needs)."""
        self._check_params(params)
        if not math.isfinite(value):
            raise ValueError(f"value must be finite, got {value}")
        if noise is not None and not (math.isfinite(noise) and noise >= 0):
            raise ValueError(f"noise must be a finite standard error >= 0, got {noise}")
        point = {name: params[name] for name in self.space}
        unit = self._encode(point)
        for i, pending in enumerate(self._pending):
            if np.allclose(self._encode(pending), unit, atol=1e-9):
                del self._pending[i]
                break
        self._observations.append({"params": point, "value": float(value),
                                   "noise": None if noise is None else float(noise)})

    def cancel(self, params: Mapping[str, float]) -> None:
        """Forget a point handed out that will never be evaluated (otherwise it keeps counting as
        observed at its predicted value, and the tuner keeps away from it)."""
        unit = self._encode(params)
        self._pending = [p for p in self._pending if not np.allclose(self._encode(p), unit, atol=1e-9)]

    def best(self) -> tuple[dict[str, float | int], float]:
        """The evaluated point the GP believes best and its posterior mean there: with noisy
        values this is not the largest value told (the luckiest draw) but the point whose
        value, smoothed by its neighbours and weighed by its standard error, is best. With one
        value told, that one."""
        if not self._observations:
            raise ValueError("no value has been told yet")
        if len(self._observations) == 1:
            only = self._observations[0]
            return dict(only["params"]), only["value"]
        with _one_blas_thread():
            model = self._fit(np.random.default_rng([self.seed, 0, len(self._observations)]), with_pending=False)
            means = model.mean(model.train_x[: len(self._observations)])
        index = int(np.argmax(means))
        return dict(self._observations[index]["params"]), self._to_goal(float(means[index]), model)

    def best_observed(self) -> tuple[dict[str, float | int], float]:
        """The point with the best value told, as told."""
        if not self._observations:
            raise ValueError("no value has been told yet")
        pick = max if self.maximize else min
        chosen = pick(self._observations, key=lambda o: o["value"])
        return dict(chosen["params"]), chosen["value"]

    @property
    def observations(self) -> list[tuple[dict[str, float | int], float, float | None]]:
        return [(dict(o["params"]), o["value"], o["noise"]) for o in self._observations]

    # --- saving and resuming ---------------------------------------------------------------

    def to_state(self) -> dict:
        return {
            "version": STATE_VERSION,
            "space": {name: p.as_dict() for name, p in self.space.items()},
            "seed": self.seed, "maximize": self.maximize, "initial_points": self.initial_points,
            "candidates": self.candidates, "polish_starts": self.polish_starts, "xi": self.xi,
            "design": self._design, "design_used": self._design_used, "asks": self._asks,
            "observations": self._observations, "pending": self._pending,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_state())

    @classmethod
    def from_state(cls, state: Mapping) -> BayesianTuner:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unknown tuner state version {state.get('version')!r}, expected {STATE_VERSION}")
        tuner = cls({name: Parameter(**p) for name, p in state["space"].items()}, seed=state["seed"],
                    initial_points=state["initial_points"], maximize=state["maximize"],
                    candidates=state["candidates"], polish_starts=state["polish_starts"], xi=state["xi"])
        tuner._design = [list(map(float, u)) for u in state["design"]]
        tuner._design_used = int(state["design_used"])
        tuner._asks = int(state["asks"])
        tuner._observations = [dict(o) for o in state["observations"]]
        tuner._pending = [dict(p) for p in state["pending"]]
        return tuner

    @classmethod
    def from_json(cls, text: str) -> BayesianTuner:
        return cls.from_state(json.loads(text))

    # --- the model ---------------------------------------------------------------------------

    def _fit(self, rng: np.random.Generator, with_pending: bool = True) -> _GoalModel:
        """The GP over every value told, plus (``with_pending``) the points out as believers."""
        x = np.array([self._encode(o["params"]) for o in self._observations])
        y = np.array([o["value"] for o in self._observations])
        y = y if self.maximize else -y
        noise = np.array([o["noise"] or 0.0 for o in self._observations])
        model = _GoalModel.fit(x, y, noise, random_state=int(rng.integers(2**31 - 1)))
        for pending in self._pending if with_pending else ():
            model = model.believing(self._encode(pending))
        return model

    def _maximize_expected_improvement(self, model: _GoalModel, rng: np.random.Generator) -> np.ndarray:
        dims = len(self.space)
        candidates = rng.random((self.candidates, dims))
        scores = model.expected_improvement(candidates, self.xi)
        starts = candidates[np.argsort(-scores)[: self.polish_starts]]
        best_x, best_score = candidates[int(np.argmax(scores))], float(scores.max())
        for start in starts:
            result = optimize.minimize(model.negative_expected_improvement, start, args=(self.xi,), jac=True,
                                       method="L-BFGS-B", bounds=[(0.0, 1.0)] * dims)
            if np.isfinite(result.fun) and -result.fun > best_score:
                best_x, best_score = np.clip(result.x, 0.0, 1.0), float(-result.fun)
        return best_x

    def _to_goal(self, normalized: float, model: _GoalModel) -> float:
        value = normalized * model.y_scale + model.y_shift
        return value if self.maximize else -value

    # --- points ------------------------------------------------------------------------------

    def _decode(self, unit: np.ndarray) -> dict[str, float | int]:
        return {name: p.from_unit(u) for (name, p), u in zip(self.space.items(), unit)}

    def _encode(self, params: Mapping[str, float]) -> np.ndarray:
        return np.array([p.to_unit(params[name]) for name, p in self.space.items()])

    def _check_params(self, params: Mapping[str, float]) -> None:
        if set(params) != set(self.space):
            raise ValueError(f"params name {sorted(params)}, the space {sorted(self.space)}")
        for name, p in self.space.items():
            value = params[name]
            span = p.high - p.low
            if not (math.isfinite(value) and p.low - 1e-9 * span <= value <= p.high + 1e-9 * span):
                raise ValueError(f"{name}={value} is outside [{p.low}, {p.high}]")


class _GoalModel:
    """The GP on normalized values (maximizing). scikit-learn fits the kernel's hyperparameters
    by maximizing the marginal likelihood; the posterior is then computed here, with the
    Matern 5/2 kernel written out, because the acquisition is evaluated thousands of times per
    ask and ``GaussianProcessRegressor.predict`` spends most of each call validating its input:

        k(a, b) = c (1 + sqrt(5) r + 5 r^2 / 3) exp(-sqrt(5) r),  r = |(a - b) / l|
        K = k(X, X) + diag(noise_i + white),  m(x) = k(x, X) K^-1 z,  s^2(x) = c - k(x, X) K^-1 k(X, x)
    """

    def __init__(self, amplitude: float, length_scale: np.ndarray, white: float, train_x: np.ndarray,
                 train_z: np.ndarray, noise: np.ndarray, y_shift: float, y_scale: float, n_observed: int,
                 incumbent: float | None = None):
        self.amplitude, self.length_scale, self.white = amplitude, length_scale, white
        self.train_x, self.train_z, self.noise = train_x, train_z, noise
        self.y_shift, self.y_scale = y_shift, y_scale
        self.n_observed = n_observed
        covariance = self._kernel(train_x, train_x) + np.diag(noise + white + 1e-10)
        self._factor = linalg.cho_factor(covariance, lower=True)
        self._weights = linalg.cho_solve(self._factor, train_z)
        # the incumbent: the best posterior mean at an evaluated point (not a pending believer)
        self.incumbent = incumbent if incumbent is not None else float(np.max(self.mean(train_x[:n_observed])))

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, noise_sd: np.ndarray, random_state: int) -> _GoalModel:
        shift = float(y.mean())
        scale = float(y.std()) or 1.0
        z = (y - shift) / scale
        noise = (noise_sd / scale) ** 2
        kernel = (ConstantKernel(1.0, (1e-2, 1e2))
                  * Matern(length_scale=np.full(x.shape[1], 0.3), length_scale_bounds=(1e-2, 1e1), nu=2.5)
                  + WhiteKernel(noise_level=1e-3, noise_level_bounds=(1e-6, 1.0)))
        gp = GaussianProcessRegressor(kernel, alpha=noise + 1e-10, normalize_y=False, n_restarts_optimizer=0,
                                      random_state=random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a length scale at its bound is fine
            gp.fit(x, z)
        fitted = gp.kernel_
        return cls(float(fitted.k1.k1.constant_value), np.atleast_1d(fitted.k1.k2.length_scale).astype(float),
                   float(fitted.k2.noise_level), x, z, noise, shift, scale, len(z))

    def believing(self, unit: np.ndarray) -> _GoalModel:
        """The same kernel conditioned also on ``unit`` observed exactly at its posterior mean."""
        return _GoalModel(self.amplitude, self.length_scale, self.white, np.vstack([self.train_x, unit[None, :]]),
                          np.append(self.train_z, self.mean(unit[None, :])[0]), np.append(self.noise, 0.0),
                          self.y_shift, self.y_scale, self.n_observed, self.incumbent)

    def _kernel(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        scaled = (a[:, None, :] - b[None, :, :]) / self.length_scale
        r = np.sqrt(5.0) * np.sqrt(np.sum(scaled * scaled, axis=-1))
        return self.amplitude * (1.0 + r + r * r / 3.0) * np.exp(-r)

    def mean(self, x: np.ndarray) -> np.ndarray:
        return self._kernel(x, self.train_x) @ self._weights

    def mean_and_std(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the goal itself (without observation noise)."""
        cross = self._kernel(x, self.train_x)
        solved = linalg.cho_solve(self._factor, cross.T)
        variance = self.amplitude - np.sum(cross.T * solved, axis=0)
        return cross @ self._weights, np.sqrt(np.maximum(variance, 1e-18))

    def expected_improvement(self, x: np.ndarray, xi: float) -> np.ndarray:
        mean, std = self.mean_and_std(x)
        gain = mean - self.incumbent - xi
        u = gain / std
        return gain * special.ndtr(u) + std * _normal_pdf(u)

    def negative_expected_improvement(self, x: np.ndarray, xi: float) -> tuple[float, np.ndarray]:
        """-EI at one point and its gradient, for L-BFGS-B:
        dEI/dx = Phi(u) dm/dx + phi(u) ds/dx, with dm/dx = J' K^-1 z and ds/dx = -J' K^-1 k(X, x) / s,
        where J = dk(x, X)/dx = -(5 c / 3) (1 + rho) exp(-rho) (x - X) / l^2 and rho = sqrt(5) r."""
        difference = (x[None, :] - self.train_x) / self.length_scale
        rho = np.sqrt(5.0) * np.sqrt(np.sum(difference * difference, axis=-1))
        cross = self.amplitude * (1.0 + rho + rho * rho / 3.0) * np.exp(-rho)
        jacobian = (-(5.0 / 3.0) * self.amplitude * (1.0 + rho) * np.exp(-rho))[:, None] * difference / self.length_scale
        solved = linalg.cho_solve(self._factor, cross)
        variance = self.amplitude - cross @ solved
        std = math.sqrt(max(variance, 1e-18))
        gain = cross @ self._weights - self.incumbent - xi
        u = gain / std
        cdf, pdf = float(special.ndtr(u)), float(_normal_pdf(u))
        value = gain * cdf + std * pdf
        gradient = cdf * (jacobian.T @ self._weights) + pdf * (-(jacobian.T @ solved) / std)
        return -value, -gradient


def _normal_pdf(u):
    return np.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)


def _one_blas_thread():
    """The GP's matrices are tiny (one row per evaluation), so BLAS threads only add overhead,
    and on a busy machine their spinning made a fit several times slower (measured: 10 fits
    of 30 points 3.9 s with 2 OpenBLAS threads, 0.64 s with 1, at a load average of 7 on 2 cores)."""
    return threadpool_limits(limits=1, user_api="blas")
