"""The MLflow "model from code" of a registered zoo model: MLflow runs this file when it loads
the model (see :func:`zoo.serving.log_pyfunc`)."""

import mlflow.models

from zoo.serving import ZooModel

mlflow.models.set_model(ZooModel())
