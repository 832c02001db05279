"""C (wmtutor/controller.py): parameters, the batched agent, resumable and robust CMA-ES."""

import concurrent.futures as cf
import dataclasses
import os
import time

import numpy as np
import pytest
import torch

from wmtutor.cli import main as cli_main
from wmtutor.controller import (
    Agent,
    Controller,
    LocalPool,
    RealGame,
    load_controller_state,
    run_episodes,
    run_tasks,
    train_controller,
)
from wmtutor.envs import make_env
from wmtutor.files import read_manifest
from wmtutor.mdnrnn import MDNRNN
from wmtutor.presets import Controller as ControllerConfig
from wmtutor.rollouts import rollout_seed
from wmtutor.training import save_checkpoint
from wmtutor.vae import ConvVAE

CONFIG = ControllerConfig(popsize=6, trials=2, generations=3, max_steps=10, sigma0=0.5,
                          eval_every=2, eval_episodes=2, timeout=60)  # fmt: skip


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    """A Doom agent with small, untrained V and M saved as real checkpoints."""
    folder = tmp_path_factory.mktemp("agent")
    torch.manual_seed(0)
    vae, mdnrnn = ConvVAE(8), MDNRNN(8, 3, hidden=16)
    save_checkpoint(folder / "vae.pt", model=vae.state_dict(),
                    config={"architecture": "ConvVAE-v1", "z_dim": 8})  # fmt: skip
    save_checkpoint(folder / "m.pt", model=mdnrnn.state_dict(),
                    config={"architecture": "MDNRNN-v1", "z_dim": 8, "action_dim": 3,
                            "hidden": 16, "n_gaussians": 5})  # fmt: skip
    return {"game": "doom", "vae": str(folder / "vae.pt"), "mdnrnn": str(folder / "m.pt"),
            "inputs": "zh", "frame_skip": 1}  # fmt: skip


HANG = 900  # seconds a hung stand-in sleeps: far longer than any machine takes to start


def fake_evaluate(spec, params, seeds, max_steps, length_bonus=0.0):
    """A quick stand-in for the game: the return peaks at params = 0.3, plus seeded noise."""
    marker = spec.get("marker")
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        if spec.get("fault") == "crash":
            os._exit(1)  # the worker process dies
        time.sleep(HANG)  # the worker hangs
    noise = [np.random.default_rng(s).normal(0, 0.01) for s in seeds]
    if np.ndim(params) == 2:  # a block of candidates (RealGame.population)
        return [fake_evaluate(spec, x, seeds, max_steps) for x in params]
    return [float(-np.square(np.asarray(params) - 0.3).sum() + e) for e in noise]


def test_the_papers_carracing_controller_has_867_parameters():
    c = Controller(z_dim=32, hidden=256, size=3, inputs="zh")
    assert c.n_params == 867
    assert Controller(32, 256, 3, inputs="z").n_params == 32 * 3 + 3
    assert Controller(64, 512, 1, inputs="zch", bias=False).n_params == 64 + 2 * 512
    x = np.random.default_rng(0).normal(size=867)
    W = c.W
    c.set_params(x)
    assert c.W is W  # in place: no new tensors each time
    np.testing.assert_allclose(c.get_params(), x, rtol=1e-6)
    y = c(np.ones((5, 32), np.float32), np.ones((5, 256), np.float32), None)
    assert y.shape == (5, 3) and bool((y.abs() <= 1).all())
    with pytest.raises(ValueError, match="expected 867 parameters"):
        c.set_params(np.zeros(10))
    with pytest.raises(ValueError, match="inputs"):
        Controller(32, 256, 3, inputs="h")


def test_one_controller_for_one_vector_and_for_a_batch_of_them():
    """The dream's batched path (a controller per row) is the real game's, row by row."""
    rng = np.random.default_rng(0)
    c = Controller(z_dim=4, hidden=6, size=1, inputs="zch", bias=False)
    params = rng.normal(size=(5, c.n_params))
    z, h, cell = (torch.from_numpy(rng.normal(size=(5, n)).astype(np.float32)) for n in (4, 6, 6))
    W, b = c.unflatten(params)
    batched = Controller.apply(W, b, c.features(z, h, cell))
    for i in range(5):
        c.set_params(params[i])
        torch.testing.assert_close(batched[i], c(z[i : i + 1], h[i : i + 1], cell[i : i + 1])[0])
    assert W.shape == (5, 1, 16) and torch.all(b == 0)


def test_batched_episodes_match_one_at_a_time(spec):
    from wmtutor.mdnrnn import load_mdnrnn
    from wmtutor.vae import load_vae

    vae, mdnrnn = load_vae(spec["vae"], device="cpu"), load_mdnrnn(spec["mdnrnn"], device="cpu")
    envs = [make_env("doom") for _ in range(3)]
    agent = Agent(vae, mdnrnn, Controller(8, 16, 1), envs[0].adapter)
    agent.controller.set_params(np.random.default_rng(1).normal(0, 1, agent.controller.n_params))
    together = run_episodes(agent, envs, [5, 6, 7], max_steps=40)
    alone = [run_episodes(agent, envs[:1], [s], max_steps=40) for s in (5, 6, 7)]
    np.testing.assert_allclose(together["returns"], [a["returns"][0] for a in alone])
    np.testing.assert_array_equal(together["lengths"], [a["lengths"][0] for a in alone])
    recorded = run_episodes(agent, envs[:1], [5], max_steps=40, record=True)
    assert recorded["frames"].shape == (recorded["lengths"][0], 64, 64, 3)
    assert recorded["rewards"].shape == (recorded["lengths"][0],)  # a GIF's running score
    assert recorded["rewards"].sum() == recorded["returns"][0]


def bonus_evaluate(spec, params, seeds, max_steps, length_bonus=0.0):
    """A stand-in that returns the length bonus it was given, per episode."""
    return np.full(np.shape(params)[:-1] + (len(seeds),), length_bonus).tolist()


def test_the_length_bonus_breaks_ties_in_training_only(spec):
    from wmtutor.controller import evaluate_candidate, make_agent

    params = np.random.default_rng(2).normal(0, 1, RealGame(spec, workers=1).n_params)
    seeds, cap = [3, 4], 30
    plain = np.array(evaluate_candidate(spec, params, seeds, cap))
    bonus = np.array(evaluate_candidate(spec, params, seeds, cap, length_bonus=2.0))
    agent, envs = make_agent(spec, len(seeds))
    agent.controller.set_params(params)
    lengths = run_episodes(agent, envs, seeds, cap)["lengths"]
    assert np.all(lengths > 0)
    np.testing.assert_allclose(bonus - plain, 2.0 * lengths / (cap + 1))
    assert np.all(bonus - plain < 2.0)  # a tie-break: less than the bonus itself
    game = RealGame(spec, workers=1, evaluate=bonus_evaluate, timeout=60, length_bonus=0.5)
    try:  # the candidates get the bonus, the mean's evaluation (the log's score) does not
        assert np.all(game.population(np.zeros((2, game.n_params)), 0, 2, cap) == 0.5)
        assert np.all(game.mean(np.zeros(game.n_params), 1, 2, cap) == 0.0)
    finally:
        game.close()
    with pytest.raises(ValueError, match="length_bonus -1"):
        RealGame(spec, workers=1, length_bonus=-1)


def test_a_block_of_candidates_plays_as_each_would_alone(spec):
    from wmtutor.controller import controller_for, evaluate_candidate, make_agent

    n_params = controller_for(spec).n_params
    params = np.random.default_rng(3).normal(0, 1, (3, n_params))
    seeds, cap = [3, 4], 30
    block = np.array(evaluate_candidate(spec, params, seeds, cap, length_bonus=1.0))
    alone = np.array([evaluate_candidate(spec, x, seeds, cap, length_bonus=1.0) for x in params])
    assert block.shape == (3, 2)
    np.testing.assert_allclose(block, alone)
    # each game's own C: row i's actions are those of candidate i alone on the same input
    agent, _ = make_agent(spec, 3)
    agent.reset(3)
    frames = np.random.default_rng(4).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    agent.set_params(params)
    together, _ = agent.act(frames, np.arange(3))
    assert len({tuple(np.ravel(a)) for a in together}) > 1  # the rows did differ here
    for i in range(3):
        agent.reset(3)
        agent.set_params(params[i])
        np.testing.assert_array_equal(agent.act(frames[i : i + 1], np.array([i]))[0][0],
                                      together[i])  # fmt: skip


def test_local_workers_get_blocks_of_candidates_and_dask_one_each(spec):
    game = RealGame(spec, workers=2, evaluate=fake_evaluate, timeout=60)
    try:
        assert game.n_blocks(12, 2) == 2  # one block of 6 candidates (12 games) per worker
        assert game.n_blocks(32, 8) == 16  # 16 games at most in a block
        assert game.n_blocks(1, 2) == 1
        params = np.random.default_rng(5).normal(0, 1, (5, game.n_params))
        got = game.population(params, 0, 2, 10)
        seeds = [rollout_seed(0, 0, j) for j in range(2)]
        np.testing.assert_allclose(got, [fake_evaluate(spec, x, seeds, 10) for x in params])
    finally:
        game.close()
    dask_like = RealGame(spec, executor=cf.ThreadPoolExecutor(1), evaluate=fake_evaluate)
    assert dask_like.n_blocks(12, 2) == 12
    dask_like.close()


def judge(spec, workers=1, **kwargs):
    return RealGame(spec, workers=workers, evaluate=fake_evaluate, timeout=60, **kwargs)


def shrink_evaluate(spec, params, seeds, max_steps, length_bonus=0.0):
    """A stand-in that returns the canvas shrink of the spec it was sent, per episode."""
    return np.full(np.shape(params)[:-1] + (len(seeds),), float(spec.get("shrink", 1))).tolist()


def test_carracings_training_games_can_be_drawn_smaller_and_its_test_is_not(spec):
    from wmtutor.controller import close_games, make_agent

    car = dict(spec, game="carracing")
    game = RealGame(car, workers=1, evaluate=shrink_evaluate, timeout=60, shrink=2)
    try:  # the candidates and the mean's evaluation play the small canvas
        assert np.all(game.population(np.zeros((2, game.n_params)), 0, 2, 5) == 2)
        assert np.all(game.mean(np.zeros(game.n_params), 1, 2, 5) == 2)
    finally:
        game.close()
    assert "shrink" not in car  # the spec a test plays is the caller's, untouched
    _, envs = make_agent(dict(car, shrink=2), 1)
    assert envs[0].unwrapped.shrink == 2
    _, envs = make_agent(car, 1)
    assert envs[0].unwrapped.shrink == 1
    close_games()
    with pytest.raises(ValueError, match="only CarRacing"):
        RealGame(spec, workers=1, shrink=2)


def test_training_resumes_exactly(spec, tmp_path):
    train_controller(tmp_path / "a", CONFIG, judge(spec), progress=False)
    short = ControllerConfig(**{**CONFIG.__dict__, "generations": 2})
    train_controller(tmp_path / "b", short, judge(spec), progress=False)
    log = train_controller(tmp_path / "b", CONFIG, judge(spec), progress=False)
    a, b = load_controller_state(tmp_path / "a"), load_controller_state(tmp_path / "b")
    np.testing.assert_array_equal(a["es_mean"], b["es_mean"])
    np.testing.assert_array_equal(a["best_params"], b["best_params"])
    assert [r["generation"] for r in log] == [1, 2, 3] and "eval_mean" in log[1]
    assert log[-1]["best"] > log[0]["worst"]
    (tmp_path / "b" / "state.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="b/state.npz: not a readable controller state"):
        train_controller(tmp_path / "b", CONFIG, judge(spec), progress=False)


def test_a_crashed_or_hung_worker_loses_no_generation(spec, tmp_path):
    crash = dict(spec, marker=str(tmp_path / "crashed"), fault="crash")
    with pytest.warns(UserWarning, match="failed.*running it again"):
        log = train_controller(tmp_path / "c", CONFIG, judge(crash, workers=2), progress=False)
    assert len(log) == 3 and (tmp_path / "crashed").exists()
    pool = LocalPool(2)
    hang = dict(spec, marker=str(tmp_path / "hung"), fault="hang")
    tasks = [(hang, np.zeros(3), [i], 10) for i in range(4)]
    start = time.monotonic()
    # The clock starts once the workers are up and have imported this module (however
    # slow the machine), so 3 s is plenty for the tasks that do not hang; the hung one
    # is killed and run again, not waited for (it would take HANG s, on any machine).
    with pytest.warns(UserWarning, match="longer than 3 s"):
        results = run_tasks(pool, fake_evaluate, tasks, timeout=3)
    pool.shutdown()
    assert len(results) == 4 and time.monotonic() - start < HANG / 2
    with pytest.raises(ValueError, match="timeout 0"):
        run_tasks(pool, fake_evaluate, tasks, timeout=0)


def test_the_dask_path_on_a_local_cluster(spec, tmp_path):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:  # fmt: skip
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1")
        config = ControllerConfig(**{**CONFIG.__dict__, "generations": 1, "popsize": 4})
        dask = RealGame(spec, executor=client.get_executor(), timeout=60)
        log = train_controller(tmp_path / "d", config, dask, progress=False)
    assert len(log) == 1 and np.isfinite(log[0]["mean"])


def test_cli_trains_and_evaluates(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path))
    args = ["--env", "pong", "--preset", "tiny", "--workers", "1"]
    cli_main(["train-controller", *args, "--quiet"])
    assert "generation 2: best" in capsys.readouterr().out
    cli_main(["evaluate", *args, "--episodes", "3"])
    out = capsys.readouterr().out
    assert "agent:" in out and "random:" in out


def test_a_controller_is_not_resumed_against_another_m(spec, tmp_path):
    import shutil

    mine = dict(spec, mdnrnn=str(tmp_path / "m.pt"))
    shutil.copy(spec["mdnrnn"], mine["mdnrnn"])
    short = ControllerConfig(**{**CONFIG.__dict__, "generations": 1})
    train_controller(tmp_path / "c", short, judge(mine), progress=False)
    torch.manual_seed(1)  # M retrained: another checkpoint at the same path
    save_checkpoint(mine["mdnrnn"], model=MDNRNN(8, 3, hidden=16).state_dict(),
                    config={"architecture": "MDNRNN-v1", "z_dim": 8, "action_dim": 3,
                            "hidden": 16, "n_gaussians": 5})  # fmt: skip
    with pytest.raises(ValueError, match="trained with another mdnrnn.*--restart"):
        train_controller(tmp_path / "c", CONFIG, judge(mine), progress=False)
    log = train_controller(tmp_path / "c", short, judge(mine), restart=True, progress=False)
    assert len(log) == 1


def test_an_agent_for_another_spec_closes_the_games_of_the_last_one(spec):
    # A ViZDoom engine is a process of its own: games dropped without close() would run
    # on until the kernel exits, one more for every agent a notebook builds.
    from wmtutor.controller import close_games, make_agent

    _, envs = make_agent(spec, 2)
    for env in envs:
        env.reset(seed=0)
    engines = [env.unwrapped.game for env in envs]
    assert all(game.is_running() for game in engines)
    make_agent(dict(spec, inputs="z"), 1)
    assert not any(game.is_running() for game in engines)
    close_games()


def barely_moving_latents(folder):
    """Three encoded rollouts whose z barely moves about an offset, as Pong's does."""
    import json

    rng, files = np.random.default_rng(0), []
    folder.mkdir()
    for i in range(3):
        name = f"rollout_{i:05d}.npz"
        np.savez(folder / name, mu=(0.5 + 1e-3 * rng.normal(size=(20, 8))).astype(np.float32),
                 logvar=np.zeros((20, 8), np.float32), actions=rng.integers(0, 3, 20))  # fmt: skip
        files.append({"index": i, "file": name, "length": 20})
    (folder / "manifest.json").write_text(json.dumps({"config": {"z_dim": 8}, "files": files}))
    return folder


def test_standardized_inputs_are_in_units_of_their_spread_on_the_data(spec, tmp_path):
    from wmtutor.controller import input_stats, make_agent
    from wmtutor.dream import InDream
    from wmtutor.mdnrnn import load_mdnrnn
    from wmtutor.presets import Dream

    latents = barely_moving_latents(tmp_path / "latents")
    mdnrnn, env = load_mdnrnn(spec["mdnrnn"], device="cpu"), make_env("doom")
    try:
        stats = input_stats(latents, mdnrnn, env.adapter, "zh")
    finally:
        env.close()
    assert set(stats) == {"input_mean", "input_std"}  # no basis without components
    mean, std = stats["input_mean"], stats["input_std"]
    assert mean.shape == std.shape == (8 + 16,)
    np.testing.assert_allclose(mean[:8], 0.5, atol=1e-3)
    assert np.all(std[:8] < 3e-3) and np.all(std[8:] > 0)
    c = Controller(8, 16, 1, "zh")
    c.set_input_stats(mean, std)
    z, h = torch.as_tensor(mean[None, :8] + std[:8]), torch.as_tensor(mean[None, 8:])
    x = c.features(z, h, None)
    expected = torch.cat([torch.ones(1, 8), torch.zeros(1, 16)], 1)  # one spread above
    torch.testing.assert_close(x, expected, atol=1e-2, rtol=0)
    with pytest.raises(ValueError, match=r"expected \(24,\)"):
        c.set_input_stats(mean[:8], std[:8])
    with pytest.raises(ValueError, match="no encoded rollouts"):
        input_stats(tmp_path / "empty", mdnrnn, None, "zh")

    standardized = {**spec, "latents": str(latents), "standardize": True}
    agent, _ = make_agent(standardized, 1)
    np.testing.assert_allclose(agent.controller.shift.numpy(), mean)
    assert make_agent(spec, 1)[0].controller.shift is None  # the default reads x raw
    with pytest.raises(ValueError, match="real game only"):
        InDream.from_spec(standardized, Dream())


def test_a_c_on_principal_components_reads_unit_spread_coordinates_and_keeps_them(spec, tmp_path):
    # Pong's C reads a few principal components of its standardized [z, h]: still linear in
    # [z, h], with far fewer weights for CMA-ES. The basis comes from the data once, is
    # saved with C, and a C that reads components refuses to run without one.
    from wmtutor.controller import input_stats, make_agent, with_input_stats
    from wmtutor.mdnrnn import load_mdnrnn

    latents = barely_moving_latents(tmp_path / "latents")
    mdnrnn, env = load_mdnrnn(spec["mdnrnn"], device="cpu"), make_env("doom")
    try:
        stats = input_stats(latents, mdnrnn, env.adapter, "zh", components=5)
        with pytest.raises(ValueError, match="components 61: more than the 24"):
            input_stats(latents, mdnrnn, env.adapter, "zh", components=61)
    finally:
        env.close()
    basis = stats["input_basis"]
    assert basis.shape == (5, 8 + 16)
    c = Controller(8, 16, 1, "zh", components=5)
    assert c.n_params == 5 + 1
    with pytest.raises(RuntimeError, match="set_input_stats first"):
        c.features(torch.zeros(1, 8), torch.zeros(1, 16), None)
    with pytest.raises(ValueError, match=r"expected \(5, 24\)"):
        c.set_input_stats(stats["input_mean"], stats["input_std"])
    c.set_input_stats(stats["input_mean"], stats["input_std"], basis)
    with pytest.raises(ValueError, match="expected none"):
        Controller(8, 16, 1, "zh").set_input_stats(stats["input_mean"], stats["input_std"], basis)

    # On the data it came from, each coordinate has unit spread and they are uncorrelated.
    xs = []
    for entry in read_manifest(latents)["files"]:
        with np.load(latents / entry["file"]) as data:
            z = torch.as_tensor(data["mu"])
            a = torch.nn.functional.one_hot(torch.as_tensor(data["actions"]), 3).float()
        state, hs = mdnrnn.initial_state((1,), "cpu"), []
        with torch.no_grad():
            for t in range(len(z)):
                hs.append(state[0][0, 0])
                _, state = mdnrnn.step(z[t], a[t], state)
        xs.append(c.features(z, torch.stack(hs), None))
    cov = torch.cov(torch.cat(xs).T.double())
    torch.testing.assert_close(cov, torch.eye(5, dtype=torch.float64), atol=2e-2, rtol=0)

    standardized = {**spec, "latents": str(latents), "standardize": True, "components": 5}
    judge = RealGame(standardized, 0, workers=1, evaluate=fake_evaluate)
    assert judge.n_params == 6
    folder = tmp_path / "c"
    train_controller(folder, CONFIG, judge, progress=False)
    np.testing.assert_array_equal(load_controller_state(folder)["input_basis"], basis)
    agent, _ = make_agent(with_input_stats(standardized, folder), 1)
    np.testing.assert_array_equal(agent.controller.basis.numpy(), basis)
    with pytest.raises(ValueError, match="needs standardize"):
        with_input_stats({**spec, "standardize": False, "components": 5})
    # A C trained on components is not resumed as one on all the inputs: said, not mixed.
    all_inputs = RealGame({**standardized, "components": 0}, 0, workers=1, evaluate=fake_evaluate)
    longer = dataclasses.replace(CONFIG, generations=CONFIG.generations + 1)
    with pytest.raises(ValueError, match="6 parameters, this one has 25: .*or remove that folder"):
        train_controller(folder, longer, all_inputs, progress=False)


def test_a_standardized_c_is_saved_with_its_input_stats_and_plays_without_the_data(spec, tmp_path):
    # A bundle carries C's state.npz but no latents: the statistics C was trained with
    # must travel with it, and a resume must not switch to other ones.
    import shutil

    from wmtutor.controller import make_agent, with_input_stats

    latents = barely_moving_latents(tmp_path / "latents")
    standardized = {**spec, "latents": str(latents), "standardize": True}
    assert with_input_stats(spec) is spec  # nothing to add to a C that reads x raw
    judge = RealGame(standardized, 0, workers=1, evaluate=fake_evaluate)
    mean, std = (np.asarray(judge.spec[k], np.float32) for k in ("input_mean", "input_std"))
    assert mean.shape == (8 + 16,) and np.all(std > 0)  # computed once, for every worker
    folder = tmp_path / "c"
    train_controller(folder, CONFIG, judge, progress=False)
    state = load_controller_state(folder)
    np.testing.assert_array_equal(state["input_mean"], mean)
    np.testing.assert_array_equal(state["input_std"], std)

    shutil.rmtree(latents)  # as after a bundle's import: no data
    again = with_input_stats(standardized, folder)
    assert again["input_mean"] == judge.spec["input_mean"]
    agent, _ = make_agent(again, 1)
    np.testing.assert_array_equal(agent.controller.shift.numpy(), mean)
    with pytest.raises(ValueError, match="no encoded rollouts"):
        with_input_stats(standardized)  # no saved C and no data: said so

    other = {**again, "input_mean": (mean + 1).tolist()}
    longer = dataclasses.replace(CONFIG, generations=CONFIG.generations + 1)
    with pytest.raises(ValueError, match="other input statistics"):
        train_controller(folder, longer, RealGame(other, 0, workers=1, evaluate=fake_evaluate),
                         progress=False)  # fmt: skip
    train_controller(folder, longer, RealGame(again, 0, workers=1, evaluate=fake_evaluate),
                     progress=False)  # fmt: skip
    assert load_controller_state(folder)["generation"] == CONFIG.generations + 1
