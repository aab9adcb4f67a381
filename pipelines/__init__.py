"""Model families. One module per family, chosen by `pipelines.registry` from the model's
`model_index.json` `_class_name`. A family module provides (`pipelines.base.ModelFamily`):

- `FAMILY`: its name in diagnostics; `CLASS_NAMES`: the diffusers pipeline classes it serves;
  `AUDIO`: whether it generates a soundtrack; `CONDITIONING`: which of `base.CONDITIONING_FIELDS`
  (last_image, keyframes, video, extend) it can serve;
- `load(source, class_name, device, dtype) -> LoadedPipelines` (`class_name` as the registry read
  it from `model_index.json`): t2v and/or i2v, sharing weights where the
  checkpoint allows (`from_pipe`), None for a mode the checkpoint cannot do;
- `check_request(pipelines, job) -> list[str]`: its own rules on a `GenerationJob` (raise
  `pipelines.errors.Refused`), returning notes on what it adjusts or ignores;
- `frame_count(pipelines, requested) -> FrameCount`: the frames it generates for a request (the
  first `requested` are returned); `base.vae_frame_count` (k * VAE ratio + 1) unless it binds its own;
- `generate(pipelines, job, on_step) -> (1, F, 3, H, W)` floats in [0, 1];
and, for tests and the demo, a tiny random-weight builder in `pipelines/tiny/` (listed in
`pipelines.tiny.BUILDERS`).

The dependency rule: this package (like `encoders`) imports nothing from the application,
`video_endpoint`. Families get plain values (a `GenerationJob`, `SpeedSettings`, a LoRA list) and
raise `pipelines.errors`; the application reads its settings and maps those errors to its answers.
`tests/test_architecture.py` fails when an import breaks the rule.
"""
