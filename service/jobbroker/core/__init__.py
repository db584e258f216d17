"""Pure domain: states, transitions, errors. No I/O."""
