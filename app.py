"""Start the Paper QA web app: `python app.py [--host H] [--port P]`.

On the first start it indexes the bundled corpus (progress on the console) before
serving; later starts take seconds. Host and port default to the settings
(RAG_HOST / RAG_PORT, else 127.0.0.1:7860).
"""

from __future__ import annotations

import sys

from rag.webapp import main

if __name__ == "__main__":
    sys.exit(main())
