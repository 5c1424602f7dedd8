"""The `ecas` command line: one module per command group, `main` wires them."""

import warnings

# pyHanko 0.38 imports cryptography's DSA key types, which cryptography 51 deprecates: a warning on
# every command that tells an operator nothing (we never use DSA). Only that warning is hidden.
warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"pyhanko\.")
