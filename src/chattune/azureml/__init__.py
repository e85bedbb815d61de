"""The cloud platform SDK's surface that the reference fine-tuning notebook uses, on this
machine: porting the notebook is a prefix change of its imports.

=====================================  ===================================
platform                               here
=====================================  ===================================
``azure.ai.ml`` (MLClient, Input)      ``chattune.azureml``
``azure.ai.ml.entities``               ``chattune.azureml.entities``
``azure.ai.ml.dsl``                    ``chattune.azureml.dsl``
``azure.ai.ml.constants``              ``chattune.azureml.constants``
``azure.identity``                     ``chattune.azureml.identity``
=====================================  ===================================

Every name is a thin view of chattune's own SDK (:class:`chattune.Client`): no second
implementation and no state of its own. Importing it loads no torch, MLflow or transformers.

>>> from chattune.azureml import MLClient
>>> from chattune.azureml.identity import DefaultAzureCredential
>>> registry = MLClient(DefaultAzureCredential(), registry_name="azureml")
>>> registry.models.get("tiny-random-phi3", label="latest").id
'tiny-random-phi3:1'
"""

from __future__ import annotations

from chattune.azureml.client import MLClient
from chattune.azureml.entities import Input

__all__ = ["Input", "MLClient"]
