"""wmtutor: Ha & Schmidhuber's World Models (2018), taught by doing it.

One module per component, read top to bottom (each imports only those above it in this
list; docs/architecture.md draws the layers):

* ``utils``     -- seeding, the device decision, atomic writes, workers that die with us
* ``presets``   -- every size, by name (``WMTUTOR_PRESET=tiny|laptop|paper``), and its rules
* ``layout``    -- every folder and file name of a run (game, preset, seed, tau, round)
* ``files``     -- the on-disk format: one .npz per episode, manifests with checksums
* ``envs``      -- the games as 64×64 frames, and their action adapters
* ``rollouts``  -- random policies; gathering episodes to disk in parallel, resumable
* ``datasets``  -- streaming frame and sequence datasets over the rollout files
* ``training``  -- what the training loops share: resume, logs, checkpoints, bf16, splits
* ``mdn``       -- mixture density head, NLL, sampling with temperature (M's output)
* ``toys``      -- the toy problems of notebooks 01 and 02
* ``vae``       -- V: the convolutional VAE, its loss, training, encoding rollouts into z
* ``mdnrnn``    -- M: the MDN-RNN, its loss, sampling with tau, training, open-loop dreams
* ``cmaes``     -- CMA-ES from scratch, and pycma behind the same interface (trains C)
* ``controller``-- C: the linear controller, the batched agent, CMA-ES on any Executor
* ``dream``     -- M as a Gymnasium vector environment; a CMA-ES generation in one batch
* ``bundle``    -- a run's trained models in one checked .zip, and back (for a class)
* ``viz``       -- every figure and GIF
* ``pipeline``  -- the stages chained, each made only if missing (what notebooks call)
* ``cli``       -- the ``wmtutor`` command
"""

__version__ = "0.2.0"
