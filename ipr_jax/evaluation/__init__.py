"""On-device (jnp, jit-able) benchmark metrics."""
