"""InfoMax prediction bench: tests the four predictions of the InfoMax + implicit EM essay."""

__version__ = "0.1.0"
