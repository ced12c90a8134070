import os

# As MAPush's mqe/__init__.py: the checkout's root, from which its asset paths are resolved.
LEGGED_GYM_ROOT_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
