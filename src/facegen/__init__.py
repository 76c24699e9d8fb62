"""facegen: generate realistic, demographically diverse faces with GANs, run as an MLOps product.

The package is a plain library (PyTorch, pandas, boto3, MLflow client); ZenML steps in ``steps/`` wrap it.
"""

__version__ = "0.1.0"
