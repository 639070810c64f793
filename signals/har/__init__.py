"""Human activity recognition: FusionActNet (static + dynamic residual CNNs fused by a guidance net)."""
