"""rubiks-service: training, sweeps and tracking for RubiksNet."""
__version__ = "0.1.0"
