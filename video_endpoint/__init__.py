"""Text-to-video and image-to-video behind a Hugging Face Inference Endpoint handler.

`endpoint` (the handler), `stages` (its steps), `request_schema`, `image_input`, `errors`,
`settings` (every environment variable), `server` (the local HTTP server) and `cli`.
Nothing is imported here, so `python -m video_endpoint --help` stays instant.
"""
