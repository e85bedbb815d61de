"""``azure.ai.ml.constants`` names the notebook uses."""

from __future__ import annotations


class AssetTypes:
    """Asset and input types (the platform's strings)."""

    MLFLOW_MODEL = "mlflow_model"
    """An MLflow model folder: what a fine-tuning job's output is registered as."""
    CUSTOM_MODEL = "custom_model"
    URI_FILE = "uri_file"
    URI_FOLDER = "uri_folder"
    MLTABLE = "mltable"


class InputOutputModes:
    """How a job reads an input; every mode reads the local file in place here."""

    RO_MOUNT = "ro_mount"
    DOWNLOAD = "download"
    DIRECT = "direct"
