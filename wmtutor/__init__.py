"""wmtutor: Ha & Schmidhuber's World Models (2018), taught by doing it.

One module per component, read top to bottom:

* ``presets`` -- every size, by name (``WMTUTOR_PRESET=tiny|laptop|paper``)
* ``utils``   -- seeding, atomic writes, the runs folder
* ``mdn``     -- mixture density head, NLL, sampling with temperature (M's output)
* ``cmaes``   -- CMA-ES from scratch, and pycma behind the same interface (trains C)
* ``toys``    -- the toy problems of notebooks 01 and 02
* ``envs``    -- the games as 64×64 frames, and their action adapters
* ``rollouts``-- random policies; gathering episodes to disk in parallel, resumable
* ``datasets``-- streaming frame and sequence datasets over the rollout files
* ``vae``     -- V: the convolutional VAE, its loss, training, encoding rollouts into z
* ``mdnrnn``  -- M: the MDN-RNN, its loss, sampling with tau, training, open-loop dreams
* ``training``-- what the training loops share: checkpoints, logs, bf16, held-out split
* ``controller``-- C: the linear controller, the batched agent, CMA-ES on any Executor
* ``dream``   -- M as a Gymnasium vector environment; a CMA-ES generation in one batch
* ``viz``     -- every figure and GIF
* ``cli``     -- the ``wmtutor`` command
"""

__version__ = "0.1.0"
