"""The model-repository format: one folder per model, one sub-folder per version.

    REPO/NAME/config.json      pydantic-validated ModelConfig (schema in config.py)
    REPO/NAME/VERSION/model.pt the exported model (format in formats.py)

The exporter writes it and the service reads it; both go through this package only.
"""
