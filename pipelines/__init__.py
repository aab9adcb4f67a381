"""Model families. One module per family (CLASS_NAMES, FAMILY, load, frames_to_generate,
generate, build_tiny), chosen by `pipelines.registry` from the model's `model_index.json`."""
