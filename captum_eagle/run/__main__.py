"""``python -m captum_eagle.run`` (also under ``torchrun ... -m``): ``captum-eagle run``."""

import sys

from captum_eagle.run import main

sys.exit(main())
