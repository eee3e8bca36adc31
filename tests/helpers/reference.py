"""Where the repository is, and the reference release's files beside it (absent on some machines: tests skip)."""
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# shared/reference/ sits beside the repository, not inside it
SHAPES_FILE = os.path.join(REPO_ROOT, "..", "shared", "reference", "official_state_dict_shapes.json")
