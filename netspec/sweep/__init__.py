"""`netspec sweep`: a spec trained over a grid of constants and train settings, or searched over ranges of them,
with Optuna; every point a run folder in one sweep folder, summarized in summary.csv and pareto.png.

- `space`: the `--vary` flags, the points, and the static check of each point (no torch, no Optuna)
- `study`: the Optuna study and its storage; one run of a point, its folder, lock and trial.json
- `runner`: a grid through GridSampler, a search through TPE and MedianPruner, shared by any number of processes
- `summary`: summary.csv, the terminal's table and pareto.png
- `command`: the command line

Importing this package imports nothing; Optuna is the optional extra `pip install 'netspec[sweep]'`.
"""
