"""``python -m captum_eagle.datasets``: build a manifest (see :mod:`captum_eagle.datasets`)."""

import sys

from captum_eagle.datasets.command import main

sys.exit(main())
