"""The ``cordillera`` command-line tool."""
