"""The drivers over the stage functions: the `dfcil` CLI, the DVC pipeline file, the KFP workspace
steps, the S3 results sink."""
