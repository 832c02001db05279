"""Named presets: every size in the course comes from here, nothing is hard-coded.

Three presets, picked by the environment variable ``WMTUTOR_PRESET``:

* ``tiny``   -- for CI: each notebook runs in seconds. The numbers are only big enough
  that every step runs and every assert holds.
* ``laptop`` -- the default: a meaningful result on a 2-core CPU in minutes.
* ``paper``  -- the paper's settings (Ha & Schmidhuber 2018, arXiv 1803.10122, and the
  original code, hardmaru/WorldModelsExperiments), for a GPU and many cores. Each
  number that comes from the paper says where, in a comment beside it.

A preset is a frozen dataclass with one section per stage of the course. Later stages
add their sections here (one place for every size), so a notebook only ever says
``P = get_preset()`` and reads ``P.mdn_toy.steps``.

Example::

    >>> from wmtutor.presets import get_preset
    >>> get_preset("tiny").mdn_toy.n_gaussians
    5
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import ClassVar

ENV_VAR = "WMTUTOR_PRESET"
DEFAULT = "laptop"


# ---------------------------------------------------------------------------------------
# What each setting may be: checked when a section is made (and so for every override)


class SettingError(ValueError):
    """A setting with a value it cannot have; ``field``, ``value`` and ``expected`` say which."""

    def __init__(self, section: str, field: str, value: object, expected: str):
        super().__init__(f"{section}.{field} = {value!r}: expected {expected}")
        self.section, self.field, self.value, self.expected = section, field, value, expected


@dataclass(frozen=True)
class Rule:
    """What a setting may be: an integer or a finite number within bounds, or a choice."""

    kind: str = "int"  # int | number | choice
    low: float | None = None
    high: float | None = None
    open_low: bool = False  # low itself not allowed
    open_high: bool = False
    choices: tuple = ()
    optional: bool = False  # None allowed

    def ok(self, v: object) -> bool:
        if v is None:
            return self.optional
        if self.kind == "choice":
            return v in self.choices
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        if self.kind == "int" and not isinstance(v, int):
            return False
        if not math.isfinite(v):
            return False
        if self.low is not None and (v < self.low or (self.open_low and v == self.low)):
            return False
        return self.high is None or (v < self.high or (not self.open_high and v == self.high))

    @property
    def expected(self) -> str:
        if self.kind == "choice":
            text = "one of " + ", ".join(map(str, self.choices))
        else:
            text = "an integer" if self.kind == "int" else "a finite number"
            if self.low is not None and self.high is not None:
                left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
                text += f" in {left}{self.low:g}, {self.high:g}{right}"
            elif self.low is not None:
                text += f" {'>' if self.open_low else '>='} {self.low:g}"
        return text + (" (or none)" if self.optional else "")


COUNT = Rule("int", 1)  # a positive count
COUNT0 = Rule("int", 0)  # a count that may be 0 ("never", "none")
POSITIVE = Rule("number", 0, open_low=True)
NONNEG = Rule("number", 0)
FRACTION = Rule("number", 0, 1, open_low=True, open_high=True)
PRECISION = Rule("choice", choices=("fp32", "bf16", "auto"))


class Section:
    """A preset section: ``RULES`` say what each field may be; a bad value is refused when
    the section is made (``dataclasses.replace`` included) with a ``SettingError``."""

    RULES: ClassVar[dict[str, Rule]] = {}

    def __post_init__(self) -> None:
        for name, rule in self.RULES.items():
            value = getattr(self, name)
            if isinstance(value, tuple):  # a list of values: each must fit
                bad = [v for v in value if not rule.ok(v)]
                if bad or not value:
                    raise SettingError(type(self).__name__, name, value, f"{rule.expected} each")
            elif not rule.ok(value):
                raise SettingError(type(self).__name__, name, value, rule.expected)


@dataclass(frozen=True)
class MDNToy(Section):
    """Notebook 01: the one-to-many inverse problem, fitted by MSE and by an MDN."""

    RULES = dict(n_samples=COUNT, hidden=COUNT, n_gaussians=COUNT, steps=COUNT, lr=POSITIVE,
                 noise=NONNEG)  # fmt: skip

    n_samples: int  # points in the toy data set
    hidden: int  # width of the MLP's one hidden layer
    n_gaussians: int  # mixture components K of the MDN head
    steps: int  # Adam steps (full batch)
    lr: float  # Adam learning rate
    noise: float = 0.1  # half-width of the uniform noise added to x


@dataclass(frozen=True)
class CMAESToy(Section):
    """Notebook 02: CMA-ES on the shifted Schaffer function and on standard functions."""

    RULES = dict(gif_generations=COUNT, popsize=Rule("int", 2), dim=COUNT, n_seeds=COUNT,
                 max_evals=COUNT, target=POSITIVE)  # fmt: skip

    gif_generations: int  # generations shown in the Schaffer animation
    popsize: int  # population size for the 2-D animation
    dim: int  # dimension of the evaluations-to-target comparison
    n_seeds: int  # independent runs per function and optimizer (the median is shown)
    max_evals: int  # budget per run; a run that misses the target counts as failed
    target: float = 1e-8  # f value that counts as "reached" (every function has f* = 0)


@dataclass(frozen=True)
class Data(Section):
    """Notebook 03: the random rollouts of one game (``wmtutor gather``)."""

    RULES = dict(n_rollouts=COUNT, max_steps=COUNT, frame_skip=COUNT, min_length=COUNT0,
                 policy=Rule("choice", choices=("white", "brownian", "held")))  # fmt: skip

    n_rollouts: int  # episodes to record
    max_steps: int  # episode cap, in agent steps (after frame skip)
    policy: str  # white | brownian | held (see wmtutor.rollouts.POLICIES)
    frame_skip: int = 1  # game frames per agent step (the action is repeated)
    min_length: int = 0  # an episode that *ends* (dies) sooner is replaced; 0 keeps all


@dataclass(frozen=True)
class VAE(Section):
    """Notebook 04: V, the convolutional VAE (``wmtutor train-vae``)."""

    RULES = dict(z_dim=COUNT, epochs=COUNT, batch_size=COUNT, lr=POSITIVE, kl_tolerance=NONNEG,
                 precision=PRECISION, buffer_size=COUNT, num_workers=COUNT0,
                 foreground_weight=Rule("number", 1), told_weight=NONNEG,
                 frame_cache=Rule("choice", choices=("auto", "on", "off")))  # fmt: skip

    z_dim: int  # size of the latent z
    epochs: int  # passes over the training frames
    batch_size: int  # frames per batch
    lr: float  # Adam's learning rate
    kl_tolerance: float = 0.5  # the KL is free up to kl_tolerance * z_dim per frame
    precision: str = "fp32"  # fp32 | bf16 | auto (bf16 where native: autocast on the matmuls)
    buffer_size: int = 8192  # frames in the streaming shuffle buffer (12 KB each)
    num_workers: int = 0  # loader processes reading frames (0: in the training process)
    foreground_weight: float = 1.0  # pixels off the median frame count this many times (1: paper)
    # (the positions are found by their colours: envs.GameSpec.positions; Pong only)
    told_weight: float = 0.0  # z[:4] also fitted to the ball and paddle places, x this (0: paper)
    # auto: on a GPU, when the cache fits in half the free disk (12 KB a frame, while V trains)
    frame_cache: str = "auto"  # read frames from a cache written once: auto | on | off


@dataclass(frozen=True)
class MDNRNN(Section):
    """Notebook 05: M, the MDN-RNN (``wmtutor train-mdnrnn``)."""

    RULES = dict(hidden=COUNT, seq_len=Rule("int", 2), epochs=COUNT, batch_size=COUNT,
                 lr=POSITIVE, n_gaussians=COUNT, grad_clip=POSITIVE, done_weight=NONNEG,
                 reward_weight=NONNEG, precision=PRECISION, buffer_size=COUNT,
                 num_workers=COUNT0, train_on=Rule("choice", choices=("sample", "mu")))  # fmt: skip

    hidden: int  # LSTM units
    seq_len: int  # steps per training window
    epochs: int  # passes over the training rollouts
    batch_size: int  # windows per batch
    lr: float  # Adam's learning rate
    n_gaussians: int = 5  # mixture components per latent dimension
    grad_clip: float = 1.0  # gradient norm clipping
    done_weight: float = 10.0  # the done loss counts a "done" step this many times
    reward_weight: float = 1.0  # weight of the reward head's squared error
    precision: str = "fp32"  # fp32 | bf16 | auto (bf16 where the hardware has it; autocast)
    buffer_size: int = 256  # windows in the streaming shuffle buffer
    num_workers: int = 0  # loader processes reading windows (0: in the training process)
    train_on: str = "sample"  # sample: a fresh z ~ N(mu, sigma^2) per batch | mu (a known bug)


@dataclass(frozen=True)
class Controller(Section):
    """Notebook 06: C, trained with CMA-ES in the real game (``wmtutor train-controller``)."""

    RULES = dict(popsize=Rule("int", 2), trials=COUNT, generations=COUNT, max_steps=COUNT,
                 sigma0=POSITIVE, l2=NONNEG, length_bonus=NONNEG,
                 eval_every=COUNT0, eval_episodes=COUNT0,
                 target=Rule("number", optional=True), curriculum_start=COUNT0,
                 curriculum_growth=Rule("number", 1, open_low=True),
                 backend=Rule("choice", choices=("wmtutor", "pycma")), timeout=POSITIVE,
                 inputs=Rule("choice", choices=("z", "zh", "zch")),
                 bias=Rule("choice", choices=(True, False)),
                 standardize=Rule("choice", choices=(True, False)), components=COUNT0,
                 test_steps=COUNT0,
                 shrink=Rule("int", 1, 8))  # fmt: skip

    popsize: int  # CMA-ES population
    trials: int  # episodes per candidate (fitness = mean return)
    generations: int
    max_steps: int  # episode cap in agent steps
    sigma0: float = 0.1  # initial step size (x0 = 0)
    l2: float = 0.0  # fitness penalty l2 * |x|^2
    # (Pong: every early candidate loses 21-0 and ranks the same without a tie-break.)
    length_bonus: float = 0.0  # real game: fitness + this x (steps lasted) / (cap + 1)
    eval_every: int = 0  # evaluate the mean every this many generations (0: never)
    eval_episodes: int = 0  # episodes of that evaluation
    target: float | None = None  # stop once the evaluated mean reaches this
    curriculum_start: int = 0  # first episode cap (0: no curriculum, always max_steps)
    curriculum_growth: float = 1.5  # cap x this when the population's mean improves
    backend: str = "wmtutor"  # wmtutor | pycma
    timeout: float = 600.0  # seconds before a candidate's evaluation counts as hung
    inputs: str = "zh"  # what C reads: z | zh | zch (see wmtutor.controller)
    bias: bool = True  # y = tanh(W x + b); the paper's Doom controller has no b
    # (Pong's z barely moves over a game: a weight of 0.1 on it moves nothing.)
    standardize: bool = False  # real game: C reads x in units of its spread over the data
    # (Pong: 289 weights are too many for 12 candidates a generation to search.)
    components: int = 0  # with standardize: C reads only this many principal components of x
    # Cap of the final test's episodes in `wmtutor pipeline` for CarRacing and Pong (0: the
    # game's full length, 1000 steps or a whole game of Pong); their test episodes are
    # the game's `dream.real_episodes`.
    test_steps: int = 0
    # CarRacing (`wmtutor.fastcar`, README "A smaller canvas"): its candidates and the
    # mean's evaluation are drawn this many times smaller on each side, faster and not the
    # same bytes; the test plays the real pixels whatever this is.
    shrink: int = 1  # CarRacing: C's training games drawn on a canvas this much smaller

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.components and not self.standardize:
            raise SettingError("Controller", "components", self.components,
                               "0 without standardize (C reads principal components of "
                               "its standardized inputs)")  # fmt: skip


@dataclass(frozen=True)
class Dream(Section):
    """Notebook 07: C trained inside M's dream (``wmtutor train-controller --in-dream``).

    The CMA-ES sizes (population, trials, generations, the 2100-step cap, the evaluation
    of the mean, in the dream) are the game's ``controller`` section.
    """

    RULES = dict(tau=Rule("number", 0, 5), done_threshold=FRACTION, precision=PRECISION,
                 real_episodes=COUNT, validation_episodes=COUNT, taus=Rule("number", 0, 5),
                 sweep_generations=COUNT0,
                 sweep_episodes=COUNT0, rounds=COUNT0, extra_rounds=COUNT0, round_episodes=COUNT,
                 round_epochs=COUNT0, round_sigma=NONNEG,
                 reward=Rule("choice", choices=("survival", "predicted")))  # fmt: skip

    tau: float = 1.15  # M's temperature in the dream
    done_threshold: float = 0.5  # a dream ends when M's P(done) exceeds this
    precision: str = "fp32"  # fp32 | bf16 | auto (bf16 where native; autocast on M's matmuls)
    real_episodes: int = 100  # the final test in the real game (the paper's 100)
    validation_episodes: int = 30  # real episodes per round that choose the round to ship
    taus: tuple[float, ...] = (0.1, 0.5, 1.0, 1.15, 1.3)  # the temperature sweep
    sweep_generations: int = 0  # CMA-ES generations per tau of the sweep (0: no sweep)
    sweep_episodes: int = 0  # real-game episodes per tau of the sweep
    # Iterative training (wmtutor.iterative): rounds of "play the real game with the
    # dream-trained C, add those episodes to M's data, retrain M and C" after the first C.
    rounds: int = 0  # rounds of iterative training after the first C
    extra_rounds: int = 0  # up to this many more, each while the newest round is best on validation
    round_episodes: int = 300  # real episodes recorded per round
    round_epochs: int = 30  # more epochs of M per round, on old and new data together
    round_sigma: float = 0.1  # noise on C's parameters per recorded episode, for variety
    # What a dream pays: +1 per step survived (Doom's reward), or the reward M's reward
    # head predicts for each step (CarRacing's tiles, Pong's points).
    reward: str = "survival"  # survival | predicted


@dataclass(frozen=True)
class Joint(Section):
    """Beyond the paper: V, M and an inverse model trained together (``wmtutor
    train-joint``; for notebook 08, to come).

    V's z_dim and KL allowance and M's sizes and loss weights are the game's ``vae`` and
    ``mdnrnn`` sections; these are the joint run's own.
    """

    RULES = dict(epochs=COUNT, batch_size=COUNT, seq_len=Rule("int", 2), lr=POSITIVE,
                 vae_weight=NONNEG, inverse_weight=NONNEG, inverse_hidden=COUNT,
                 buffer_size=COUNT, precision=PRECISION, grad_clip=POSITIVE)  # fmt: skip

    epochs: int = 2  # passes over the training rollouts
    batch_size: int = 8  # windows of frames per batch
    seq_len: int = 32  # steps per window (V sees batch_size * seq_len frames a step)
    lr: float = 1e-3  # Adam's learning rate, one optimizer for all three
    vae_weight: float = 1.0  # weight of V's loss (M's counts 1)
    inverse_weight: float = 1.0  # weight of the inverse model's loss
    inverse_hidden: int = 128  # the inverse model's hidden units
    buffer_size: int = 64  # windows in the streaming shuffle buffer (12 KB a frame)
    precision: str = "fp32"  # fp32 | bf16 | auto (bf16 where the hardware has it; autocast)
    grad_clip: float = 1.0  # gradient norm clipping, of all three together (as M's)


@dataclass(frozen=True)
class PPO(Section):
    """Notebook 08: Stable-Baselines3's PPO in the dream (``wmtutor.ppo``), SB3's defaults
    except where said."""

    RULES = dict(n_envs=COUNT, n_steps=Rule("int", 2), batch_size=Rule("int", 2),
                 epochs=COUNT, lr=POSITIVE, gamma=Rule("number", 0, 1, open_low=True),
                 gae_lambda=FRACTION, clip_range=POSITIVE, ent_coef=NONNEG,
                 net=Rule("int", 1))  # fmt: skip

    n_envs: int = 32  # dreams stepped together (SB3's default is one env)
    n_steps: int = 64  # steps per dream per rollout (a rollout: n_envs * n_steps)
    batch_size: int = 256  # minibatch
    epochs: int = 4  # passes over each rollout (SB3: 10)
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    net: tuple[int, ...] = (64, 64)  # the actor's and the critic's hidden layers


@dataclass(frozen=True)
class Beyond(Section):
    """Notebook 08 (``wmtutor.beyond``): separate against joint world models on the same
    rollouts, then CMA-ES against PPO in each dream on the same number of dream steps, each
    tested in the real game."""

    RULES = dict(n_rollouts=Rule("int", 2), seeds=Rule("int", 0), dream_steps=COUNT,
                 real_episodes=COUNT)  # fmt: skip

    n_rollouts: int = 200  # random episodes, shared by both world models of a seed
    seeds: tuple[int, ...] = (0, 1)  # each seed: its own rollouts, models and learners
    dream_steps: int = 1_000_000  # each learner's budget in the dream
    real_episodes: int = 100  # the real-game test of each learner (the paper's 100)


@dataclass(frozen=True)
class Game:
    """Every size that depends on the game. Later stages add their sections here."""

    data: Data
    vae: VAE
    mdnrnn: MDNRNN
    controller: Controller
    dream: Dream = Dream()
    joint: Joint = Joint()
    ppo: PPO = PPO()
    beyond: Beyond = Beyond()
    # `wmtutor pipeline`'s C where it differs from notebook 06's: trained longer and to the
    # game's full length, in controller_<inputs>_full/ (None: the pipeline trains the
    # `controller` section's C, notebook 06's).
    full: Controller | None = None

    # What the agent *is* (its spec) comes from `controller`, so `full` may not differ there.
    AGENT = ("inputs", "bias", "standardize", "components")

    def __post_init__(self) -> None:
        for name in self.AGENT if self.full is not None else ():
            if getattr(self.full, name) != getattr(self.controller, name):
                raise SettingError("Controller (full)", name, getattr(self.full, name),
                                   f"the controller section's {getattr(self.controller, name)!r}"
                                   " (the agent's inputs are the same in both)")  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """All sizes of one named preset, one section per stage of the course."""

    name: str
    seed: int
    mdn_toy: MDNToy
    cmaes_toy: CMAESToy
    carracing: Game
    doom: Game
    pong: Game

    def game(self, name: str) -> Game:
        """The per-game sizes of ``name`` (carracing, doom or pong)."""
        if name not in GAMES:
            raise ValueError(f"unknown game {name!r}: expected one of {', '.join(GAMES)}")
        return getattr(self, name)

    def describe(self, *only: str) -> str:
        """A short multi-line summary, printed by each notebook's first cell: the whole
        preset, or only the sections named (``"mdn_toy"``, ``"doom.vae"``, ...)."""
        lines = [f"preset: {self.name}  (set {ENV_VAR}=tiny|laptop|paper to change)"]

        def section(label: str, value: object, indent: str) -> None:
            fields = [f for f in dataclasses.fields(value) if getattr(value, f.name) is not None]
            if all(dataclasses.is_dataclass(getattr(value, f.name)) for f in fields):
                lines.append(f"{indent}{label}:")
                for f in fields:
                    section(f.name, getattr(value, f.name), indent + "  ")
            else:
                body = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(value).items())
                lines.append(f"{indent}{label}: {body}")

        for name in only or [f.name for f in dataclasses.fields(self)]:
            value: object = self
            for part in name.split("."):
                if not (dataclasses.is_dataclass(value) and hasattr(value, part)):
                    raise ValueError(f"preset section {name!r}: no such section")
                value = getattr(value, part)
            if dataclasses.is_dataclass(value):
                section(name, value, "  ")
        return "\n".join(lines)


GAMES = tuple(f.name for f in dataclasses.fields(Preset) if f.type in (Game, "Game"))

PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        seed=0,
        mdn_toy=MDNToy(n_samples=400, hidden=24, n_gaussians=5, steps=300, lr=1e-2),
        cmaes_toy=CMAESToy(gif_generations=12, popsize=24, dim=4, n_seeds=2, max_evals=4000),
        carracing=Game(
            data=Data(n_rollouts=3, max_steps=40, policy="brownian"),
            vae=VAE(z_dim=32, epochs=2, batch_size=32, lr=1e-3, buffer_size=256),
            mdnrnn=MDNRNN(hidden=32, seq_len=16, epochs=3, batch_size=4, lr=3e-3),
            controller=Controller(
                popsize=4,
                trials=2,
                generations=2,
                max_steps=20,
                eval_every=2,
                eval_episodes=2,
                test_steps=40,
            ),
            dream=Dream(real_episodes=2, reward="predicted"),
            full=Controller(
                popsize=4,
                trials=1,
                generations=2,
                max_steps=30,
                eval_every=2,
                eval_episodes=1,
                curriculum_start=15,
                test_steps=40,
            ),
        ),
        doom=Game(
            data=Data(n_rollouts=3, max_steps=60, policy="held", min_length=10),
            vae=VAE(z_dim=64, epochs=2, batch_size=32, lr=1e-3, buffer_size=256),
            mdnrnn=MDNRNN(hidden=32, seq_len=16, epochs=3, batch_size=4, lr=3e-3),
            controller=Controller(
                popsize=4,
                trials=2,
                generations=2,
                max_steps=20,
                eval_every=2,
                eval_episodes=2,
                inputs="zch",
                bias=False,
            ),
            dream=Dream(
                real_episodes=4,
                validation_episodes=2,
                sweep_generations=2,
                sweep_episodes=2,
                rounds=1,
                round_episodes=3,
                round_epochs=1,
            ),
            joint=Joint(epochs=2, batch_size=2, seq_len=8, buffer_size=8),
            ppo=PPO(n_envs=4, n_steps=16, batch_size=32, epochs=2, net=(16,)),
            beyond=Beyond(n_rollouts=4, seeds=(0,), dream_steps=256, real_episodes=2),
        ),
        pong=Game(
            data=Data(n_rollouts=3, max_steps=60, policy="held", frame_skip=4),
            vae=VAE(z_dim=32, epochs=2, batch_size=32, lr=1e-3, buffer_size=256, told_weight=100.0),
            mdnrnn=MDNRNN(hidden=32, seq_len=16, epochs=3, batch_size=4, lr=3e-3),
            controller=Controller(
                popsize=4,
                trials=2,
                generations=2,
                max_steps=20,
                eval_every=2,
                eval_episodes=2,
                test_steps=40,
                length_bonus=1.0,
                standardize=True,
                components=8,
                sigma0=0.3,
            ),
            dream=Dream(real_episodes=2, reward="predicted"),
        ),
    ),
    # precision "auto" (V, M, the dream, joint): bf16 where the CPU does it in hardware
    # (AVX512-BF16, AMX: 1.3-2x faster), else fp32 (an AVX2 laptop emulates bf16, and V
    # trains 35x slower in it: README, "V: the VAE").
    "laptop": Preset(
        name="laptop",
        seed=0,
        mdn_toy=MDNToy(n_samples=2000, hidden=48, n_gaussians=5, steps=3000, lr=5e-3),
        cmaes_toy=CMAESToy(gif_generations=60, popsize=24, dim=10, n_seeds=7, max_evals=40000),
        # About 4 minutes of gathering on 2 cores for the three games together.
        carracing=Game(
            data=Data(n_rollouts=64, max_steps=500, policy="brownian"),
            vae=VAE(z_dim=32, epochs=3, batch_size=64, lr=1e-3, precision="auto"),
            mdnrnn=MDNRNN(
                hidden=256, seq_len=100, epochs=60, batch_size=32, lr=1e-3, precision="auto"
            ),
            controller=Controller(
                popsize=12,
                trials=2,
                generations=20,
                max_steps=300,
                eval_every=5,
                eval_episodes=8,
                curriculum_start=100,
            ),
            # The pipeline's C (`wmtutor pipeline --env carracing`): the same CMA-ES, to the
            # full 1000 steps of the test (a curriculum from 100), for longer, its games
            # drawn on the 500x400 canvas (the test plays the real pixels): about 2 h on 2
            # cores for every stage and the test (README, "CarRacing at full length").
            full=Controller(
                popsize=12,
                trials=2,
                generations=200,
                max_steps=1000,
                eval_every=10,
                eval_episodes=8,
                curriculum_start=100,
                shrink=2,
            ),
            dream=Dream(reward="predicted"),  # a dream pays the tiles M predicts
        ),
        doom=Game(
            data=Data(n_rollouts=1000, max_steps=2100, policy="held", min_length=100),
            vae=VAE(z_dim=64, epochs=1, batch_size=64, lr=1e-3, precision="auto"),
            # M's quality decides whether a dream-trained C transfers: 40 epochs on 500
            # rollouts gave a controller that exploits the dream (real 175, random 213),
            # 160 epochs 262; so more data and more epochs.
            mdnrnn=MDNRNN(
                hidden=256, seq_len=100, epochs=100, batch_size=32, lr=1e-3, precision="auto"
            ),
            # C is trained in M's dream (notebook 07): a generation of 32 x 8 dreams of up
            # to 2100 steps is one batch, about 2 s.
            controller=Controller(
                popsize=32,
                trials=8,
                generations=100,
                max_steps=2100,
                eval_every=10,
                eval_episodes=128,
                inputs="zch",
                bias=False,
            ),
            # One round of iterative training: without it C exploits the laptop M's dream
            # (README: it runs to a wall where M never dreams a fireball).
            dream=Dream(precision="auto", sweep_generations=30, sweep_episodes=30, rounds=1),
            joint=Joint(precision="auto"),  # as V and M: bf16 where the CPU does it natively
        ),
        pong=Game(
            data=Data(n_rollouts=50, max_steps=1000, policy="held", frame_skip=4),
            # The ball and paddles are ~1 % of the pixels: counted 30 times. The encoder
            # learns to see the ball only when told where it is, and only after more than
            # 2 epochs (0 % kept after 2, 32 % after 8: README, "Why V does not keep
            # them"): 8 epochs, about 13 min on 2 cores.
            vae=VAE(
                z_dim=32,
                epochs=8,
                batch_size=64,
                lr=1e-3,
                precision="auto",
                foreground_weight=30.0,
                told_weight=100.0,
            ),
            mdnrnn=MDNRNN(
                hidden=256, seq_len=100, epochs=30, batch_size=32, lr=1e-3, precision="auto"
            ),
            # README "Pong, measured": C reads standardized inputs (z barely moves), plays
            # 1000 steps (most of a game) and breaks the ties of 0-21 losses by how long the
            # game lasted. It reads their first 32 principal components: 33 weights to
            # search, not 289 (σ0 0.3 keeps the first candidates' spread of actions); on
            # seed 0 validation reached -5.0 at generation 10 (all inputs: -9.8 to -15.8).
            # Notebook 06's C: about 8 minutes on 2 cores (18 on a slower AVX2 CPU).
            controller=Controller(
                popsize=12,
                trials=2,
                generations=20,
                max_steps=1000,
                eval_every=10,
                eval_episodes=8,
                length_bonus=1.0,
                standardize=True,
                components=32,
                sigma0=0.3,
            ),
            # The pipeline's C (`wmtutor pipeline --env pong`): the same, 2x longer (on the
            # told V, seed 0's validation peaked at generation 40 of 80: README, "A probe
            # of M and C on that V").
            full=Controller(
                popsize=12,
                trials=2,
                generations=40,
                max_steps=1000,
                eval_every=10,
                eval_episodes=8,
                length_bonus=1.0,
                standardize=True,
                components=32,
                sigma0=0.3,
            ),
            # The pipeline's test: 20 whole games; a dream pays the points M predicts.
            dream=Dream(real_episodes=20, reward="predicted"),
        ),
    ),
    "paper": Preset(
        name="paper",
        seed=0,
        # The toys are not in the paper; 5 Gaussians is the paper's MDN-RNN mixture size
        # (arXiv 1803.10122, section A.3), the rest is simply larger.
        mdn_toy=MDNToy(n_samples=10000, hidden=64, n_gaussians=5, steps=10000, lr=3e-3),
        cmaes_toy=CMAESToy(gif_generations=80, popsize=24, dim=10, n_seeds=21, max_evals=100000),
        # 10,000 random rollouts per game (paper, section 3.1 / 4.1). CarRacing's episodes
        # are the environment's own 1000 steps; the paper's agent acted at random, we use
        # smooth "brownian" random actions, which cover more of the track.
        # V: z = 32 for CarRacing, 64 for Doom; Adam lr 1e-4, batch 100, kl_tolerance 0.5
        # (paper, appendix A.1); 10 epochs as in the original code (the paper says 1).
        carracing=Game(
            data=Data(n_rollouts=10_000, max_steps=1000, policy="brownian"),
            vae=VAE(z_dim=32, epochs=10, batch_size=100, lr=1e-4),
            # M: 256 units, 5 Gaussians, windows of 1000 steps (seq len 999 + 1), batch 100,
            # lr 1e-3, gradient clip 1.0 (paper, appendix A.2; rnn/rnn.py); 40 epochs is
            # about the original's 4000 steps of batch 100.
            mdnrnn=MDNRNN(hidden=256, seq_len=1000, epochs=40, batch_size=100, lr=1e-3),
            # C: CMA-ES, population 64, 16 episodes each, sigma0 0.1, x0 = 0, the mean
            # evaluated every 25 generations over 1024 episodes (paper, appendix A.3).
            controller=Controller(
                popsize=64,
                trials=16,
                generations=1800,
                max_steps=1000,
                eval_every=25,
                eval_episodes=1024,
            ),
            dream=Dream(reward="predicted"),  # a dream pays the tiles M predicts
        ),
        # Doom: actions held for 1-10 frames, a 2100-step cap, episodes under ~100 frames
        # dropped (original code, doomrnn/extract.py; paper section 4.2).
        doom=Game(
            data=Data(n_rollouts=10_000, max_steps=2100, policy="held", min_length=100),
            vae=VAE(z_dim=64, epochs=10, batch_size=100, lr=1e-4),
            # M: 512 units, windows of 500 steps, done loss x10 (doomrnn, restart_factor).
            mdnrnn=MDNRNN(hidden=512, seq_len=500, epochs=40, batch_size=100, lr=1e-3),
            # C: CMA-ES, population 64, 16 episodes each, sigma0 0.1, x0 = 0, the mean
            # evaluated every 25 generations over 1024 episodes (paper, appendix A.3).
            # C reads [z, c, h] and has no bias (paper, section 4.3), trained only in the
            # dream at tau 1.15 (paper; the code used 1.25), +1 per step, 2100-step cap.
            controller=Controller(
                popsize=64,
                trials=16,
                generations=1800,
                max_steps=2100,
                eval_every=25,
                eval_episodes=1024,
                inputs="zch",
                bias=False,
            ),
            dream=Dream(tau=1.15, sweep_generations=200, sweep_episodes=100),
        ),
        # Pong is not in the paper: ALE's v5 defaults (frame skip 4), the same data budget.
        pong=Game(
            data=Data(n_rollouts=10_000, max_steps=2000, policy="held", frame_skip=4),
            vae=VAE(z_dim=32, epochs=10, batch_size=100, lr=1e-4),
            mdnrnn=MDNRNN(hidden=256, seq_len=500, epochs=40, batch_size=100, lr=1e-3),
            controller=Controller(
                popsize=64,
                trials=16,
                generations=1800,
                max_steps=2000,
                eval_every=25,
                eval_episodes=1024,
            ),
            dream=Dream(reward="predicted"),  # a dream pays the points M predicts
        ),
    ),
}


def get_preset(name: str | None = None) -> Preset:
    """Return the preset called ``name``, or the one ``WMTUTOR_PRESET`` names (default laptop).

    Raises:
        ValueError: the name is not one of the presets; the message lists them.
    """
    if name is None:
        name = os.environ.get(ENV_VAR, "").strip() or DEFAULT
    key = name.strip().lower()
    if key not in PRESETS:
        where = f" (from ${ENV_VAR})" if os.environ.get(ENV_VAR) == name else ""
        raise ValueError(
            f"unknown preset {name!r}{where}: expected one of {', '.join(sorted(PRESETS))}"
        )
    return PRESETS[key]
