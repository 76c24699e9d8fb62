"""facegen tests. A regular package: torch-fidelity 0.4.0 installs a top-level ``tests`` package into site-packages,
which would otherwise shadow this directory for ``tests.mlflow_server``-style imports."""
