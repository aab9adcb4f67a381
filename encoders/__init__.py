"""Output formats. Each format is one module (NAME, MIME, EXT, Options, encode) listed in
`encoders.registry`; encoders take uint8 frames and never import torch or diffusers."""
