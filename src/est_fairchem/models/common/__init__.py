"""What more than one backbone uses: radius graphs, radial bases and the radial MLP, the scalar
energy head, weight initialisation, input checks, and the ``est`` options (``ESTConfig``, the
``paper`` preset, the options stored in checkpoints)."""
