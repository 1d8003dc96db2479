"""wrt's Hydra sweeper plugin: the configuration game's sweep (wrt/sweeper.py)."""
