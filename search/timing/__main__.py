"""`python -m search.timing [--host H] [--port P] [--token T] [--max-bytes N]`: the device
agent, without the `search` command's heavy imports (a device with only onnxruntime)."""

import sys

from search.timing._agent import main

sys.exit(main())
