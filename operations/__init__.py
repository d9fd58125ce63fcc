"""Operations: the program's recurring work (hold expiry, search outbox, abandoned redemptions, points
expiry, payouts, checkpoints), scheduled once across every server that runs `entraide serve`."""
