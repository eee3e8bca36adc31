"""Plain helper modules the test packages import (never each other's test modules or conftests)."""
