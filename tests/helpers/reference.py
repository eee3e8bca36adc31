"""Files of the reference release beside the checkout (absent on some machines: tests skip)."""
import os

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# shared/reference/ sits beside the repository, not inside it
SHAPES_FILE = os.path.join(_ROOT, "..", "shared", "reference", "official_state_dict_shapes.json")
