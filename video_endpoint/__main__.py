"""`python -m video_endpoint generate ...` / `serve`: the same as the `video-endpoint` command."""

import sys

from video_endpoint.cli import main

sys.exit(main())
