"""mtlbench: when does one multitask network beat separate dedicated networks?"""

__version__ = "0.1.0"
